//! `deps`: installs and runs per version of each tool the CLI depends on.

use tally_report::{Query, Table, compare_versions};

use super::table::{Column, cmp_cells, columns, distinct, runs, text};
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
    Ok(vec![Table {
        name: "deps".into(),
        columns: columns(&["tool", "version", "installs", "runs"]),
        rows: groups
            .iter()
            .map(|g| vec![tool(g), version(g), distinct(g), runs(&g.row.agg)])
            .collect(),
    }])
}
