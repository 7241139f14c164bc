//! The reports, as SQL over the events table.
//!
//! Every report reads the same filtered view (`e`): the app's invocation
//! events (custom events have a `name` and are left out) within the time
//! range, version, OS and environment asked for. Counts are exact; distinct
//! installs are exact too (`count(DISTINCT install_id)`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use duckdb::types::Value;
use duckdb::{Connection, ToSql};
use tally_report::{Cell, Env, Query, Report, ReportName, Table, compare_versions};

use crate::StoreError;
use crate::dedupe::micros;

/// Times as text in tables: RFC 3339, second precision, UTC.
const TS: &str = "%Y-%m-%dT%H:%M:%SZ";

/// The filtered events as a CTE, and its parameters.
fn filtered(query: &Query) -> (String, Vec<Box<dyn ToSql>>) {
    let f = &query.filter;
    let mut sql = String::from(
        "WITH e AS (SELECT *, CASE WHEN agent IS NOT NULL THEN 'agent' \
         WHEN ci IS NOT NULL THEN 'ci' ELSE 'human' END AS env \
         FROM events WHERE app = ? AND name IS NULL",
    );
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(f.app.clone())];
    if let Some(since) = f.since {
        sql.push_str(" AND timestamp >= make_timestamp(?)");
        args.push(Box::new(micros(since)));
    }
    if let Some(until) = f.until {
        sql.push_str(" AND timestamp < make_timestamp(?)");
        args.push(Box::new(micros(until)));
    }
    if let Some(version) = &f.version {
        sql.push_str(" AND app_version = ?");
        args.push(Box::new(version.clone()));
    }
    if let Some(os) = &f.os {
        sql.push_str(" AND os = ?");
        args.push(Box::new(os.clone()));
    }
    match f.env {
        None => {}
        Some(Env::Agent) => sql.push_str(" AND agent IS NOT NULL"),
        Some(Env::Ci) => sql.push_str(" AND agent IS NULL AND ci IS NOT NULL"),
        Some(Env::Human) => sql.push_str(" AND agent IS NULL AND ci IS NULL"),
    }
    sql.push_str(") ");
    (sql, args)
}

fn cell(value: Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::Boolean(b) => Cell::Bool(b),
        Value::TinyInt(n) => Cell::Int(n.into()),
        Value::SmallInt(n) => Cell::Int(n.into()),
        Value::Int(n) => Cell::Int(n.into()),
        Value::BigInt(n) => Cell::Int(n),
        Value::HugeInt(n) => Cell::Int(n as i64),
        Value::UTinyInt(n) => Cell::Int(n.into()),
        Value::USmallInt(n) => Cell::Int(n.into()),
        Value::UInt(n) => Cell::Int(n.into()),
        Value::UBigInt(n) => Cell::Int(n as i64),
        Value::Float(x) => Cell::Float(x.into()),
        Value::Double(x) => Cell::Float(x),
        Value::Decimal(d) => Cell::Float(d.to_string().parse().unwrap_or(f64::NAN)),
        Value::Text(s) => Cell::Text(s),
        other => Cell::Text(format!("{other:?}")),
    }
}

/// Runs `body` (a SELECT over `e`) and names its result `name`.
fn table(
    conn: &Connection,
    query: &Query,
    name: &str,
    body: &str,
    extra: Vec<Box<dyn ToSql>>,
) -> Result<Table, StoreError> {
    let (cte, mut args) = filtered(query);
    args.extend(extra);
    let mut stmt = conn.prepare(&format!("{cte}{body}"))?;
    let mut rows = stmt.query(duckdb::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let n = row.as_ref().column_count();
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(cell(row.get::<_, Value>(i)?));
        }
        out.push(cells);
    }
    let columns = stmt.column_names();
    Ok(Table {
        name: name.to_owned(),
        columns,
        rows: out,
    })
}

/// Installs and runs per value of `dim`.
fn breakdown(conn: &Connection, query: &Query, name: &str, dim: &str) -> Result<Table, StoreError> {
    table(
        conn,
        query,
        name,
        &format!(
            "SELECT {dim}, count(DISTINCT install_id) AS installs, count(*) AS runs \
             FROM e GROUP BY ALL ORDER BY installs DESC, runs DESC, 1"
        ),
        vec![],
    )
}

