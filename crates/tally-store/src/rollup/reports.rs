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

use super::{Agg, Group, Kind, Need, Part, Row, Source, day_start};
use crate::StoreError;
use crate::dedupe::from_micros;

/// Answers `query` from `source`.
pub(crate) fn answer(source: &(dyn Source + Sync), query: &Query) -> Result<Report, StoreError> {
    use Part::{Day, Dim as D, Env, Os, Version};
    let (since, until) = (query.filter.since, query.filter.until);
    let tables = match query.report {
        // Every event has exactly one environment row: the fewest rows that
        // still count every run and install.
        ReportName::Versions => {
            let need = Need::new(Kind::Environment, &[&[], &[Version], &[Day, Version]]);
            let [all, by_version, by_day] = read(source, &need, since, until)?;
            versions(&all, by_version, by_day)
        }
        ReportName::Platforms => {
            let dims: [&[(&str, Dim)]; 5] = [
                &[("os", Dim::Os)],
                &[("os", Dim::Os), ("os_version", Dim::Text(0))],
                &[("arch", Dim::Text(1))],
                &[("container", Dim::Bool(2))],
                &[("wsl", Dim::Bool(3))],
            ];
            let names = ["os", "os_version", "arch", "container", "wsl"];
            let need = Need::new(
                Kind::Platform,
                &[&[Os], &[Os, D(0)], &[D(1)], &[D(2)], &[D(3)]],
            );
            let groups: [Vec<Group>; 5] = read(source, &need, since, until)?;
            names
                .into_iter()
                .zip(dims)
                .zip(groups)
                .map(|((name, dims), groups)| breakdown(name, groups, dims))
                .collect()
        }
        ReportName::Commands => {
            let [groups] = read(source, &Need::new(Kind::Command, &[&[D(0)]]), since, until)?;
            vec![commands(groups)]
        }
        ReportName::Flags => {
            let [groups] = read(
                source,
                &Need::new(Kind::Flag, &[&[D(0), D(1)]]),
                since,
                until,
            )?;
            vec![flags(groups)]
        }
        ReportName::Errors => {
            // The command rollups (for outcomes) are read beside the error
            // ones: two reads of sets, on two cores.
            let (errors_, versions, outcomes) = std::thread::scope(|s| {
                let outcomes =
                    s.spawn(|| read(source, &Need::new(Kind::Command, &[&[D(1)]]), since, until));
                let errors_ = read(
                    source,
                    &Need::new(Kind::Error, &[&[D(0), D(1)]]),
                    since,
                    until,
                );
                // Which versions saw each error needs no install sets.
                let versions = read(
                    source,
                    &Need::new(Kind::Error, &[&[Version, D(0), D(1)]]).counts_only(),
                    since,
                    until,
                );
                let outcomes = outcomes
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (errors_, versions, outcomes)
            });
            let ([errors_], [versions], [outcomes]) = (errors_?, versions?, outcomes?);
            vec![
                errors(errors_, &versions),
                breakdown_ordered("outcomes", outcomes, &[("outcome", Dim::Text(1))], false),
            ]
        }
        ReportName::Durations => {
            let need = Need::new(Kind::Command, &[&[Version, D(0), D(1)]])
                .counts_only()
                .with_durations();
            let [groups] = read(source, &need, since, until)?;
            vec![durations(groups)]
        }
        ReportName::Installs => {
            let need = Need::new(Kind::Environment, &[&[Day]]);
            activity(&source.rows(&need, since, until)?)
        }
        ReportName::Environments => {
            let need = Need::new(Kind::Environment, &[&[Env], &[D(0)], &[D(1)], &[D(2)]]);
            let [env, ci, agents, tty] = read(source, &need, since, until)?;
            vec![
                breakdown("env", env, &[("env", Dim::Env)]),
                breakdown("ci", ci, &[("ci", Dim::Text(0))]),
                breakdown("agents", agents, &[("agent", Dim::Text(1))]),
                breakdown("tty", tty, &[("tty", Dim::Bool(2))]),
            ]
        }
        ReportName::Deprecation => deprecation(source, query)?,
        ReportName::Health => {
            let need = Need::new(Kind::Command, &[&[Version, D(0)]]).counts_only();
            let [groups] = read(source, &need, since, until)?;
            health(&groups)
        }
        ReportName::Deps => {
            let [groups] = read(
                source,
                &Need::new(Kind::Dep, &[&[D(0), D(1)]]),
                since,
                until,
            )?;
            vec![deps(groups)]
        }
    };
    Ok(Report {
        report: query.report.as_str().to_owned(),
        tables,
    })
}

