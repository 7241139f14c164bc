//! `flags`: runs and installs per command and flag.

use tally_report::{Cell, Query, Table};

use super::table::{Column, cmp_cells, command_cell, distinct, runs};
use super::top::{Top, is_other, other_key, summed};
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
    let top = Top::new(
        groups,
        query.limit,
        |g| is_other(&[command_cell(&g.row), flag(g)]),
        |a, b| b.row.agg.runs.cmp(&a.row.agg.runs),
    );
    Ok(vec![top.table(
        "flags",
        &["command", "flag", "runs", "installs"],
        |g| {
            vec![
                command_cell(&g.row),
                flag(&g),
                runs(&g.row.agg),
                distinct(&g),
            ]
        },
        |rest| {
            let mut cells = other_key(2);
            cells.extend([runs(&summed(rest.iter().map(|g| &g.row.agg))), Cell::Null]);
            cells
        },
    )])
}
