//! Every report, answered from rollup rows.
//!
//! Counts are exact sums; distinct installs are the sizes of unions of
//! install sets, exact too; durations are percentiles of histograms kept to
//! three significant digits.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use roaring::RoaringBitmap;
use tally_report::{Cell, Query, Report, ReportName, Table, compare_versions};
use time::macros::format_description;

use super::{Agg, Kind, Need, Part, Row, Source, day_start};
use crate::StoreError;
use crate::dedupe::from_micros;

/// Answers `query` from `source`.
pub(crate) fn answer(source: &dyn Source, query: &Query) -> Result<Report, StoreError> {
    use Part::{Day, Dim as D, Env, Os, Version};
    let (since, until) = (query.filter.since, query.filter.until);
    let rows = |need: Need| source.rows(&need, since, until);
    // Every event has exactly one environment row, the fewest rows that
    // still count every run and install.
    let tables = match query.report {
        ReportName::Versions => {
            versions(&rows(Need::installs(Kind::Environment, &[Day, Version]))?)
        }
        ReportName::Platforms => {
            let rows = rows(Need::installs(
                Kind::Platform,
                &[Os, D(0), D(1), D(2), D(3)],
            ))?;
            let os = breakdown("os", &rows, &[("os", Dim::Os)]);
            let os_version = breakdown(
                "os_version",
                &rows,
                &[("os", Dim::Os), ("os_version", Dim::Text(0))],
            );
            let arch = breakdown("arch", &rows, &[("arch", Dim::Text(1))]);
            let container = breakdown("container", &rows, &[("container", Dim::Bool(2))]);
            let wsl = breakdown("wsl", &rows, &[("wsl", Dim::Bool(3))]);
            vec![os, os_version, arch, container, wsl]
        }
        ReportName::Commands => vec![commands(&rows(Need::installs(Kind::Command, &[D(0)]))?)],
        ReportName::Flags => vec![flags(&rows(Need::installs(Kind::Flag, &[D(0), D(1)]))?)],
        ReportName::Errors => vec![
            errors(&rows(Need::installs(Kind::Error, &[Version, D(0), D(1)]))?),
            breakdown_ordered(
                "outcomes",
                &rows(Need::installs(Kind::Command, &[D(1)]))?,
                &[("outcome", Dim::Text(1))],
                false,
            ),
        ],
        ReportName::Durations => vec![durations(&rows(Need {
            durations: true,
            ..Need::counts(Kind::Command, &[Version, D(0), D(1)])
        })?)],
        ReportName::Installs => activity(&rows(Need::installs(Kind::Environment, &[Day]))?),
        ReportName::Environments => {
            let rows = rows(Need::installs(Kind::Environment, &[Env, D(0), D(1), D(2)]))?;
            vec![
                breakdown("env", &rows, &[("env", Dim::Env)]),
                breakdown("ci", &rows, &[("ci", Dim::Text(0))]),
                breakdown("agents", &rows, &[("agent", Dim::Text(1))]),
                breakdown("tty", &rows, &[("tty", Dim::Bool(2))]),
            ]
        }
        ReportName::Deprecation => deprecation(source, query)?,
        ReportName::Health => health(&rows(Need::counts(Kind::Command, &[Version, D(0)]))?),
        ReportName::Deps => vec![deps(&rows(Need::installs(Kind::Dep, &[D(0), D(1)]))?)],
    };
    Ok(Report {
        report: query.report.as_str().to_owned(),
        tables,
    })
}

/// A column of a breakdown: which part of a row it shows.
#[derive(Clone, Copy)]
enum Dim {
    Os,
    Env,
    Text(usize),
    Bool(usize),
}

impl Dim {
    fn cell(self, row: &Row) -> Cell {
        match self {
            Dim::Os => Cell::Text(row.os.clone()),
            Dim::Env => Cell::Text(row.env.as_str().to_owned()),
            Dim::Text(i) => row.dims[i].clone().map_or(Cell::Null, Cell::Text),
            Dim::Bool(i) => row.dims[i]
                .as_deref()
                .map_or(Cell::Null, |b| Cell::Bool(b == "true")),
        }
    }
}