/// The rows of `need` within `[since, until)`, grouped each of the `N`
/// ways it asks.
fn read<const N: usize>(
    source: &(dyn Source + Sync),
    need: &Need,
    since: Option<time::OffsetDateTime>,
    until: Option<time::OffsetDateTime>,
) -> Result<[Vec<Group>; N], StoreError> {
    let groupings = source.grouped(need, since, until)?;
    let got = groupings.len();
    groupings
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("a source gave {got} groupings, not {N}")))
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
fn breakdown(name: &str, groups: Vec<Group>, dims: &[(&str, Dim)]) -> Table {
    breakdown_ordered(name, groups, dims, true)
}

/// Runs and installs per value of some dimensions (the parts `groups` are
/// grouped by), most runs first (or installs and runs, most installs
/// first).
fn breakdown_ordered(
    name: &str,
    groups: Vec<Group>,
    dims: &[(&str, Dim)],
    by_installs: bool,
) -> Table {
    let mut out: Vec<(Vec<Cell>, u64, u64)> = groups
        .into_iter()
        .map(|g| {
            let (i, r) = (g.installs, g.row.agg.runs);
            (
                dims.iter().map(|(_, d)| d.cell(&g.row)).collect(),
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

fn distinct(group: &Group) -> Cell {
    Cell::Int(group.installs as i64)
}

/// `all`: every install; the others grouped per version and per day and
/// version.
fn versions(all: &[Group], mut by_version: Vec<Group>, mut by_day: Vec<Group>) -> Vec<Table> {
    let total = all.first().map_or(0, |g| g.installs);
    by_version.sort_by(|a, b| compare_versions(&b.row.version, &a.row.version));
    let latest = by_version
        .first()
        .map(|g| (g.row.version.clone(), g.installs));
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
            .map(|g| {
                vec![
                    Cell::Text(g.row.version.clone()),
                    distinct(g),
                    runs(&g.row.agg),
                    ratio(g.installs, total),
                    timestamp(g.row.agg.first_us),
                    timestamp(g.row.agg.last_us),
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
    by_day.sort_by(|a, b| (a.row.day, &a.row.version).cmp(&(b.row.day, &b.row.version)));
    let adoption = Table {
        name: "adoption".into(),
        columns: columns(&["day", "version", "installs"]),
        rows: by_day
            .iter()
            .map(|g| {
                vec![
                    Cell::Text(date(g.row.day)),
                    Cell::Text(g.row.version.clone()),
                    distinct(g),
                ]
            })
            .collect(),
    };
    vec![versions, summary, adoption]
}

fn commands(mut groups: Vec<Group>) -> Table {
    groups.sort_by(|a, b| {
        b.row
            .agg
            .runs
            .cmp(&a.row.agg.runs)
            .then_with(|| cmp_cells(&command_cell(&a.row), &command_cell(&b.row)))
    });
    Table {
        name: "commands".into(),
        columns: columns(&["command", "runs", "installs", "success_rate"]),
        rows: groups
            .iter()
            .map(|g| {
                let agg = &g.row.agg;
                vec![
                    command_cell(&g.row),
                    runs(agg),
                    distinct(g),
                    ratio(agg.ok, agg.runs),
                ]
            })
            .collect(),
    }
}

fn flags(mut groups: Vec<Group>) -> Table {
    let flag = |g: &Group| Dim::Text(1).cell(&g.row);
    groups.sort_by(|a, b| {
        cmp_cells(&command_cell(&a.row), &command_cell(&b.row))
            .then(b.row.agg.runs.cmp(&a.row.agg.runs))
            .then_with(|| cmp_cells(&flag(a), &flag(b)))
    });
    Table {
        name: "flags".into(),
        columns: columns(&["command", "flag", "runs", "installs"]),
        rows: groups
            .iter()
            .map(|g| vec![command_cell(&g.row), flag(g), runs(&g.row.agg), distinct(g)])
            .collect(),
    }
}

/// `groups` per error kind and location; `versions` per version too.
fn errors(groups: Vec<Group>, versions: &[Group]) -> Table {
    // A missing location shows as empty text.
    let key = |row: &Row| {
        vec![
            Dim::Text(0).cell(row),
            Cell::Text(row.dims[1].clone().unwrap_or_default()),
        ]
    };
    let mut seen_in: BTreeMap<CellKey, BTreeSet<&str>> = BTreeMap::new();
    for g in versions {
        seen_in
            .entry(CellKey(key(&g.row)))
            .or_default()
            .insert(&g.row.version);
    }
    let mut out: Vec<(CellKey, Group)> = groups
        .into_iter()
        .map(|g| (CellKey(key(&g.row)), g))
        .collect();
    out.sort_by(|a, b| {
        b.1.row
            .agg
            .runs
            .cmp(&a.1.row.agg.runs)
            .then_with(|| a.0.cmp(&b.0))
    });
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
            .map(|(k, g)| {
                let versions = seen_in
                    .get(&k)
                    .map(|v| v.iter().copied().collect::<Vec<_>>());
                let mut cells = k.0;
                cells.extend([
                    runs(&g.row.agg),
                    distinct(&g),
                    Cell::Text(versions.unwrap_or_default().join(" ")),
                    timestamp(g.row.agg.first_us),
                    timestamp(g.row.agg.last_us),
                ]);
                cells
            })
            .collect(),
    }
}

fn durations(groups: Vec<Group>) -> Table {
    let kept = groups
        .iter()
        .map(|g| &g.row)
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

fn deprecation(source: &(dyn Source + Sync), query: &Query) -> Result<Vec<Table>, StoreError> {
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
    let [active] = read(
        source,
        &Need::new(Kind::Environment, &[&[]]),
        since,
        filter.until,
    )?;
    let active = active.first().map_or(0, |g| g.installs);
    let candidates = match what {
        What::Flag(_) => Need::new(Kind::Flag, &[&[Part::Version, Part::Dim(1)]]),
        What::Command(_) => Need::new(Kind::Command, &[&[Part::Version, Part::Dim(0)]]),
    };
    let candidates = source.rows(&candidates, since, filter.until)?;
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
            Cell::Int(active as i64),
            ratio(used.installs.len(), active),
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
fn health(groups: &[Group]) -> Vec<Table> {
    let mut by_version: BTreeMap<String, Agg> = BTreeMap::new();
    let mut by_command: BTreeMap<String, BTreeMap<String, Agg>> = BTreeMap::new();
    for row in groups.iter().map(|g| &g.row) {
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

fn deps(mut groups: Vec<Group>) -> Table {
    let (tool, version) = (
        |g: &Group| Dim::Text(0).cell(&g.row),
        |g: &Group| Dim::Text(1).cell(&g.row),
    );
    groups.sort_by(|a, b| {
        cmp_cells(&tool(a), &tool(b))
            .then_with(|| compare_versions(text(&version(b)), text(&version(a))))
            .then_with(|| cmp_cells(&version(a), &version(b)))
    });
    Table {
        name: "deps".into(),
        columns: columns(&["tool", "version", "installs", "runs"]),
        rows: groups
            .iter()
            .map(|g| vec![tool(g), version(g), distinct(g), runs(&g.row.agg)])
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
