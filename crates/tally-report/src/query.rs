//! What a report is asked: its name and filters.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
pub use tally_protocol::Source;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Every report Tally answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportName {
    /// Active installs per version over time; share of the latest release.
    Versions,
    /// OS, OS version, arch, container, WSL.
    Platforms,
    /// Runs, installs and success rate per command path.
    Commands,
    /// Flag use per command.
    Flags,
    /// Error kinds and crash locations.
    Errors,
    /// p50 / p95 / p99 duration per command and version.
    Durations,
    /// Daily, weekly, monthly active installs; new installs; retention.
    Installs,
    /// Humans, CI vendors, AI agents, TTY.
    Environments,
    /// Who still uses a flag or command (`flag=` or `command=`).
    Deprecation,
    /// Success and crash rate per version against the previous version.
    Health,
    /// Versions of the tools the CLI depends on.
    Deps,
    /// Custom events: runs and installs per name, by version and by day,
    /// and the values of the properties the app's schema shows.
    Events,
}

impl ReportName {
    /// All reports, in the order the dashboard lists them.
    pub const ALL: [ReportName; 12] = [
        ReportName::Versions,
        ReportName::Platforms,
        ReportName::Commands,
        ReportName::Flags,
        ReportName::Errors,
        ReportName::Durations,
        ReportName::Installs,
        ReportName::Environments,
        ReportName::Deprecation,
        ReportName::Health,
        ReportName::Deps,
        ReportName::Events,
    ];

    /// The name in URLs and on the command line, e.g. "versions".
    ///
    /// ```
    /// assert_eq!(tally_report::ReportName::Deps.as_str(), "deps");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::Versions => "versions",
            ReportName::Platforms => "platforms",
            ReportName::Commands => "commands",
            ReportName::Flags => "flags",
            ReportName::Errors => "errors",
            ReportName::Durations => "durations",
            ReportName::Installs => "installs",
            ReportName::Environments => "environments",
            ReportName::Deprecation => "deprecation",
            ReportName::Health => "health",
            ReportName::Deps => "deps",
            ReportName::Events => "events",
        }
    }

    /// The report called `name`, if there is one.
    ///
    /// ```
    /// use tally_report::ReportName;
    /// assert_eq!(ReportName::parse("health"), Some(ReportName::Health));
    /// assert_eq!(ReportName::parse("nope"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for ReportName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who ran the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    /// Neither CI nor an AI agent.
    Human,
    /// A CI system.
    Ci,
    /// An AI coding agent (whether or not in CI).
    Agent,
}

impl Env {
    /// Every environment.
    pub const ALL: [Env; 3] = [Env::Human, Env::Ci, Env::Agent];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Human => "human",
            Env::Ci => "ci",
            Env::Agent => "agent",
        }
    }

    /// The environment called `name`, if there is one.
    ///
    /// ```
    /// use tally_report::Env;
    /// assert_eq!(Env::parse("ci"), Some(Env::Ci));
    /// assert_eq!(Env::parse("robot"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// The filters every report takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The app (required).
    pub app: String,
    /// Events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Events before this time.
    pub until: Option<OffsetDateTime>,
    /// Only this CLI version.
    pub version: Option<String>,
    /// Only this OS.
    pub os: Option<String>,
    /// Only this environment.
    pub env: Option<Env>,
    /// Only what this source saw (the SDK's runs, or a gateway's
    /// requests); both when `None`.
    pub source: Option<Source>,
}

/// A report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Which report.
    pub report: ReportName,
    /// Its filters.
    pub filter: Filter,
    /// For `deprecation`: the flag, e.g. "--legacy-output".
    pub flag: Option<String>,
    /// For `deprecation`: the command path, e.g. "deploy create".
    pub command: Option<String>,
    /// For `deprecation`: the window in days (default 30).
    pub days: u32,
    /// Most rows of distinct values a table lists, ranked by its main
    /// count (installs or runs); the rest are summed in one `(other)` row
    /// (see [`Table::total_rows`](crate::Table::total_rows)). `None` lists
    /// every row. Tables of days and weeks (`installs`) are not limited.
    pub limit: Option<usize>,
    /// Groups with fewer distinct installs than this are left out (and
    /// counted in [`Report::hidden`](crate::Report::hidden)), so that a
    /// rare version or flag cannot single out one user. Not a URL
    /// parameter: the server sets it from the app's settings, and no one
    /// who reads a report can lower it.
    pub min_installs: Option<u64>,
    /// For `events`: the (event name, property) pairs whose values the
    /// report may show, as the app's schema declares them (`report =
    /// true`); none when empty. Not a URL parameter: the server sets it.
    pub shown_properties: Vec<(String, String)>,
}

/// How many rows a table lists unless the query says: what a reader takes
/// in, while an app with 100,000 versions in the field still answers in a
/// small page.
pub const DEFAULT_LIMIT: usize = 100;

/// The most a query may ask for, short of `all`.
const MAX_LIMIT: usize = 1_000_000;

