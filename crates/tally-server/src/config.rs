//! How a server is set up.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tally_protocol::Limits;
use tally_store::StoreSpec;

use crate::{CardinalityLimits, ConnectionLimits, InvocationEvents, RateLimits, ServeError};

/// The settings of one server.
///
/// ```
/// let config = tally_server::Config::new("tally-data".into());
/// assert_eq!(config.limits.max_events_per_batch, 1000);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The data dir: the admin token, and the embedded store unless
    /// [`store`](Self::store) names another.
    pub data_dir: PathBuf,
    /// Where events are kept. [`Config::new`] makes it the embedded store
    /// of the data dir it is given; set both to move the data dir.
    pub store: StoreSpec,
    /// Forget events older than this many days (checked hourly); `None`
    /// keeps everything.
    pub retention_days: Option<u32>,
    /// Apps whose events or rollups are kept for days of their own (the
    /// rest of each falls back to `retention_days`).
    pub app_retention: BTreeMap<String, AppRetention>,
    /// Apps whose reports leave out groups of fewer distinct installs
    /// than this (app name -> k; see `tally_report::Query::min_installs`):
    /// in the API, the dashboard and `tally report` through the server.
    pub min_group_installs: BTreeMap<String, u64>,
    /// Apps that declared what their CLIs may send (app name -> schema,
    /// see `tally_protocol::schema`); the others take any well-formed event.
    pub schemas: BTreeMap<String, tally_protocol::schema::Schema>,
    /// Apps with a public page (app name -> what it publishes), off for
    /// the others: see `public.rs`.
    pub public: BTreeMap<String, Public>,
    /// What one batch request may hold.
    pub limits: Limits,
    /// How many connections may be open and how long each may take.
    pub connections: ConnectionLimits,
    /// Rate limits per app and per client.
    pub rate_limits: RateLimits,
    /// How many distinct values each field of an app's events may take
    /// per day before new ones are stored as `(other)`.
    pub cardinality: CardinalityLimits,
    /// Most bytes all requests in flight may hold (bodies as sent and
    /// inflated, events until committed); beyond it, clients get 429.
    pub max_in_flight_bytes: usize,
    /// When set, `GET /metrics` needs this token (or the admin token) as
    /// its bearer; unset, the metrics are open to anyone who can reach the
    /// server, and they name the apps and their volumes.
    pub metrics_token: Option<String>,
    /// Most events waiting to be committed; beyond it, clients get 429.
    pub queue_events: usize,
    /// Which PostHog or Segment event is an invocation of each app's CLI.
    pub invocation_events: InvocationEvents,
    /// Most events committed in one transaction.
    pub max_group_events: usize,
    /// Where each app's events are forwarded (app name -> destinations).
    pub forward: BTreeMap<String, Vec<tally_forward::Destination>>,
    /// How forwarding retries.
    pub forward_options: tally_forward::Options,
}

impl Config {
    /// Default settings for a data dir.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            store: StoreSpec::new(&data_dir, None),
            data_dir,
            retention_days: None,
            app_retention: BTreeMap::new(),
            min_group_installs: BTreeMap::new(),
            schemas: BTreeMap::new(),
            public: BTreeMap::new(),
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            rate_limits: RateLimits::default(),
            cardinality: CardinalityLimits::default(),
            max_in_flight_bytes: 256 * 1024 * 1024,
            metrics_token: None,
            queue_events: 200_000,
            invocation_events: InvocationEvents::default(),
            max_group_events: 50_000,
            forward: BTreeMap::new(),
            forward_options: tally_forward::Options::default(),
        }
    }

    /// Refuses settings a server could not keep: a memory budget smaller
    /// than one body of the largest size would refuse every such body (429)
    /// forever, and a client header that is no header name would leave
    /// clients unlimited. A budget smaller than a body inflated to the
    /// largest size is allowed (bombs then get no room at all), and said.
    ///
    /// ```
    /// let mut config = tally_server::Config::new("tally-data".into());
    /// assert!(config.check().is_ok());
    /// config.max_in_flight_bytes = 1024;
    /// assert!(config.check().unwrap_err().to_string().contains("max_in_flight_bytes"));
    /// ```
    pub fn check(&self) -> Result<(), ServeError> {
        let limits = &self.limits;
        if self.max_in_flight_bytes < limits.max_body_bytes {
            return Err(ServeError::Config(format!(
                "max_in_flight_bytes is {} bytes, less than one body of the largest size \
                 ({} bytes), which would be refused forever",
                self.max_in_flight_bytes, limits.max_body_bytes
            )));
        }
        let inflated = limits.max_body_bytes + limits.max_decoded_bytes;
        if self.max_in_flight_bytes < inflated {
            tracing::warn!(
                max_in_flight_bytes = self.max_in_flight_bytes,
                inflated,
                "The memory budget is smaller than one body inflated to the largest size: such bodies are refused (429) whenever they come."
            );
        }
        if let Some(name) = &self.rate_limits.client_header
            && axum::http::HeaderName::try_from(name.as_str()).is_err()
        {
            return Err(ServeError::Config(format!(
                "client_header {name:?} is not an HTTP header name"
            )));
        }
        for (app, destinations) in &self.forward {
            tally_forward::check(app, destinations)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_header_that_is_no_header_name_is_refused() {
        let mut config = Config::new("tally-data".into());
        config.rate_limits.client_header = Some("X Forwarded For".into());
        let refused = config.check().expect_err("not a header name");
        assert!(refused.to_string().contains("client_header"), "{refused}");
        config.rate_limits.client_header = Some("X-Forwarded-For".into());
        config.check().expect("a header name");
    }
}

/// What an app's public page shows, to anyone, without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    /// The reports it publishes.
    pub reports: Vec<tally_report::ReportName>,
    /// Groups of fewer installs are left out of them (at least 2).
    pub min_installs: u64,
}

