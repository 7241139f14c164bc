//! `durations`: p50, p95 and p99 duration per command and version.

use tally_report::{Cell, Query, Table};

use super::table::{command_cell, group, runs};
use super::top::{Top, is_other, other_key, summed};
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
    let top = Top::new(
        groups.into_iter().collect(),
        query.limit,
        |(k, _)| is_other(&k.0),
        |a, b| b.1.runs.cmp(&a.1.runs),
    );
    let timings = |agg: &Agg| [runs(agg), p(agg, 0.5), p(agg, 0.95), p(agg, 0.99)];
    Ok(vec![top.table(
        "durations",
        &["command", "version", "runs", "p50_ms", "p95_ms", "p99_ms"],
        |(k, agg)| {
            let mut cells = k.0;
            cells.extend(timings(&agg));
            cells
        },
        |rest| {
            let mut cells = other_key(2);
            cells.extend(timings(&summed(rest.iter().map(|(_, agg)| agg))));
            cells
        },
    )])
}