/// Cells compared as SQL orders them ascending: NULLs last.
fn cmp_cells(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Greater,
        (_, Cell::Null) => Ordering::Less,
        (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
        (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
        (Cell::Int(a), Cell::Int(b)) => a.cmp(b),
        (Cell::Float(a), Cell::Float(b)) => a.total_cmp(b),
        _ => Ordering::Equal,
    }
}

fn cmp_keys(a: &[Cell], b: &[Cell]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(a, b)| cmp_cells(a, b))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A cell key usable in a map (cells hold floats, so they are not `Ord`).
#[derive(Clone, PartialEq)]
struct CellKey(Vec<Cell>);

impl Eq for CellKey {}

impl PartialOrd for CellKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CellKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(&self.0, &other.0)
    }
}

/// Merges rows by the cells `key` makes of them.
fn group<'r>(
    rows: impl IntoIterator<Item = &'r Row>,
    key: impl Fn(&Row) -> Vec<Cell>,
) -> BTreeMap<CellKey, Agg> {
    let mut groups: BTreeMap<CellKey, Agg> = BTreeMap::new();
    for row in rows {
        groups.entry(CellKey(key(row))).or_default().merge(&row.agg);
    }
    groups
}

fn installs(agg: &Agg) -> Cell {
    Cell::Int(agg.installs.len() as i64)
}

fn runs(agg: &Agg) -> Cell {
    Cell::Int(agg.runs as i64)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn ratio(n: u64, d: u64) -> Cell {
    Cell::Float(round4(n as f64 / d.max(1) as f64))
}

fn timestamp(us: i64) -> Cell {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    Cell::Text(from_micros(us).format(&format).unwrap_or_default())
}

fn date(day: i32) -> String {
    let format = format_description!("[year]-[month]-[day]");
    from_micros(day_start(day))
        .format(&format)
        .unwrap_or_default()
}

fn text(cell: &Cell) -> &str {
    match cell {
        Cell::Text(s) => s,
        _ => "",
    }
}

fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Installs and runs per value of some dimensions, most installs first.
fn breakdown(name: &str, rows: &[Row], dims: &[(&str, Dim)]) -> Table {
    breakdown_ordered(name, rows, dims, true)
}

/// Runs and installs per value of some dimensions, most runs first (or
/// installs and runs, most installs first).
fn breakdown_ordered(name: &str, rows: &[Row], dims: &[(&str, Dim)], by_installs: bool) -> Table {
    let groups = group(rows, |row| dims.iter().map(|(_, d)| d.cell(row)).collect());
    let mut out: Vec<(Vec<Cell>, u64, u64)> = groups
        .into_iter()
        .map(|(k, agg)| {
            let (i, r) = (agg.installs.len(), agg.runs);
            (
                k.0,
                if by_installs { i } else { r },
                if by_installs { r } else { i },
            )
        })
        .collect();
    out.sort_by(|a, b| {
        let counts = if by_installs {
            b.1.cmp(&a.1).then(b.2.cmp(&a.2))
        } else {
            b.1.cmp(&a.1)
        };
        counts.then_with(|| cmp_keys(&a.0, &b.0))
    });
    let mut names: Vec<&str> = dims.iter().map(|(n, _)| *n).collect();
    names.extend(if by_installs {
        ["installs", "runs"]
    } else {
        ["runs", "installs"]
    });
    Table {
        name: name.to_owned(),
        columns: columns(&names),
        rows: out
            .into_iter()
            .map(|(mut cells, first, second)| {
                cells.extend([Cell::Int(first as i64), Cell::Int(second as i64)]);
                cells
            })
            .collect(),
    }
}

/// Rows merged per version, the newest version first.
fn newest_first<'r>(rows: impl IntoIterator<Item = &'r Row>) -> Vec<(String, Agg)> {
    let mut by_version: Vec<(String, Agg)> = group(rows, |r| vec![Cell::Text(r.version.clone())])
        .into_iter()
        .map(|(k, agg)| (text(&k.0[0]).to_owned(), agg))
        .collect();
    by_version.sort_by(|a, b| compare_versions(&b.0, &a.0));
    by_version
}

