//! `flags`: runs and installs per command and flag.

use tally_report::{Query, Table};

use super::table::{Column, cmp_cells, columns, command_cell, distinct, runs};
use super::{Src, read_range};
use crate::{Dim, Error, Group, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let need = Need::new(
        Kind::Flag,
        &[&[Part::Dim(Dim::Command), Part::Dim(Dim::Flag)]],
    );
    let [mut groups] = read_range(source, &need, query)?;
    let flag = |g: &Group| Column::Text(Dim::Flag).cell(&g.row);
    groups.sort_by(|a, b| {
        cmp_cells(&command_cell(&a.row), &command_cell(&b.row))
            .then(b.row.agg.runs.cmp(&a.row.agg.runs))
            .then_with(|| cmp_cells(&flag(a), &flag(b)))
    });
    Ok(vec![Table {
        name: "flags".into(),
        columns: columns(&["command", "flag", "runs", "installs"]),
        rows: groups
            .iter()
            .map(|g| vec![command_cell(&g.row), flag(g), runs(&g.row.agg), distinct(g)])
            .collect(),
    }])
}