pub(super) fn run(conn: &Connection, query: &Query) -> Result<Report, StoreError> {
    let t = |name: &str, body: &str| table(conn, query, name, body, vec![]);
    let tables = match query.report {
        ReportName::Versions => versions(conn, query)?,
        ReportName::Platforms => vec![
            breakdown(conn, query, "os", "os")?,
            breakdown(conn, query, "os_version", "os, os_version")?,
            breakdown(conn, query, "arch", "arch")?,
            breakdown(conn, query, "container", "container")?,
            breakdown(conn, query, "wsl", "wsl")?,
        ],
        ReportName::Commands => vec![t(
            "commands",
            "SELECT command, count(*) AS runs, count(DISTINCT install_id) AS installs, \
             round(avg(CASE WHEN exit_code = 0 THEN 1.0 ELSE 0.0 END), 4) AS success_rate \
             FROM e GROUP BY command ORDER BY runs DESC, command",
        )?],
        ReportName::Flags => vec![t(
            "flags",
            "SELECT command, flag, count(*) AS runs, count(DISTINCT install_id) AS installs \
             FROM (SELECT command, install_id, unnest(string_split(flags, ' ')) AS flag \
                   FROM e WHERE flags <> '') \
             GROUP BY command, flag ORDER BY command, runs DESC, flag",
        )?],
        ReportName::Errors => vec![
            t(
                "errors",
                &format!(
                    "SELECT error_kind AS kind, coalesce(error_location, '') AS location, \
                     count(*) AS runs, count(DISTINCT install_id) AS installs, \
                     string_agg(DISTINCT app_version, ' ' ORDER BY app_version) AS versions, \
                     strftime(min(timestamp), '{TS}') AS first_seen, \
                     strftime(max(timestamp), '{TS}') AS last_seen \
                     FROM e WHERE error_kind IS NOT NULL GROUP BY ALL \
                     ORDER BY runs DESC, kind, location"
                ),
            )?,
            t(
                "outcomes",
                "SELECT coalesce(outcome, CASE WHEN exit_code = 0 THEN 'success' ELSE 'failure' END) \
                 AS outcome, count(*) AS runs, count(DISTINCT install_id) AS installs \
                 FROM e GROUP BY ALL ORDER BY runs DESC, outcome",
            )?,
        ],
        ReportName::Durations => vec![t(
            "durations",
            "SELECT command, app_version AS version, count(*) AS runs, \
             quantile_disc(duration_ms, 0.5) AS p50_ms, quantile_disc(duration_ms, 0.95) AS p95_ms, \
             quantile_disc(duration_ms, 0.99) AS p99_ms \
             FROM e WHERE outcome IS DISTINCT FROM 'killed' GROUP BY ALL ORDER BY command, version",
        )?],
        ReportName::Installs => installs(conn, query)?,
        ReportName::Environments => vec![
            breakdown(conn, query, "env", "env")?,
            breakdown(conn, query, "ci", "ci")?,
            breakdown(conn, query, "agents", "agent")?,
            breakdown(conn, query, "tty", "tty")?,
        ],
        ReportName::Deprecation => deprecation(conn, query)?,
        ReportName::Health => health(conn, query)?,
        ReportName::Deps => deps(conn, query)?,
    };
    Ok(Report {
        report: query.report.as_str().to_owned(),
        tables,
    })
}

fn text(cell: &Cell) -> &str {
    match cell {
        Cell::Text(s) => s,
        _ => "",
    }
}

fn int(cell: &Cell) -> i64 {
    match cell {
        Cell::Int(n) => *n,
        _ => 0,
    }
}

