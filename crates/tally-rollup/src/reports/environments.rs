//! `environments`: installs and runs of humans, CI and AI agents, per CI
//! vendor and agent, and with or without a terminal.

use tally_report::{Query, Table};

use super::table::{Column, breakdown};
use super::{Src, read_range};
use crate::{Dim, Error, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    use Part::{Dim as D, Env};
    let need = Need::new(
        Kind::Environment,
        &[&[Env], &[D(Dim::Ci)], &[D(Dim::Agent)], &[D(Dim::Tty)]],
    );
    let [env, ci, agents, tty] = read_range(source, &need, query)?;
    Ok(vec![
        breakdown("env", env, &[("env", Column::Env)], query.limit),
        breakdown("ci", ci, &[("ci", Column::Text(Dim::Ci))], query.limit),
        breakdown(
            "agents",
            agents,
            &[("agent", Column::Text(Dim::Agent))],
            query.limit,
        ),
        breakdown("tty", tty, &[("tty", Column::Bool(Dim::Tty))], query.limit),
    ])
}