fn command_cell(row: &Row) -> Cell {
    Dim::Text(0).cell(row)
}

fn versions(rows: &[Row]) -> Vec<Table> {
    let mut all = RoaringBitmap::new();
    for row in rows {
        all |= &row.agg.installs;
    }
    let total = all.len();
    let by_version = newest_first(rows);
    let latest = by_version
        .first()
        .map(|(v, agg)| (v.clone(), agg.installs.len()));
    let versions = Table {
        name: "versions".into(),
        columns: columns(&[
            "version",
            "installs",
            "runs",
            "share",
            "first_seen",
            "last_seen",
        ]),
        rows: by_version
            .iter()
            .map(|(version, agg)| {
                vec![
                    Cell::Text(version.clone()),
                    installs(agg),
                    runs(agg),
                    ratio(agg.installs.len(), total),
                    timestamp(agg.first_us),
                    timestamp(agg.last_us),
                ]
            })
            .collect(),
    };
    let on_latest = latest.as_ref().map_or(0, |l| l.1);
    let summary = Table {
        name: "latest".into(),
        columns: columns(&[
            "latest_version",
            "installs_on_latest",
            "installs",
            "share_on_latest",
        ]),
        rows: vec![vec![
            latest.map_or(Cell::Null, |l| Cell::Text(l.0)),
            Cell::Int(on_latest as i64),
            Cell::Int(total as i64),
            ratio(on_latest, total),
        ]],
    };
    let adoption = Table {
        name: "adoption".into(),
        columns: columns(&["day", "version", "installs"]),
        rows: group(rows, |r| {
            vec![Cell::Int(r.day.into()), Cell::Text(r.version.clone())]
        })
        .into_iter()
        .map(|(k, agg)| {
            let day = match k.0[0] {
                Cell::Int(d) => d as i32,
                _ => 0,
            };
            vec![Cell::Text(date(day)), k.0[1].clone(), installs(&agg)]
        })
        .collect(),
    };
    vec![versions, summary, adoption]
}

fn commands(rows: &[Row]) -> Table {
    let mut out: Vec<(CellKey, Agg)> = group(rows, |r| vec![command_cell(r)]).into_iter().collect();
    out.sort_by(|a, b| b.1.runs.cmp(&a.1.runs).then_with(|| a.0.cmp(&b.0)));
    Table {
        name: "commands".into(),
        columns: columns(&["command", "runs", "installs", "success_rate"]),
        rows: out
            .into_iter()
            .map(|(k, agg)| {
                vec![
                    k.0[0].clone(),
                    runs(&agg),
                    installs(&agg),
                    ratio(agg.ok, agg.runs),
                ]
            })
            .collect(),
    }
}

fn flags(rows: &[Row]) -> Table {
    let mut out: Vec<(CellKey, Agg)> = group(rows, |r| vec![command_cell(r), Dim::Text(1).cell(r)])
        .into_iter()
        .collect();
    out.sort_by(|a, b| {
        cmp_cells(&a.0.0[0], &b.0.0[0])
            .then(b.1.runs.cmp(&a.1.runs))
            .then_with(|| cmp_cells(&a.0.0[1], &b.0.0[1]))
    });
    Table {
        name: "flags".into(),
        columns: columns(&["command", "flag", "runs", "installs"]),
        rows: out
            .into_iter()
            .map(|(k, agg)| vec![k.0[0].clone(), k.0[1].clone(), runs(&agg), installs(&agg)])
            .collect(),
    }
}