fn versions(conn: &Connection, query: &Query) -> Result<Vec<Table>, StoreError> {
    let mut versions = table(
        conn,
        query,
        "versions",
        &format!(
            "SELECT app_version AS version, count(DISTINCT install_id) AS installs, \
             count(*) AS runs, \
             round(count(DISTINCT install_id) / (SELECT greatest(count(DISTINCT install_id), 1) FROM e), 4) AS share, \
             strftime(min(timestamp), '{TS}') AS first_seen, strftime(max(timestamp), '{TS}') AS last_seen \
             FROM e GROUP BY app_version"
        ),
        vec![],
    )?;
    versions
        .rows
        .sort_by(|a, b| compare_versions(text(&b[0]), text(&a[0])));
    let latest = versions.rows.first().map(|r| text(&r[0]).to_owned());
    let summary = table(
        conn,
        query,
        "latest",
        "SELECT CAST(? AS VARCHAR) AS latest_version, \
         count(DISTINCT install_id) FILTER (WHERE app_version = ?) AS installs_on_latest, \
         count(DISTINCT install_id) AS installs, \
         round(count(DISTINCT install_id) FILTER (WHERE app_version = ?) / greatest(count(DISTINCT install_id), 1), 4) AS share_on_latest \
         FROM e",
        vec![
            Box::new(latest.clone()),
            Box::new(latest.clone()),
            Box::new(latest),
        ],
    )?;
    let adoption = table(
        conn,
        query,
        "adoption",
        "SELECT strftime(date_trunc('day', timestamp), '%Y-%m-%d') AS day, app_version AS version, \
         count(DISTINCT install_id) AS installs FROM e GROUP BY ALL ORDER BY day, version",
        vec![],
    )?;
    Ok(vec![versions, summary, adoption])
}

fn installs(conn: &Connection, query: &Query) -> Result<Vec<Table>, StoreError> {
    let t = |name: &str, body: &str| table(conn, query, name, body, vec![]);
    Ok(vec![
        t(
            "active",
            // Each active day of an install counts it for the windows that end
            // on that day and the 6 (or 29) days after, up to its next active
            // day: intervals that never overlap, summed with a running total.
            // Linear in install-days, where a join of days by days is not.
            ", d AS (SELECT DISTINCT install_id, CAST(timestamp AS DATE) AS day FROM e), \
               n AS (SELECT day, lead(day) OVER (PARTITION BY install_id ORDER BY day) AS next FROM d), \
               edges AS ( \
                 SELECT day AS pos, 1 AS dd, 1 AS dw, 1 AS dm FROM n \
                 UNION ALL SELECT day + 1, -1, 0, 0 FROM n \
                 UNION ALL SELECT least(coalesce(next, day + 7), day + 7), 0, -1, 0 FROM n \
                 UNION ALL SELECT least(coalesce(next, day + 30), day + 30), 0, 0, -1 FROM n), \
               totals AS (SELECT pos, sum(dd) AS dd, sum(dw) AS dw, sum(dm) AS dm FROM edges GROUP BY pos), \
               running AS (SELECT pos, sum(dd) OVER w AS daily, sum(dw) OVER w AS weekly, sum(dm) OVER w AS monthly \
                           FROM totals WINDOW w AS (ORDER BY pos)) \
             SELECT strftime(pos, '%Y-%m-%d') AS day, CAST(daily AS BIGINT) AS daily, \
                    CAST(weekly AS BIGINT) AS weekly, CAST(monthly AS BIGINT) AS monthly \
             FROM running WHERE pos IN (SELECT day FROM d) ORDER BY pos",
        )?,
        t(
            "new",
            "SELECT strftime(week, '%Y-%m-%d') AS week, count(*) AS new_installs FROM \
             (SELECT install_id, date_trunc('week', min(timestamp)) AS week FROM e GROUP BY install_id) \
             GROUP BY week ORDER BY week",
        )?,
        t(
            "retention",
            // Continues the `WITH e AS (...)` that every query starts with.
            ", first AS (SELECT install_id, date_trunc('week', min(timestamp)) AS cohort \
                            FROM e GROUP BY install_id), \
                  active AS (SELECT DISTINCT install_id, date_trunc('week', timestamp) AS week FROM e) \
             SELECT strftime(cohort, '%Y-%m-%d') AS cohort, \
                    CAST(date_diff('week', cohort, week) AS BIGINT) AS week, count(*) AS installs \
             FROM first JOIN active USING (install_id) GROUP BY ALL ORDER BY cohort, week",
        )?,
    ])
}

