//! The server's config file (`tally serve --config FILE`): the settings
//! that are per app, in TOML, checked as a whole at start so that a typo
//! stops the server with its line rather than being ignored.
//!
//! ```toml
//! [apps.mycli]
//! # The PostHog or Segment event that is an invocation of the CLI.
//! invocation_event = "command_run"
//! # Events per second the app's key may send (bursts of four times as many pass).
//! events_per_second = 2000
//! # Raw events 13 months, what the reports count 5 years.
//! keep_events_days = 395
//! keep_rollups_days = 1825
//! # Reports leave out versions, flags ... run by fewer than 5 installs.
//! min_group_installs = 5
//!
//! # What its CLI may send (docs/api.md, "Schemas"); anything else is refused.
//! [apps.mycli.schema.events."cache.hit".properties]
//! layer = { type = "string", values = ["memory", "disk"], report = true }
//!
//! # Where its events are forwarded (docs/forwarding.md); one table each.
//! [[apps.mycli.forward]]
//! name = "posthog"
//! kind = "posthog"
//! url = "https://eu.i.posthog.com"
//! key_env = "POSTHOG_PROJECT_TOKEN"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Config, Rate};

/// A parsed config file.
///
/// ```
/// let file = tally_server::ConfigFile::parse("[apps.mycli]\ninvocation_event = \"run\"\n")?;
/// let mut config = tally_server::Config::new("tally-data".into());
/// file.apply(&mut config);
/// assert_eq!(config.invocation_events.of("mycli"), "run");
/// # Ok::<(), tally_server::ConfigFileError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Settings by app name.
    #[serde(default)]
    pub apps: BTreeMap<String, AppSettings>,
}

/// What the config file may set for one app.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// See [`InvocationEvents`](crate::InvocationEvents).
    pub invocation_event: Option<String>,
    /// The app's rate limit, in events per second (bursts of four times as
    /// many pass).
    pub events_per_second: Option<u32>,
    /// Where the app's events are forwarded (`[[apps.NAME.forward]]`).
    #[serde(default)]
    pub forward: Vec<tally_forward::Destination>,
    /// Days the app's events are kept (default: `--retention-days`).
    pub keep_events_days: Option<u32>,
    /// Days the app's rollups are kept, at least as long as its events:
    /// the reports of days whose events are gone count from them alone.
    pub keep_rollups_days: Option<u32>,
    /// Reports leave out groups (a version, a flag, an OS ...) of fewer
    /// distinct installs than this, so that a rare one cannot single out a
    /// user in a shared dashboard (default: all are shown).
    pub min_group_installs: Option<u64>,
    /// The custom events and properties the app's CLI may send.
    pub schema: Option<tally_protocol::schema::Schema>,
    /// Reports published on the app's public page (`/public/APP`), to
    /// anyone, without a token; none by default.
    #[serde(default)]
    pub public_reports: Vec<String>,
    /// Groups of fewer installs are left out of the public page (default
    /// 10, at least 2).
    pub public_min_installs: Option<u64>,
}

/// Why a config file was refused: where, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct ConfigFileError {
    /// 1-based line of the fault.
    pub line: usize,
    /// 1-based column of the fault.
    pub column: usize,
    /// What is wrong there.
    pub reason: String,
}

impl ConfigFile {
    /// Parses and checks `text`: unknown settings, wrong types and invalid
    /// app names are refused with their line.
    pub fn parse(text: &str) -> Result<Self, ConfigFileError> {
        let at = |span: Option<std::ops::Range<usize>>, reason: String| {
            let offset = span.map_or(0, |s| s.start).min(text.len());
            let before = &text[..offset];
            ConfigFileError {
                line: before.matches('\n').count() + 1,
                column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                reason,
            }
        };
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;
        for (name, settings) in &file.apps {
            let offset = text.find(name.as_str()).map(|s| s..s);
            if let Err(reason) = tally_protocol::check_app_name(name) {
                return Err(at(offset, reason));
            }
            if let Some(schema) = &settings.schema
                && let Err(reason) = schema.validate()
            {
                let at_schema = text
                    .find(&format!("[apps.{name}.schema"))
                    .map(|s| s..s)
                    .or(offset.clone());
                return Err(at(at_schema, format!("apps.{name}.schema: {reason}")));
            }
            for report in &settings.public_reports {
                let published = tally_report::ReportName::parse(report)
                    .filter(|r| !matches!(r, tally_report::ReportName::Deprecation));
                if published.is_none() {
                    return Err(at(
                        offset.clone(),
                        format!(
                            "apps.{name}.public_reports: {report:?} is not a report a public page can show"
                        ),
                    ));
                }
            }
            if settings.public_min_installs.is_some_and(|k| k < 2) {
                return Err(at(
                    offset.clone(),
                    format!(
                        "apps.{name}.public_min_installs: at least 2, or one install could be singled out"
                    ),
                ));
            }
            let (events, rollups) = (settings.keep_events_days, settings.keep_rollups_days);
            if events == Some(0) || rollups == Some(0) {
                return Err(at(offset, format!("apps.{name}: a day at least is kept")));
            }
            if let (Some(events), Some(rollups)) = (events, rollups)
                && rollups < events
            {
                return Err(at(
                    offset,
                    format!(
                        "apps.{name}: keep_rollups_days ({rollups}) must be at least keep_events_days ({events}): rollups are what the reports of kept events count"
                    ),
                ));
            }
        }
        Ok(file)
    }