fn errors(rows: &[Row]) -> Table {
    let mut groups: BTreeMap<CellKey, (Agg, BTreeSet<String>)> = BTreeMap::new();
    for row in rows {
        let location = row.dims[1].clone().unwrap_or_default();
        let entry = groups
            .entry(CellKey(vec![Dim::Text(0).cell(row), Cell::Text(location)]))
            .or_default();
        entry.0.merge(&row.agg);
        entry.1.insert(row.version.clone());
    }
    let mut out: Vec<_> = groups.into_iter().collect();
    out.sort_by(|a, b| b.1.0.runs.cmp(&a.1.0.runs).then_with(|| a.0.cmp(&b.0)));
    Table {
        name: "errors".into(),
        columns: columns(&[
            "kind",
            "location",
            "runs",
            "installs",
            "versions",
            "first_seen",
            "last_seen",
        ]),
        rows: out
            .into_iter()
            .map(|(k, (agg, versions))| {
                vec![
                    k.0[0].clone(),
                    k.0[1].clone(),
                    runs(&agg),
                    installs(&agg),
                    Cell::Text(versions.into_iter().collect::<Vec<_>>().join(" ")),
                    timestamp(agg.first_us),
                    timestamp(agg.last_us),
                ]
            })
            .collect(),
    }
}

fn durations(rows: &[Row]) -> Table {
    let kept = rows
        .iter()
        .filter(|r| r.dims[1].as_deref() != Some("killed"));
    let groups = group(kept, |r| {
        vec![command_cell(r), Cell::Text(r.version.clone())]
    });
    let p = |agg: &Agg, q: f64| {
        agg.durations
            .quantile(q)
            .map_or(Cell::Null, |v| Cell::Int(v as i64))
    };
    Table {
        name: "durations".into(),
        columns: columns(&["command", "version", "runs", "p50_ms", "p95_ms", "p99_ms"]),
        rows: groups
            .into_iter()
            .map(|(k, agg)| {
                vec![
                    k.0[0].clone(),
                    k.0[1].clone(),
                    runs(&agg),
                    p(&agg, 0.5),
                    p(&agg, 0.95),
                    p(&agg, 0.99),
                ]
            })
            .collect(),
    }
}

/// The Monday starting the week of `day` (1970-01-01 was a Thursday).
fn week_of(day: i32) -> i32 {
    day - (day + 3).rem_euclid(7)
}

fn activity(rows: &[Row]) -> Vec<Table> {
    let mut days: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
    for row in rows {
        *days.entry(row.day).or_default() |= &row.agg.installs;
    }
    // Active in the window of 1, 7 or 30 days ending on each active day.
    let window = |day: i32, len: i32| -> u64 {
        let mut set = RoaringBitmap::new();
        for (_, installs) in days.range(day - len + 1..=day) {
            set |= installs;
        }
        set.len()
    };
    let active = Table {
        name: "active".into(),
        columns: columns(&["day", "daily", "weekly", "monthly"]),
        rows: days
            .iter()
            .map(|(&day, set)| {
                vec![
                    Cell::Text(date(day)),
                    Cell::Int(set.len() as i64),
                    Cell::Int(window(day, 7) as i64),
                    Cell::Int(window(day, 30) as i64),
                ]
            })
            .collect(),
    };
    // Cohorts: the week each install was first seen in.
    let mut seen = RoaringBitmap::new();
    let mut cohorts: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
    let mut weeks: BTreeMap<i32, RoaringBitmap> = BTreeMap::new();
    for (&day, set) in &days {
        let fresh = set - &seen;
        seen |= &fresh;
        *cohorts.entry(week_of(day)).or_default() |= fresh;
        *weeks.entry(week_of(day)).or_default() |= set;
    }
    cohorts.retain(|_, c| !c.is_empty());
    let new = Table {
        name: "new".into(),
        columns: columns(&["week", "new_installs"]),
        rows: cohorts
            .iter()
            .map(|(&week, c)| vec![Cell::Text(date(week)), Cell::Int(c.len() as i64)])
            .collect(),
    };
    let mut retention = Vec::new();
    for (&cohort, members) in &cohorts {
        for (&week, active) in weeks.range(cohort..) {
            let n = members.intersection_len(active);
            if n > 0 {
                retention.push(vec![
                    Cell::Text(date(cohort)),
                    Cell::Int(i64::from((week - cohort) / 7)),
                    Cell::Int(n as i64),
                ]);
            }
        }
    }
    let retention = Table {
        name: "retention".into(),
        columns: columns(&["cohort", "week", "installs"]),
        rows: retention,
    };
    vec![active, new, retention]
}

