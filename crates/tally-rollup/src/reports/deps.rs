//! `deps`: installs and runs per version of each tool the CLI depends on.

use tally_report::{Cell, Query, Table, compare_versions};

use super::table::{Column, cmp_cells, distinct, runs, text};
use super::top::{Top, is_other, other_key, summed};
use super::{Src, read_range};
use crate::{Dim, Error, Group, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let need = Need::new(
        Kind::Dep,
        &[&[Part::Dim(Dim::Tool), Part::Dim(Dim::ToolVersion)]],
    );
    let [mut groups] = read_range(source, &need, query)?;
    let (tool, version) = (
        |g: &Group| Column::Text(Dim::Tool).cell(&g.row),
        |g: &Group| Column::Text(Dim::ToolVersion).cell(&g.row),
    );
    groups.sort_by(|a, b| {
        cmp_cells(&tool(a), &tool(b))
            .then_with(|| compare_versions(text(&version(b)), text(&version(a))))
            .then_with(|| cmp_cells(&version(a), &version(b)))
    });
    let top = Top::new(
        groups,
        query.limit,
        |g| is_other(&[tool(g), version(g)]),
        |a, b| (b.installs, b.row.agg.runs).cmp(&(a.installs, a.row.agg.runs)),
    );
    Ok(vec![top.table(
        "deps",
        &["tool", "version", "installs", "runs"],
        |g| vec![tool(&g), version(&g), distinct(&g), runs(&g.row.agg)],
        |rest| {
            let mut cells = other_key(2);
            cells.extend([Cell::Null, runs(&summed(rest.iter().map(|g| &g.row.agg)))]);
            cells
        },
    )])
}