/// Groups of fewer installs are left out of a public page unless its app
/// says more.
pub const PUBLIC_MIN_INSTALLS: u64 = 10;

/// How long one app's data is kept, where it is not `retention_days`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppRetention {
    /// Days its events are kept.
    pub events_days: Option<u32>,
    /// Days its rollups (what the reports count) are kept: at least as
    /// long as its events.
    pub rollups_days: Option<u32>,
}

impl Config {
    /// How long `app`'s events and rollups are kept, in days (`None`: for
    /// ever).
    ///
    /// ```
    /// let mut config = tally_server::Config::new("d".into());
    /// config.retention_days = Some(90);
    /// config.app_retention.insert("mycli".into(), tally_server::AppRetention { events_days: None, rollups_days: Some(1825) });
    /// assert_eq!(config.retention_of("mycli"), tally_server::AppRetention { events_days: Some(90), rollups_days: Some(1825) });
    /// assert_eq!(config.retention_of("other").rollups_days, Some(90));
    /// // Rollups are never forgotten before the events they count.
    /// config.app_retention.insert("long".into(), tally_server::AppRetention { events_days: Some(395), rollups_days: None });
    /// assert_eq!(config.retention_of("long").rollups_days, Some(395));
    /// ```
    pub fn retention_of(&self, app: &str) -> AppRetention {
        let own = self.app_retention.get(app).copied().unwrap_or_default();
        let events_days = own.events_days.or(self.retention_days);
        // Never shorter than the events, whichever setting each came from:
        // the reports of kept events count their rollups.
        let rollups_days = match (events_days, own.rollups_days.or(self.retention_days)) {
            (Some(events), Some(rollups)) => Some(rollups.max(events)),
            _ => None,
        };
        AppRetention {
            events_days,
            rollups_days,
        }
    }

    /// Sets what the app's settings say of `query`, which no one who asks
    /// can change: its small groups hidden, and which properties of its
    /// custom events its schema lets reports show.
    ///
    /// ```
    /// let mut config = tally_server::Config::new("d".into());
    /// config.min_group_installs.insert("mycli".into(), 5);
    /// let params = [("app".to_owned(), "mycli".to_owned())].into();
    /// let mut query = tally_report::Query::from_params(tally_report::ReportName::Events, &params)?;
    /// config.settle(&mut query);
    /// assert_eq!(query.min_installs, Some(5));
    /// assert!(query.shown_properties.is_empty(), "no schema, nothing shown");
    /// # Ok::<(), tally_report::QueryError>(())
    /// ```
    pub fn settle(&self, query: &mut tally_report::Query) {
        let app = &query.filter.app;
        query.min_installs = self.min_group_installs.get(app).copied();
        query.shown_properties = self
            .schemas
            .get(app)
            .map(tally_protocol::schema::Schema::shown)
            .unwrap_or_default();
    }

    /// Whether anything is ever forgotten.
    pub fn retains(&self) -> bool {
        self.retention_days.is_some() || !self.app_retention.is_empty()
    }
}

/// What retention forgets of one app, from today on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetentionStatus {
    /// The app.
    pub app: String,
    /// Days its events are kept (`None`: for ever).
    pub events_days: Option<u32>,
    /// Days its rollups are kept.
    pub rollups_days: Option<u32>,
    /// Its events before this UTC day go within the hour (YYYY-MM-DD).
    pub events_before: Option<String>,
    /// Its rollups before this UTC day go within the hour.
    pub rollups_before: Option<String>,
}

impl Config {
    /// What retention forgets of each of `apps` (`GET /api/v1/retention`,
    /// `tally retention status`).
    ///
    /// ```
    /// let mut config = tally_server::Config::new("d".into());
    /// config.retention_days = Some(30);
    /// let status = config.retention_status(["mycli"]);
    /// assert_eq!(status[0].events_days, Some(30));
    /// assert!(status[0].events_before.is_some());
    /// // A number of days past any calendar keeps everything.
    /// config.retention_days = Some(u32::MAX);
    /// let status = config.retention_status(["mycli"]);
    /// assert_eq!(status[0].events_before.as_deref(), Some("1970-01-01"));
    /// ```
    pub fn retention_status<'a>(
        &self,
        apps: impl IntoIterator<Item = &'a str>,
    ) -> Vec<RetentionStatus> {
        let before = |days: Option<u32>| {
            // The first day kept, as the stores count it: `days` whole
            // UTC days before today, never before 1970
            // (`tally_rollup::retention_cutoff`).
            days.map(|days| {
                let epoch = time::Date::from_ordinal_date(1970, 1).unwrap_or(time::Date::MIN);
                time::OffsetDateTime::now_utc()
                    .date()
                    .checked_sub(time::Duration::days(i64::from(days)))
                    .map_or(epoch, |d| d.max(epoch))
                    .to_string()
            })
        };
        apps.into_iter()
            .map(|app| {
                let keep = self.retention_of(app);
                RetentionStatus {
                    app: app.to_owned(),
                    events_days: keep.events_days,
                    rollups_days: keep.rollups_days,
                    events_before: before(keep.events_days),
                    rollups_before: before(keep.rollups_days),
                }
            })
            .collect()
    }
}