    /// Sets what the file says in `config`.
    pub fn apply(self, config: &mut Config) {
        for (app, settings) in self.apps {
            if let Some(name) = settings.invocation_event {
                config.invocation_events.per_app.insert(app.clone(), name);
            }
            if let Some(n) = settings.events_per_second {
                config
                    .rate_limits
                    .apps
                    .insert(app.clone(), Rate::per_second(n, n.saturating_mul(4)));
            }
            if settings.keep_events_days.is_some() || settings.keep_rollups_days.is_some() {
                config.app_retention.insert(
                    app.clone(),
                    crate::AppRetention {
                        events_days: settings.keep_events_days,
                        rollups_days: settings.keep_rollups_days,
                    },
                );
            }
            if !settings.public_reports.is_empty() {
                let reports = settings
                    .public_reports
                    .iter()
                    .filter_map(|r| tally_report::ReportName::parse(r))
                    .collect();
                let min_installs = settings
                    .public_min_installs
                    .unwrap_or(crate::config::PUBLIC_MIN_INSTALLS);
                config.public.insert(
                    app.clone(),
                    crate::config::Public {
                        reports,
                        min_installs,
                    },
                );
            }
            if let Some(schema) = settings.schema {
                config.schemas.insert(app.clone(), schema);
            }
            if let Some(k) = settings.min_group_installs {
                config.min_group_installs.insert(app.clone(), k);
            }
            if !settings.forward.is_empty() {
                config.forward.insert(app, settings.forward);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_refused_with_its_line() {
        let text = "[apps.mycli]\ninvocation_event = \"run\"\nevents_per_secnd = 5\n";
        let e = ConfigFile::parse(text).expect_err("unknown setting");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("events_per_secnd"), "{e}");
        let e = ConfigFile::parse("[apps.\"my cli\"]\n").expect_err("bad name");
        assert_eq!(e.line, 1, "{e}");
        let e = ConfigFile::parse("[apps.mycli]\nevents_per_second = \"many\"\n")
            .expect_err("wrong type");
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn the_file_sets_each_apps_settings() {
        let file = ConfigFile::parse(
            "[apps.a]\ninvocation_event = \"run\"\n[apps.b]\nevents_per_second = 10\n",
        )
        .expect("parse");
        let mut config = Config::new("d".into());
        file.apply(&mut config);
        assert_eq!(config.invocation_events.of("a"), "run");
        assert_eq!(config.invocation_events.of("b"), "invocation");
        assert_eq!(config.rate_limits.apps["b"], Rate::per_second(10, 40));
    }

    #[test]
    fn rollups_are_kept_at_least_as_long_as_events() {
        let e = ConfigFile::parse("[apps.a]\nkeep_events_days = 30\nkeep_rollups_days = 10\n")
            .expect_err("shorter rollups");
        assert!(e.reason.contains("keep_rollups_days"), "{e}");
        ConfigFile::parse("[apps.a]\nkeep_events_days = 0\n").expect_err("no day");
        let file = ConfigFile::parse("[apps.a]\nkeep_events_days = 30\nkeep_rollups_days = 400\n")
            .expect("parse");
        let mut config = Config::new("d".into());
        config.retention_days = Some(90);
        file.apply(&mut config);
        let a = config.retention_of("a");
        assert_eq!((a.events_days, a.rollups_days), (Some(30), Some(400)));
        assert_eq!(config.retention_of("b").events_days, Some(90));
    }
}