/// A parameter that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct QueryError {
    /// The parameter.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> QueryError {
    QueryError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Parameters every report accepts, and the deprecation report's own.
const KNOWN: &[&str] = &[
    "app", "since", "until", "version", "os", "env", "source", "flag", "command", "days", "limit",
];

impl Query {
    /// Reads a query from URL-style parameters (`app`, `since`, `until` as
    /// RFC 3339 or `YYYY-MM-DD`, `version`, `os`, `env`, `source` (`sdk`,
    /// `gateway` or `all`), `limit` as a
    /// number or `all`, and for deprecation `flag` or `command` and
    /// `days`).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use tally_report::{DEFAULT_LIMIT, Query, ReportName};
    /// let mut params = BTreeMap::from([("app".to_owned(), "mycli".to_owned())]);
    /// let query = Query::from_params(ReportName::Versions, &params)?;
    /// assert_eq!(query.limit, Some(DEFAULT_LIMIT));
    /// params.insert("limit".into(), "all".into());
    /// assert_eq!(Query::from_params(ReportName::Versions, &params)?.limit, None);
    /// # Ok::<(), tally_report::QueryError>(())
    /// ```
    pub fn from_params(
        report: ReportName,
        params: &BTreeMap<String, String>,
    ) -> Result<Self, QueryError> {
        if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(
                unknown,
                format!("unknown parameter; known: {}", KNOWN.join(", ")),
            ));
        }
        let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let app = get("app").ok_or_else(|| bad("app", "is required"))?;
        let env = get("env")
            .map(|e| Env::parse(e).ok_or_else(|| bad("env", "must be human, ci or agent")))
            .transpose()?;
        let source = match get("source") {
            None | Some("all") => None,
            Some(s) => {
                Some(Source::parse(s).ok_or_else(|| bad("source", "must be sdk, gateway or all"))?)
            }
        };
        let since = get("since").map(|v| time_param("since", v)).transpose()?;
        let until = get("until").map(|v| time_param("until", v)).transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(bad("until", "must be after since"));
        }
        let days = match get("days") {
            None => 30,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| bad("days", "must be a whole number of days from 1 to 3650"))?,
        };
        let limit = match get("limit") {
            None => Some(DEFAULT_LIMIT),
            Some("all") => None,
            Some(v) => Some(
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(
                            "limit",
                            format!("must be a whole number of rows from 1 to {MAX_LIMIT}, or all"),
                        )
                    })?,
            ),
        };
        let flag = get("flag").map(str::to_owned);
        let command = get("command").map(str::to_owned);
        if report == ReportName::Deprecation && flag.is_none() && command.is_none() {
            return Err(bad("flag", "the deprecation report needs flag or command"));
        }
        if flag.is_some() && command.is_some() {
            return Err(bad("command", "give flag or command, not both"));
        }
        Ok(Query {
            report,
            filter: Filter {
                app: app.to_owned(),
                since,
                until,
                version: get("version").map(str::to_owned),
                os: get("os").map(str::to_owned),
                env,
                source,
            },
            flag,
            command,
            days,
            limit,
            min_installs: None,
            shown_properties: Vec::new(),
        })
    }
}

fn time_param(field: &str, value: &str) -> Result<OffsetDateTime, QueryError> {
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(t);
    }
    let day = time::Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| bad(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))?;
    Ok(day.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let err = |pairs: &[(&str, &str)], report| {
            Query::from_params(report, &params(pairs))
                .expect_err("must fail")
                .field
        };
        assert_eq!(err(&[], ReportName::Commands), "app");
        assert_eq!(
            err(&[("app", "a"), ("env", "robot")], ReportName::Commands),
            "env"
        );
        assert_eq!(
            err(&[("app", "a"), ("source", "logs")], ReportName::Commands),
            "source"
        );
        assert_eq!(
            err(
                &[("app", "a"), ("since", "yesterday")],
                ReportName::Commands
            ),
            "since"
        );
        assert_eq!(
            err(&[("app", "a"), ("colour", "red")], ReportName::Commands),
            "colour"
        );
        assert_eq!(err(&[("app", "a")], ReportName::Deprecation), "flag");
        for limit in ["0", "-1", "ten", "1000001"] {
            assert_eq!(
                err(&[("app", "a"), ("limit", limit)], ReportName::Commands),
                "limit"
            );
        }
        assert_eq!(
            err(
                &[
                    ("app", "a"),
                    ("since", "2026-02-01"),
                    ("until", "2026-01-01")
                ],
                ReportName::Commands
            ),
            "until"
        );
    }

    #[test]
    fn dates_are_midnight_utc() {
        let q = Query::from_params(
            ReportName::Versions,
            &params(&[("app", "a"), ("since", "2026-11-01")]),
        )
        .expect("query");
        assert_eq!(
            q.filter.since,
            Some(time::macros::datetime!(2026-11-01 0:00 UTC))
        );
    }
}
