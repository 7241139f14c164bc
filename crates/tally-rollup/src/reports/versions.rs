//! `versions`: installs and runs per version, the share on the latest, and
//! adoption per day.

use tally_report::{Cell, Query, Table, compare_versions};

use super::table::{columns, date, distinct, ratio, runs, timestamp};
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
    Ok(tables(&all, by_version, by_day))
}

/// `all`: every install; the others grouped per version and per day and
/// version.
fn tables(all: &[Group], mut by_version: Vec<Group>, mut by_day: Vec<Group>) -> Vec<Table> {
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