fn deprecation(conn: &Connection, query: &Query) -> Result<Vec<Table>, StoreError> {
    let (condition, what) = match (&query.flag, &query.command) {
        (Some(flag), _) => ("list_contains(string_split(flags, ' '), ?)", flag.clone()),
        (None, Some(command)) => (
            "(command = ? OR starts_with(command, ? || ' '))",
            command.clone(),
        ),
        (None, None) => {
            return Err(StoreError::Invalid(
                "deprecation needs flag or command".into(),
            ));
        }
    };
    // The last `days` days before `until`, or before now.
    let end = query
        .filter
        .until
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let start = micros(end - time::Duration::days(i64::from(query.days)));
    let per_condition = condition.matches('?').count();
    let binds = |conditions: usize, start_first: bool| -> Vec<Box<dyn ToSql>> {
        let mut v: Vec<Box<dyn ToSql>> = Vec::new();
        if start_first {
            v.push(Box::new(start));
        }
        for _ in 0..conditions * per_condition {
            v.push(Box::new(what.clone()));
        }
        if !start_first {
            v.push(Box::new(start));
        }
        v
    };
    let window = "timestamp >= make_timestamp(?)";
    let usage = table(
        conn,
        query,
        "usage",
        &format!(
            "SELECT count(*) FILTER (WHERE {condition}) AS runs, \
             count(DISTINCT install_id) FILTER (WHERE {condition}) AS installs, \
             count(DISTINCT install_id) AS active_installs, \
             round(count(DISTINCT install_id) FILTER (WHERE {condition}) / greatest(count(DISTINCT install_id), 1), 4) AS share, \
             strftime(max(timestamp) FILTER (WHERE {condition}), '{TS}') AS last_seen \
             FROM e WHERE {window}"
        ),
        binds(4, false),
    )?;
    let mut by_version = table(
        conn,
        query,
        "by_version",
        &format!(
            "SELECT app_version AS version, count(*) AS runs, count(DISTINCT install_id) AS installs, \
             strftime(max(timestamp), '{TS}') AS last_seen \
             FROM e WHERE {window} AND {condition} GROUP BY app_version"
        ),
        binds(1, true),
    )?;
    by_version
        .rows
        .sort_by(|a, b| compare_versions(text(&b[0]), text(&a[0])));
    Ok(vec![usage, by_version])
}

