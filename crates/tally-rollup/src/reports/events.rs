//! `events`: the custom events a CLI records. Runs and installs per name,
//! per name and version, per day, and the values of the properties the
//! app's schema lets reports show (`Query::shown_properties`).

use tally_report::{Cell, Query, Table};

use super::table::{Column, breakdown, cmp_cells, date, runs};
use super::top::whole;
use super::{Src, read_range};
use crate::{Dim, Error, Group, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let name = Part::Dim(Dim::EventName);
    let need = Need::new(
        Kind::Event,
        &[&[name], &[name, Part::Version], &[Part::Day, name]],
    );
    let [names, versions, days] = read_range(source, &need, query)?;
    let event = ("event", Column::Text(Dim::EventName));
    let mut tables = vec![
        breakdown("events", names, &[event], query.limit),
        breakdown(
            "versions",
            versions,
            &[event, ("version", Column::Version)],
            query.limit,
        ),
        trend(days),
    ];
    if !query.shown_properties.is_empty() {
        let need = Need::new(
            Kind::EventProperty,
            &[&[name, Part::Dim(Dim::Property), Part::Dim(Dim::Value)]],
        );
        let [mut groups] = read_range(source, &need, query)?;
        groups.retain(|g| {
            let (event, key) = (g.row.dim(Dim::EventName), g.row.dim(Dim::Property));
            query
                .shown_properties
                .iter()
                .any(|(e, k)| Some(e.as_str()) == event && Some(k.as_str()) == key)
        });
        tables.push(breakdown(
            "properties",
            groups,
            &[
                event,
                ("property", Column::Text(Dim::Property)),
                ("value", Column::Text(Dim::Value)),
            ],
            query.limit,
        ));
    }
    Ok(tables)
}

/// Runs of each event per day, in order of day and name.
fn trend(mut days: Vec<Group>) -> Table {
    let name = |g: &Group| Column::Text(Dim::EventName).cell(&g.row);
    days.sort_by(|a, b| {
        a.row
            .day
            .cmp(&b.row.day)
            .then_with(|| cmp_cells(&name(a), &name(b)))
    });
    whole(
        "trend",
        &["day", "event", "runs"],
        days.iter()
            .map(|g| vec![Cell::Text(date(g.row.day)), name(g), runs(&g.row.agg)])
            .collect(),
    )
}
