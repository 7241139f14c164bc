//! Every report, answered from rollup rows: one module per report, each
//! with an `answer` that says which rows it reads ([`Need`]) and makes its
//! tables of them.
//!
//! Counts are exact sums; distinct installs are the sizes of unions of
//! install sets, exact too; durations are percentiles of histograms kept to
//! three significant digits.

mod commands;
mod deprecation;
mod deps;
mod durations;
mod environments;
mod errors;
mod events;
mod flags;
mod health;
mod hiding;
mod installs;
mod platforms;
mod table;
mod top;
mod versions;

use std::sync::atomic::AtomicU64;

use tally_report::{Filter, Hidden, Query, Report, ReportName};
use time::OffsetDateTime;

use crate::{Error, Group, Need, Source};

/// A source as reports read it: shared by the threads of one report.
type Src<'s, E> = &'s (dyn Source<Error = E> + Sync);

/// Answers `query` from `source`.
pub fn answer<E: From<Error> + Send>(source: Src<'_, E>, query: &Query) -> Result<Report, E> {
    let whole;
    let query = match query.min_installs.filter(|&k| k > 1) {
        // With small groups hidden, a range is whole days: two ranges a
        // second apart would tell one event of a group apart.
        Some(_) => {
            whole = whole_days(query);
            &whole
        }
        None => query,
    };
    let hiding = query
        .min_installs
        .filter(|&k| k > 1)
        .map(|min_installs| hiding::Hiding {
            inner: source,
            min_installs,
            hidden: AtomicU64::new(0),
        });
    let source: Src<'_, E> = match &hiding {
        Some(hiding) => hiding,
        None => source,
    };
    let mut tables = match query.report {
        ReportName::Versions => versions::answer(source, query)?,
        ReportName::Platforms => platforms::answer(source, query)?,
        ReportName::Commands => commands::answer(source, query)?,
        ReportName::Flags => flags::answer(source, query)?,
        ReportName::Errors => errors::answer(source, query)?,
        ReportName::Durations => durations::answer(source, query)?,
        ReportName::Installs => installs::answer(source, query)?,
        ReportName::Environments => environments::answer(source, query)?,
        ReportName::Deprecation => deprecation::answer(source, query)?,
        ReportName::Health => health::answer(source, query)?,
        ReportName::Deps => deps::answer(source, query)?,
        ReportName::Events => events::answer(source, query)?,
    };
    let hidden = hiding.map(|hiding| {
        let dropped = hiding::drop_small_rows(&mut tables, hiding.min_installs);
        Hidden {
            min_installs: hiding.min_installs,
            groups: hiding.hidden.into_inner() + dropped,
        }
    });
    Ok(Report {
        report: query.report.as_str().to_owned(),
        tables,
        hidden,
    })
}

/// `query` with its range widened to whole UTC days.
fn whole_days(query: &Query) -> Query {
    let mut whole = query.clone();
    let day =
        |t: OffsetDateTime| crate::from_micros(crate::day_start(crate::day_of(crate::micros(t))));
    whole.filter.since = query.filter.since.map(day);
    whole.filter.until = query.filter.until.map(|t| {
        let start = day(t);
        if start == t {
            t
        } else {
            start + time::Duration::days(1)
        }
    });
    whole
}

/// The rows of `need` within `[since, until)`, grouped each of the `N`
/// ways it asks.
fn read<const N: usize, E: From<Error> + Send>(
    source: Src<'_, E>,
    filter: &Filter,
    need: &Need,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<[Vec<Group>; N], E> {
    let groupings = source.grouped(filter, need, since, until)?;
    let got = groupings.len();
    groupings
        .try_into()
        .map_err(|_| Error::Corrupt(format!("a source gave {got} groupings, not {N}")).into())
}

/// [`read`] over the query's time range.
fn read_range<const N: usize, E: From<Error> + Send>(
    source: Src<'_, E>,
    need: &Need,
    query: &Query,
) -> Result<[Vec<Group>; N], E> {
    let filter = &query.filter;
    read(source, filter, need, filter.since, filter.until)
}
