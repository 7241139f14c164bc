//! `versions`: installs and runs per version, the share on the latest, and
//! adoption per day.

use std::collections::HashSet;

use tally_report::{Cell, OTHER, Query, Table, compare_versions};

use super::table::{columns, date, distinct, ratio, runs, timestamp};
use super::top::{Top, other_key, summed, whole};
use super::{Src, read_range};
use crate::{Error, Group, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    // Every event has exactly one environment row: the fewest rows that
    // still count every run and install.
    use Part::{Day, Version};
    let need = Need::new(Kind::Environment, &[&[], &[Version], &[Day, Version]]);
    let [all, by_version, by_day] = read_range(source, &need, query)?;
    Ok(tables(&all, by_version, by_day, query.limit))
}

/// `all`: every install; the others grouped per version and per day and
/// version. The first `limit` versions by installs are listed, in the
/// adoption table too; there, the rest are one `(other)` row per day.
fn tables(
    all: &[Group],
    mut by_version: Vec<Group>,
    mut by_day: Vec<Group>,
    limit: Option<usize>,
) -> Vec<Table> {
    let total = all.first().map_or(0, |g| g.installs);
    by_version.sort_by(|a, b| compare_versions(&b.row.version, &a.row.version));
    let latest = by_version
        .iter()
        .find(|g| g.row.version != OTHER)
        .map(|g| (g.row.version.clone(), g.installs));
    let top = Top::new(
        by_version,
        limit,
        |g| g.row.version == OTHER,
        |a, b| (b.installs, b.row.agg.runs).cmp(&(a.installs, a.row.agg.runs)),
    );
    let listed: HashSet<String> = top.kept().iter().map(|g| g.row.version.clone()).collect();
    let versions = top.table(
        "versions",
        &[
            "version",
            "installs",
            "runs",
            "share",
            "first_seen",
            "last_seen",
        ],
        |g| {
            vec![
                Cell::Text(g.row.version.clone()),
                distinct(&g),
                runs(&g.row.agg),
                ratio(g.installs, total),
                timestamp(g.row.agg.first_us),
                timestamp(g.row.agg.last_us),
            ]
        },
        |rest| {
            let sum = summed(rest.iter().map(|g| &g.row.agg));
            let mut cells = other_key(1);
            cells.extend([
                Cell::Null,
                runs(&sum),
                Cell::Null,
                timestamp(sum.first_us),
                timestamp(sum.last_us),
            ]);
            cells
        },
    );
    let on_latest = latest.as_ref().map_or(0, |l| l.1);
    let summary = whole(
        "latest",
        &[
            "latest_version",
            "installs_on_latest",
            "installs",
            "share_on_latest",
        ],
        vec![vec![
            latest.map_or(Cell::Null, |l| Cell::Text(l.0)),
            Cell::Int(on_latest as i64),
            Cell::Int(total as i64),
            ratio(on_latest, total),
        ]],
    );
    by_day.sort_by(|a, b| (a.row.day, &a.row.version).cmp(&(b.row.day, &b.row.version)));
    vec![versions, summary, adoption(&by_day, &listed)]
}

/// Installs per day of each listed version, and of the others as one
/// `(other)` row a day (empty installs when it sums several).
fn adoption(by_day: &[Group], listed: &HashSet<String>) -> Table {
    let mut rows = Vec::new();
    for day in by_day.chunk_by(|a, b| a.row.day == b.row.day) {
        let (shown, others): (Vec<&Group>, Vec<&Group>) =
            day.iter().partition(|g| listed.contains(&g.row.version));
        let on = |g: &Group| Cell::Text(date(g.row.day));
        for g in shown {
            rows.push(vec![on(g), Cell::Text(g.row.version.clone()), distinct(g)]);
        }
        let other = || Cell::Text(OTHER.to_owned());
        match others.as_slice() {
            [] => {}
            [one] => rows.push(vec![on(one), other(), distinct(one)]),
            [first, ..] => rows.push(vec![on(first), other(), Cell::Null]),
        }
    }
    Table {
        name: "adoption".into(),
        columns: columns(&["day", "version", "installs"]),
        total_rows: by_day.len(),
        rows,
    }
}
