//! `durations`: p50, p95 and p99 duration per command and version.

use tally_report::{Cell, Query, Table};

use super::table::{columns, command_cell, group, runs};
use super::{Src, read_range};
use crate::{Agg, Dim, Error, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    use Part::{Dim as D, Version};
    let need = Need::new(
        Kind::Command,
        &[&[Version, D(Dim::Command), D(Dim::Outcome)]],
    )
    .counts_only()
    .with_durations();
    let [groups] = read_range(source, &need, query)?;
    // A killed run's duration is when it was killed, not what it takes.
    let kept = groups
        .iter()
        .map(|g| &g.row)
        .filter(|r| r.dim(Dim::Outcome) != Some("killed"));
    let groups = group(kept, |r| {
        vec![command_cell(r), Cell::Text(r.version.clone())]
    });
    let p = |agg: &Agg, q: f64| {
        agg.durations
            .quantile(q)
            .map_or(Cell::Null, |v| Cell::Int(v as i64))
    };
    Ok(vec![Table {
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
    }])
}