fn deprecation(source: &dyn Source, query: &Query) -> Result<Vec<Table>, StoreError> {
    enum What<'a> {
        Flag(&'a str),
        Command(&'a str),
    }
    let what = match (&query.flag, &query.command) {
        (Some(flag), _) => What::Flag(flag),
        (None, Some(command)) => What::Command(command),
        (None, None) => {
            return Err(StoreError::Invalid(
                "deprecation needs flag or command".into(),
            ));
        }
    };
    // The last `days` whole days before `until`, or up to now.
    let filter = &query.filter;
    let end_day = super::day_of(crate::dedupe::micros(
        filter.until.unwrap_or_else(time::OffsetDateTime::now_utc),
    ));
    let end_day = match filter.until {
        Some(u) if crate::dedupe::micros(u) == day_start(end_day) => end_day,
        _ => end_day + 1,
    };
    let window_start = from_micros(day_start(end_day - query.days as i32));
    let since = Some(filter.since.map_or(window_start, |s| s.max(window_start)));
    let rows = |need: Need| source.rows(&need, since, filter.until);
    let active = rows(Need::installs(Kind::Environment, &[]))?;
    let candidates = match what {
        What::Flag(_) => rows(Need::installs(Kind::Flag, &[Part::Version, Part::Dim(1)]))?,
        What::Command(_) => rows(Need::installs(
            Kind::Command,
            &[Part::Version, Part::Dim(0)],
        ))?,
    };
    let matching: Vec<&Row> = match what {
        What::Flag(flag) => candidates
            .iter()
            .filter(|r| r.dims[1].as_deref() == Some(flag))
            .collect(),
        What::Command(command) => candidates
            .iter()
            .filter(|r| {
                r.dims[0].as_deref().is_some_and(|c| {
                    c == command
                        || c.strip_prefix(command)
                            .is_some_and(|rest| rest.starts_with(' '))
                })
            })
            .collect(),
    };
    let active = active
        .iter()
        .fold(RoaringBitmap::new(), |set, row| set | &row.agg.installs);
    let mut used = Agg::default();
    for row in &matching {
        used.merge(&row.agg);
    }
    let usage = Table {
        name: "usage".into(),
        columns: columns(&["runs", "installs", "active_installs", "share", "last_seen"]),
        rows: vec![vec![
            runs(&used),
            installs(&used),
            Cell::Int(active.len() as i64),
            ratio(used.installs.len(), active.len()),
            if used.runs > 0 {
                timestamp(used.last_us)
            } else {
                Cell::Null
            },
        ]],
    };
    let by_version = newest_first(matching.iter().copied());
    let by_version = Table {
        name: "by_version".into(),
        columns: columns(&["version", "runs", "installs", "last_seen"]),
        rows: by_version
            .into_iter()
            .map(|(version, agg)| {
                vec![
                    Cell::Text(version),
                    runs(&agg),
                    installs(&agg),
                    timestamp(agg.last_us),
                ]
            })
            .collect(),
    };
    Ok(vec![usage, by_version])
}

/// Per-version and per-command success and crash rates against the
/// previous version, flagging changes beyond noise.
fn health(rows: &[Row]) -> Vec<Table> {
    let mut by_version: BTreeMap<String, Agg> = BTreeMap::new();
    let mut by_command: BTreeMap<String, BTreeMap<String, Agg>> = BTreeMap::new();
    for row in rows {
        let counts = Agg {
            runs: row.agg.runs,
            ok: row.agg.ok,
            crashes: row.agg.crashes,
            ..Agg::default()
        };
        by_version
            .entry(row.version.clone())
            .or_default()
            .merge(&counts);
        by_command
            .entry(row.dims[0].clone().unwrap_or_default())
            .or_default()
            .entry(row.version.clone())
            .or_default()
            .merge(&counts);
    }
    let names = |first: &[&str]| -> Vec<String> {
        let mut all = first.to_vec();
        all.extend([
            "version",
            "runs",
            "success_rate",
            "previous_version",
            "previous_success_rate",
            "crash_rate",
            "previous_crash_rate",
            "regression",
        ]);
        columns(&all)
    };
    let rows_for = |prefix: &[Cell], versions: &BTreeMap<String, Agg>| -> Vec<Vec<Cell>> {
        let mut ordered: Vec<(&String, &Agg)> = versions.iter().collect();
        ordered.sort_by(|a, b| compare_versions(a.0, b.0));
        let mut out = Vec::new();
        for (i, (version, t)) in ordered.iter().enumerate() {
            let mut row = prefix.to_vec();
            row.extend([Cell::Text((*version).clone()), runs(t), ratio(t.ok, t.runs)]);
            match i.checked_sub(1).map(|p| ordered[p]) {
                Some((pv, p)) => row.extend([
                    Cell::Text(pv.clone()),
                    ratio(p.ok, p.runs),
                    ratio(t.crashes, t.runs),
                    ratio(p.crashes, p.runs),
                    Cell::Bool(
                        worse(t.ok, t.runs, p.ok, p.runs, false)
                            || worse(t.crashes, t.runs, p.crashes, p.runs, true),
                    ),
                ]),
                None => row.extend([
                    Cell::Null,
                    Cell::Null,
                    ratio(t.crashes, t.runs),
                    Cell::Null,
                    Cell::Bool(false),
                ]),
            }
            out.push(row);
        }
        out.reverse(); // newest first
        out
    };
    let versions = Table {
        name: "versions".into(),
        columns: names(&[]),
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
        columns: names(&["command"]),
        rows: command_rows,
    };
    vec![versions, commands]
}

/// Whether a rate moved the bad way beyond noise: a two-proportion z-test at
/// |z| > 3 (about one false alarm in 700 comparisons), with at least 30 runs
/// on each side. `higher_is_worse` for crash rates, not for success rates.
fn worse(k1: u64, n1: u64, k0: u64, n0: u64, higher_is_worse: bool) -> bool {
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

fn deps(rows: &[Row]) -> Table {
    let mut out: Vec<(CellKey, Agg)> =
        group(rows, |r| vec![Dim::Text(0).cell(r), Dim::Text(1).cell(r)])
            .into_iter()
            .collect();
    out.sort_by(|a, b| {
        cmp_cells(&a.0.0[0], &b.0.0[0])
            .then_with(|| compare_versions(text(&b.0.0[1]), text(&a.0.0[1])))
    });
    Table {
        name: "deps".into(),
        columns: columns(&["tool", "version", "installs", "runs"]),
        rows: out
            .into_iter()
            .map(|(k, agg)| vec![k.0[0].clone(), k.0[1].clone(), installs(&agg), runs(&agg)])
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-02 is a Monday, 2026-11-08 a Sunday.
        let monday = super::super::day_of(crate::dedupe::micros(
            time::macros::datetime!(2026-11-02 00:00 UTC),
        ));
        assert_eq!(week_of(monday), monday);
        assert_eq!(week_of(monday + 6), monday);
        assert_eq!(week_of(monday + 7), monday + 7);
        assert_eq!(week_of(monday - 1), monday - 7);
    }
}
