//! `commands`: runs, installs and success rate per command path.

use tally_report::{Cell, Query, Table};

use super::table::{cmp_cells, command_cell, distinct, ratio, runs};
use super::top::{Top, is_other, other_key, summed};
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
    let top = Top::new(
        groups,
        query.limit,
        |g| is_other(&[command_cell(&g.row)]),
        |a, b| b.row.agg.runs.cmp(&a.row.agg.runs),
    );
    Ok(vec![top.table(
        "commands",
        &["command", "runs", "installs", "success_rate"],
        |g| {
            let agg = &g.row.agg;
            vec![
                command_cell(&g.row),
                runs(agg),
                distinct(&g),
                ratio(agg.ok, agg.runs),
            ]
        },
        |rest| {
            let sum = summed(rest.iter().map(|g| &g.row.agg));
            let mut cells = other_key(1);
            cells.extend([runs(&sum), Cell::Null, ratio(sum.ok, sum.runs)]);
            cells
        },
    )])
}