/// Per-version and per-command success and crash rates against the
/// previous version, flagging changes beyond noise.
fn health(conn: &Connection, query: &Query) -> Result<Vec<Table>, StoreError> {
    let grouped = table(
        conn,
        query,
        "grouped",
        "SELECT command, app_version, count(*) AS runs, \
         count(*) FILTER (WHERE exit_code = 0) AS successes, \
         count(*) FILTER (WHERE outcome = 'crash') AS crashes \
         FROM e GROUP BY ALL",
        vec![],
    )?;
    #[derive(Default, Clone, Copy)]
    struct Tally {
        runs: i64,
        successes: i64,
        crashes: i64,
    }
    impl Tally {
        fn add(&mut self, other: Tally) {
            self.runs += other.runs;
            self.successes += other.successes;
            self.crashes += other.crashes;
        }
    }
    let mut by_version: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_command: BTreeMap<String, BTreeMap<String, Tally>> = BTreeMap::new();
    for row in &grouped.rows {
        let t = Tally {
            runs: int(&row[2]),
            successes: int(&row[3]),
            crashes: int(&row[4]),
        };
        by_version
            .entry(text(&row[1]).to_owned())
            .or_default()
            .add(t);
        by_command
            .entry(text(&row[0]).to_owned())
            .or_default()
            .entry(text(&row[1]).to_owned())
            .or_default()
            .add(t);
    }
    let columns = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .chain(&[
                "version",
                "runs",
                "success_rate",
                "previous_version",
                "previous_success_rate",
                "crash_rate",
                "previous_crash_rate",
                "regression",
            ])
            .map(|s| (*s).to_owned())
            .collect()
    };
    let rows_for = |prefix: &[Cell], versions: &BTreeMap<String, Tally>| -> Vec<Vec<Cell>> {
        let mut ordered: Vec<(&String, &Tally)> = versions.iter().collect();
        ordered.sort_by(|a, b| compare_versions(a.0, b.0));
        let mut rows = Vec::new();
        for (i, (version, t)) in ordered.iter().enumerate() {
            let rate = |n: i64, d: i64| n as f64 / d.max(1) as f64;
            let previous = i.checked_sub(1).map(|p| ordered[p]);
            let mut row = prefix.to_vec();
            row.extend([
                Cell::Text((*version).clone()),
                Cell::Int(t.runs),
                Cell::Float(round4(rate(t.successes, t.runs))),
            ]);
            match previous {
                Some((pv, p)) => row.extend([
                    Cell::Text(pv.clone()),
                    Cell::Float(round4(rate(p.successes, p.runs))),
                    Cell::Float(round4(rate(t.crashes, t.runs))),
                    Cell::Float(round4(rate(p.crashes, p.runs))),
                    Cell::Bool(
                        worse(t.successes, t.runs, p.successes, p.runs, false)
                            || worse(t.crashes, t.runs, p.crashes, p.runs, true),
                    ),
                ]),
                None => row.extend([
                    Cell::Null,
                    Cell::Null,
                    Cell::Float(round4(rate(t.crashes, t.runs))),
                    Cell::Null,
                    Cell::Bool(false),
                ]),
            }
            rows.push(row);
        }
        rows.reverse(); // newest first
        rows
    };
    let versions = Table {
        name: "versions".into(),
        columns: columns(&[]),
        rows: rows_for(&[], &by_version),
    };
    let mut command_rows: Vec<Vec<Cell>> = by_command
        .iter()
        .flat_map(|(command, versions)| rows_for(&[Cell::Text(command.clone())], versions))
        .collect();
    // Regressions first: they are what a maintainer opens this page for.
    command_rows.sort_by_key(|row| row.last() != Some(&Cell::Bool(true)));
    let commands = Table {
        name: "commands".into(),
        columns: columns(&["command"]),
        rows: command_rows,
    };
    Ok(vec![versions, commands])
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Whether a rate moved the bad way beyond noise: a two-proportion z-test at
/// |z| > 3 (about one false alarm in 700 comparisons), with at least 30 runs
/// on each side. `higher_is_worse` for crash rates, not for success rates.
fn worse(k1: i64, n1: i64, k0: i64, n0: i64, higher_is_worse: bool) -> bool {
    if n1 < 30 || n0 < 30 {
        return false;
    }
    let (p1, p0) = (k1 as f64 / n1 as f64, k0 as f64 / n0 as f64);
    let pooled = (k1 + k0) as f64 / (n1 + n0) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n0 as f64)).sqrt();
    if se == 0.0 {
        return false;
    }
    let z = (p1 - p0) / se;
    if higher_is_worse { z > 3.0 } else { z < -3.0 }
}

/// Tool versions, read from each event's `deps` (a JSON object).
fn deps(conn: &Connection, query: &Query) -> Result<Vec<Table>, StoreError> {
    let raw = table(
        conn,
        query,
        "raw",
        "SELECT deps, install_id::VARCHAR FROM e WHERE deps IS NOT NULL",
        vec![],
    )?;
    let mut counts: HashMap<(String, String), (i64, BTreeSet<String>)> = HashMap::new();
    for row in &raw.rows {
        let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(text(&row[0])) else {
            continue;
        };
        for (tool, version) in map {
            let entry = counts.entry((tool, version)).or_default();
            entry.0 += 1;
            entry.1.insert(text(&row[1]).to_owned());
        }
    }
    let mut rows: Vec<Vec<Cell>> = counts
        .into_iter()
        .map(|((tool, version), (runs, installs))| {
            vec![
                Cell::Text(tool),
                Cell::Text(version),
                Cell::Int(installs.len() as i64),
                Cell::Int(runs),
            ]
        })
        .collect();
    rows.sort_by(|a, b| {
        text(&a[0])
            .cmp(text(&b[0]))
            .then_with(|| compare_versions(text(&b[1]), text(&a[1])))
    });
    Ok(vec![Table {
        name: "deps".into(),
        columns: ["tool", "version", "installs", "runs"]
            .map(String::from)
            .to_vec(),
        rows,
    }])
}
