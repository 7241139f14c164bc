//! The ClickHouse backend: events, apps and rollups in one ClickHouse
//! database that any number of collectors (`tally serve`) share.
//!
//! - Events go in with one INSERT per group commit (a large block, as
//!   ClickHouse wants), acknowledged only when ClickHouse has answered.
//! - Dedupe: every batch's ids are looked up by `(app, cday, id)`, the
//!   table's sort key, before the insert, so a retry reaching any collector
//!   is stored once. Two collectors inserting the same id at the same moment
//!   (a retry racing its own original) can both pass the lookup; that
//!   window is one commit long, and `docs/scaling.md` says so.
//! - Rollups: a materialized view turns each inserted block into rollup
//!   rows (the rows `tally_rollup::keys_of` names, written by Tally into
//!   the `rk` columns), in the same INSERT. Install sets hold exact install
//!   numbers, or 32-bit hashes of install ids in databases made on
//!   ClickHouse before 21.8 (see [`installs`]).
//! - Apps live in the database, so every collector knows every app.

mod erase;
mod http;
mod installs;
mod layout;
mod schema;
mod source;
mod writer;

use std::ops::ControlFlow;

use tally_protocol::StoredEvent;
use tally_rollup::micros;

use crate::{App, ExportFilter, Store, StoreError};
use http::{Http, Target, quote};

/// The ClickHouse store, named by a URL such as
/// `clickhouse://user:password@127.0.0.1:8123/tally`.
///
/// ```no_run
/// use tally_store::{ClickHouseStore, Store};
/// let store = ClickHouseStore::open("clickhouse://127.0.0.1:8123/tally")?;
/// println!("{} apps", store.apps()?.len());
/// # Ok::<(), tally_store::StoreError>(())
/// ```
pub struct ClickHouseStore {
    http: Http,
    layout: layout::Layout,
}

impl ClickHouseStore {
    /// Connects, creating the database and tables if needed.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_password(url, None)
    }

    /// Connects with `password`, if given, in place of one in the URL, so
    /// that the URL can be an argument without a secret (`ps` shows
    /// arguments). The user is the URL's, else `CLICKHOUSE_USER`, else
    /// ClickHouse's `default`.
    ///
    /// ```no_run
    /// use tally_store::ClickHouseStore;
    /// let password = std::fs::read_to_string("/run/secrets/clickhouse")?;
    /// let store = ClickHouseStore::open_with_password("clickhouse://tally@db:8123/tally", Some(password.trim_end()))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with_password(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let http = Http::new(&Target::parse(url, password)?)?;
        schema::migrate(&http)?;
        let layout = layout::Layout::detect(&http)?;
        Ok(Self { http, layout })
    }
}

impl Store for ClickHouseStore {
    fn writer(&self) -> Result<Box<dyn crate::Writer>, StoreError> {
        Ok(Box::new(writer::ClickHouseWriter {
            http: self.http.clone(),
            installs: self.layout.installs,
            numbering: installs::Numbering::default(),
        }))
    }

    fn export(
        &self,
        filter: &ExportFilter,
        sink: &mut dyn FnMut(StoredEvent) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let mut sql = format!("SELECT {} FROM events WHERE 1", writer::EVENT_COLUMNS);
        if let Some(app) = &filter.app {
            sql.push_str(&format!(" AND app = {}", quote(app)));
        }
        if let Some(since) = filter.since {
            sql.push_str(&format!(" AND timestamp_us >= {}", micros(since)));
        }
        if let Some(until) = filter.until {
            sql.push_str(&format!(" AND timestamp_us < {}", micros(until)));
        }
        // LIMIT 1 BY id: an event two collectors raced to store is read once.
        sql.push_str(" ORDER BY timestamp_us, id LIMIT 1 BY id");
        let mut count = 0;
        let mut stopped = false;
        self.http.each_row(&sql, |row: serde_json::Value| {
            if stopped {
                return Ok(());
            }
            count += 1;
            if sink(writer::from_row(&row)?).is_break() {
                stopped = true;
            }
            Ok(())
        })?;
        Ok(count)
    }

    fn retain_days(&self, days: u32) -> Result<(), StoreError> {
        schema::retain_days(&self.http, days)
    }

    fn retain_app(
        &self,
        app: &str,
        events_days: Option<u32>,
        rollups_days: Option<u32>,
    ) -> Result<(), StoreError> {
        schema::retain_app(&self.http, app, events_days, rollups_days)
    }

    fn forget_install(
        &self,
        apps: &[&str],
        install: uuid::Uuid,
    ) -> Result<Option<u64>, StoreError> {
        erase::forget_install(&self.http, self.layout, apps, install)
    }

    fn add_app(&self, name: &str) -> Result<App, StoreError> {
        tally_protocol::check_app_name(name).map_err(StoreError::InvalidAppName)?;
        if self.apps()?.iter().any(|a| a.name == name) {
            return Err(StoreError::AppExists(name.to_owned()));
        }
        let app = App::new(name);
        let row = serde_json::json!({
            "name": app.name,
            "ingest_key": app.ingest_key,
            "created_us": micros(time::OffsetDateTime::now_utc()),
            "salt": app.salt,
        });
        self.http.insert("apps", format!("{row}\n").as_bytes())?;
        // Two `app add` of one name at once: the first key made wins, here
        // and in `apps`, for every caller.
        Ok(self
            .apps()?
            .into_iter()
            .find(|a| a.name == name)
            .unwrap_or(app))
    }

    fn apps(&self) -> Result<Vec<App>, StoreError> {
        let rows = self.http.rows(
            "SELECT name, argMin(ingest_key, created_us) AS ingest_key,
                 argMin(salt, (created_us, salt)) AS salt
             FROM apps GROUP BY name ORDER BY name",
        )?;
        rows.into_iter()
            .map(|r| {
                serde_json::from_value(r)
                    .map_err(|e| StoreError::Corrupt(format!("ClickHouse app row: {e}")))
            })
            .collect()
    }

    fn report(&self, query: &tally_report::Query) -> Result<tally_report::Report, StoreError> {
        tally_rollup::answer(
            &source::ClickHouseSource {
                http: &self.http,
                layout: self.layout,
                dense: source::Dense::default(),
            },
            query,
        )
    }
}
