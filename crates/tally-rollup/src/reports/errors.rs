//! `errors`: runs and installs per error kind and location, the versions
//! each was seen in, the commands that hit each kind; and runs per
//! outcome.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use tally_report::{Cell, Query, Table};

use super::table::{CellKey, Column, breakdown_ordered, distinct, runs, timestamp};
use super::top::{Top, is_other, other_key, summed};
use super::{Src, read_range};
use crate::{Dim, Error, Group, Kind, Need, Part, Row};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    use Part::{Dim as D, Version};
    let by_error = [D(Dim::ErrorKind), D(Dim::ErrorLocation)];
    // The command rollups (for outcomes) are read beside the error ones:
    // two reads of sets, on two cores.
    let (errors, versions, outcomes, commands) = std::thread::scope(|s| {
        let outcomes = s.spawn(|| {
            let need = Need::new(Kind::Command, &[&[D(Dim::Outcome)]]);
            read_range(source, &need, query)
        });
        let errors = read_range(source, &Need::new(Kind::Error, &[&by_error]), query);
        // Which versions saw each error needs no install sets.
        let by_version = [Version, by_error[0], by_error[1]];
        let versions = read_range(
            source,
            &Need::new(Kind::Error, &[&by_version]).counts_only(),
            query,
        );
        // Which commands hit each error.
        let commands = read_range(
            source,
            &Need::new(Kind::Error, &[&[by_error[0], D(Dim::ErrorCommand)]]),
            query,
        );
        let outcomes = outcomes
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (errors, versions, outcomes, commands)
    });
    let ([errors], [versions], [outcomes], [commands]) = (errors?, versions?, outcomes?, commands?);
    Ok(vec![
        table(errors, &versions, query.limit),
        super::table::breakdown_ordered(
            "commands",
            commands,
            &[
                ("kind", Column::Text(Dim::ErrorKind)),
                ("command", Column::Text(Dim::ErrorCommand)),
            ],
            false,
            query.limit,
        ),
        breakdown_ordered(
            "outcomes",
            outcomes,
            &[("outcome", Column::Text(Dim::Outcome))],
            false,
            query.limit,
        ),
    ])
}

/// `groups` per error kind and location, the first `limit` by runs;
/// `versions` per version too.
fn table(groups: Vec<Group>, versions: &[Group], limit: Option<usize>) -> Table {
    // A missing location shows as empty text.
    let key = |row: &Row| {
        vec![
            Column::Text(Dim::ErrorKind).cell(row),
            Cell::Text(row.dim(Dim::ErrorLocation).unwrap_or_default().to_owned()),
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
    // The table's order is its ranking.
    let top = Top::new(out, limit, |(k, _)| is_other(&k.0), |_, _| Ordering::Equal);
    top.table(
        "errors",
        &[
            "kind",
            "location",
            "runs",
            "installs",
            "versions",
            "first_seen",
            "last_seen",
        ],
        |(k, g)| {
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
        },
        |rest| {
            let sum = summed(rest.iter().map(|(_, g)| &g.row.agg));
            let mut cells = other_key(2);
            cells.extend([
                runs(&sum),
                Cell::Null,
                Cell::Null,
                timestamp(sum.first_us),
                timestamp(sum.last_us),
            ]);
            cells
        },
    )
}
