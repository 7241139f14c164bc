//! `commands`: runs, installs and success rate per command path.

use tally_report::{Query, Table};

use super::table::{cmp_cells, columns, command_cell, distinct, ratio, runs};
use super::{Src, read_range};
use crate::{Dim, Error, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let need = Need::new(Kind::Command, &[&[Part::Dim(Dim::Command)]]);
    let [mut groups] = read_range(source, &need, query)?;
    groups.sort_by(|a, b| {
        b.row
            .agg
            .runs
            .cmp(&a.row.agg.runs)
            .then_with(|| cmp_cells(&command_cell(&a.row), &command_cell(&b.row)))
    });
    Ok(vec![Table {
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
    }])
}
