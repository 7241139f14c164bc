//! `deprecation`: who still uses a flag or a command, in the last `days`
//! days, and on which versions.

use tally_report::{Cell, OTHER, Query, Table};

use super::table::{installs, newest_first, ratio, runs, timestamp};
use super::top::{Top, whole};
use super::{Src, read};
use crate::{Agg, Dim, Error, Kind, Need, Part, Row, day_of, day_start, from_micros, micros};

/// What the report asks about.
enum What<'a> {
    Flag(&'a str),
    Command(&'a str),
}

impl What<'_> {
    /// The rows that hold what is asked about, per version.
    fn need(&self) -> Need {
        match self {
            What::Flag(_) => Need::new(Kind::Flag, &[&[Part::Version, Part::Dim(Dim::Flag)]]),
            What::Command(_) => {
                Need::new(Kind::Command, &[&[Part::Version, Part::Dim(Dim::Command)]])
            }
        }
    }

    /// Whether `row` is a use of it: the flag, or the command or one of
    /// its subcommands.
    fn used_in(&self, row: &Row) -> bool {
        match self {
            What::Flag(flag) => row.dim(Dim::Flag) == Some(flag),
            What::Command(command) => row.dim(Dim::Command).is_some_and(|c| {
                c == *command
                    || c.strip_prefix(command)
                        .is_some_and(|rest| rest.starts_with(' '))
            }),
        }
    }
}

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let what = match (&query.flag, &query.command) {
        (Some(flag), _) => What::Flag(flag),
        (None, Some(command)) => What::Command(command),
        (None, None) => {
            return Err(Error::Invalid("deprecation needs flag or command".into()).into());
        }
    };
    // The last `days` whole days before `until`, or up to now.
    let filter = &query.filter;
    let until = filter.until.map(micros);
    let end_day = day_of(until.unwrap_or_else(|| micros(time::OffsetDateTime::now_utc())));
    let end_day = match until {
        Some(u) if u == day_start(end_day) => end_day,
        _ => end_day + 1,
    };
    let window_start = from_micros(day_start(end_day - query.days as i32));
    let since = Some(filter.since.map_or(window_start, |s| s.max(window_start)));
    let [active] = read(
        source,
        filter,
        &Need::new(Kind::Environment, &[&[]]),
        since,
        filter.until,
    )?;
    let active = active.first().map_or(0, |g| g.installs);
    let candidates = source.rows(filter, &what.need(), since, filter.until)?;
    let matching: Vec<&Row> = candidates.iter().filter(|r| what.used_in(r)).collect();
    let mut used = Agg::default();
    for row in &matching {
        used.merge(&row.agg);
    }
    let usage = whole(
        "usage",
        &["runs", "installs", "active_installs", "share", "last_seen"],
        vec![vec![
            runs(&used),
            installs(&used),
            Cell::Int(active as i64),
            ratio(used.installs.len(), active),
            if used.runs > 0 {
                timestamp(used.last_us)
            } else {
                Cell::Null
            },
        ]],
    );
    Ok(vec![usage, by_version(&matching, query.limit)])
}

/// Runs and installs of what is asked about per version, newest first; the
/// first `limit` versions by installs. The `(other)` row's installs are the
/// exact union, from the rows' sets.
fn by_version(matching: &[&Row], limit: Option<usize>) -> Table {
    let cells =
        |version: Cell, agg: &Agg| vec![version, runs(agg), installs(agg), timestamp(agg.last_us)];
    Top::new(
        newest_first(matching.iter().copied()),
        limit,
        |(version, _)| version == OTHER,
        |a, b| (b.1.installs.len(), b.1.runs).cmp(&(a.1.installs.len(), a.1.runs)),
    )
    .table(
        "by_version",
        &["version", "runs", "installs", "last_seen"],
        |(version, agg)| cells(Cell::Text(version), &agg),
        |rest| {
            let mut sum = Agg::default();
            rest.iter().for_each(|(_, agg)| sum.merge(agg));
            cells(Cell::Text(OTHER.to_owned()), &sum)
        },
    )
}
