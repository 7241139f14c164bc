//! What the reports make their tables of: cells from rows, orderings,
//! ratios and times, and the breakdown most tables are.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use tally_report::{Cell, Table, compare_versions};
use time::macros::format_description;

use super::top::{Top, is_other, other_key};
use crate::{Agg, Dim, Group, Row, day_start, from_micros};

/// A column of a breakdown: which part of a row it shows.
#[derive(Clone, Copy)]
pub(super) enum Column {
    Os,
    Version,
    Env,
    Text(Dim),
    Bool(Dim),
}

impl Column {
    pub(super) fn cell(self, row: &Row) -> Cell {
        match self {
            Column::Os => Cell::Text(row.os.clone()),
            Column::Version => Cell::Text(row.version.clone()),
            Column::Env => Cell::Text(row.env.as_str().to_owned()),
            Column::Text(dim) => row
                .dim(dim)
                .map_or(Cell::Null, |t| Cell::Text(t.to_owned())),
            Column::Bool(dim) => row.dim(dim).map_or(Cell::Null, |b| Cell::Bool(b == "true")),
        }
    }
}

/// Cells compared as SQL orders them ascending: NULLs last.
pub(super) fn cmp_cells(a: &Cell, b: &Cell) -> Ordering {
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
pub(super) struct CellKey(pub(super) Vec<Cell>);

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
pub(super) fn group<'r>(
    rows: impl IntoIterator<Item = &'r Row>,
    key: impl Fn(&Row) -> Vec<Cell>,
) -> BTreeMap<CellKey, Agg> {
    let mut groups: BTreeMap<CellKey, Agg> = BTreeMap::new();
    for row in rows {
        groups.entry(CellKey(key(row))).or_default().merge(&row.agg);
    }
    groups
}

pub(super) fn installs(agg: &Agg) -> Cell {
    Cell::Int(agg.installs.len() as i64)
}

pub(super) fn runs(agg: &Agg) -> Cell {
    Cell::Int(agg.runs as i64)
}

/// A group's distinct installs.
pub(super) fn distinct(group: &Group) -> Cell {
    Cell::Int(group.installs as i64)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

pub(super) fn ratio(n: u64, d: u64) -> Cell {
    Cell::Float(round4(n as f64 / d.max(1) as f64))
}

pub(super) fn timestamp(us: i64) -> Cell {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    Cell::Text(from_micros(us).format(&format).unwrap_or_default())
}

pub(super) fn date(day: i32) -> String {
    let format = format_description!("[year]-[month]-[day]");
    from_micros(day_start(day))
        .format(&format)
        .unwrap_or_default()
}

pub(super) fn text(cell: &Cell) -> &str {
    match cell {
        Cell::Text(s) => s,
        _ => "",
    }
}

pub(super) fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// The command of a row.
pub(super) fn command_cell(row: &Row) -> Cell {
    Column::Text(Dim::Command).cell(row)
}

/// Installs and runs per value of some dimensions, most installs first,
/// the first `limit` of them (see [`Top`]).
pub(super) fn breakdown(
    name: &str,
    groups: Vec<Group>,
    dims: &[(&str, Column)],
    limit: Option<usize>,
) -> Table {
    breakdown_ordered(name, groups, dims, true, limit)
}

/// Runs and installs per value of some dimensions (the parts `groups` are
/// grouped by), most runs first (or installs and runs, most installs
/// first); the first `limit` of them (see [`Top`]).
pub(super) fn breakdown_ordered(
    name: &str,
    groups: Vec<Group>,
    dims: &[(&str, Column)],
    by_installs: bool,
    limit: Option<usize>,
) -> Table {
    // (key cells, installs, runs)
    let mut out: Vec<(Vec<Cell>, u64, u64)> = groups
        .into_iter()
        .map(|g| {
            let key = dims.iter().map(|(_, d)| d.cell(&g.row)).collect();
            (key, g.installs, g.row.agg.runs)
        })
        .collect();
    out.sort_by(|a, b| {
        let counts = if by_installs {
            b.1.cmp(&a.1).then(b.2.cmp(&a.2))
        } else {
            b.2.cmp(&a.2)
        };
        counts.then_with(|| cmp_keys(&a.0, &b.0))
    });
    let mut names: Vec<&str> = dims.iter().map(|(n, _)| *n).collect();
    names.extend(if by_installs {
        ["installs", "runs"]
    } else {
        ["runs", "installs"]
    });
    let counts = |installs: Cell, runs: u64| {
        let runs = Cell::Int(runs as i64);
        if by_installs {
            [installs, runs]
        } else {
            [runs, installs]
        }
    };
    // The table's order is its ranking.
    Top::new(out, limit, |r| is_other(&r.0), |_, _| Ordering::Equal).table(
        name,
        &names,
        |(mut cells, installs, runs)| {
            cells.extend(counts(Cell::Int(installs as i64), runs));
            cells
        },
        |rest| {
            let mut cells = other_key(dims.len());
            cells.extend(counts(Cell::Null, rest.iter().map(|r| r.2).sum()));
            cells
        },
    )
}

/// Rows merged per version, the newest version first.
pub(super) fn newest_first<'r>(rows: impl IntoIterator<Item = &'r Row>) -> Vec<(String, Agg)> {
    let mut by_version: Vec<(String, Agg)> = group(rows, |r| vec![Cell::Text(r.version.clone())])
        .into_iter()
        .map(|(k, agg)| (text(&k.0[0]).to_owned(), agg))
        .collect();
    by_version.sort_by(|a, b| compare_versions(&b.0, &a.0));
    by_version
}
