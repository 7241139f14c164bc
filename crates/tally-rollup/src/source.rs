//! The read side: where reports get rollup rows ([`Source`]), what they ask
//! of them ([`Need`]), and the rows merged as a report groups them.

use std::borrow::Cow;
use std::collections::hash_map::Entry;

use foldhash::HashMap;
use tally_protocol::Event;
use tally_report::{Env, Filter};
use time::OffsetDateTime;

use crate::{Agg, Dim, Dims, Key, Kind, Rollups, Span, env_of};

/// Where reports get rollup rows: a backend's stored rollups for whole
/// days plus the raw events of the partial days at the edges of a range,
/// rolled up here, all filtered by a query's app, version, OS and
/// environment (its [`Filter`], which each call is given). A backend
/// implements [`stored`](Source::stored) and [`events`](Source::events);
/// the rest has defaults it may do faster.
pub trait Source {
    /// The backend's error; rollup errors (corrupt stored data, say)
    /// become one.
    type Error: From<crate::Error> + Send;

    /// Stored rows for the whole days `first..=last` (unbounded where
    /// `None`) that pass `filter` (its time range aside), as `need` asks,
    /// each handed to `each` as it is read.
    fn stored(
        &self,
        filter: &Filter,
        need: &Need,
        days: (Option<i32>, Option<i32>),
        each: &mut dyn FnMut(Row) -> Result<(), Self::Error>,
    ) -> Result<(), Self::Error>;

    /// `app`'s events (invocations and custom events) in `[from, to)`
    /// (microseconds), each with its install number.
    fn events(&self, app: &str, from: i64, to: i64) -> Result<Vec<(Event, u32)>, Self::Error>;

    /// Rows within `[since, until)` that pass `filter`, as `need` asks,
    /// each handed to `each`.
    fn each_row(
        &self,
        filter: &Filter,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
        each: &mut dyn FnMut(Row) -> Result<(), Self::Error>,
    ) -> Result<(), Self::Error> {
        let span = Span::new(since, until);
        if span.any_days {
            self.stored(filter, need, span.days, each)?;
        }
        for &(from, to) in &span.edges {
            let events = self.events(&filter.app, from, to)?;
            rows_from_events(events.iter().map(|(e, n)| (e, *n)), need.kind, filter)
                .into_iter()
                .try_for_each(&mut *each)?;
        }
        Ok(())
    }

    /// Rows within `[since, until)` that pass `filter`, as `need` asks.
    fn rows(
        &self,
        filter: &Filter,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<Row>, Self::Error> {
        let mut out = Vec::new();
        self.each_row(filter, need, since, until, &mut |row| {
            out.push(row);
            Ok(())
        })?;
        Ok(out)
    }

    /// Rows within `[since, until)` that pass `filter`, grouped each of
    /// the ways `need` asks, in that order. A backend that counts distinct
    /// installs itself answers without sending the sets.
    fn grouped(
        &self,
        filter: &Filter,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<Vec<Group>>, Self::Error> {
        grouped_in_rust(self, filter, need, since, until)
    }
}

/// One rollup row as reports see it: the key without app and kind.
#[derive(Debug, Clone)]
pub struct Row {
    /// The UTC day.
    pub day: i32,
    /// The CLI version.
    pub version: String,
    /// The OS.
    pub os: String,
    /// Who ran the CLI.
    pub env: Env,
    /// The kind's own dimensions; read them with [`Row::dim`].
    pub dims: Dims<String>,
    /// The counts.
    pub agg: Agg,
}

impl Row {
    /// The row of `key`.
    pub fn new(key: Key<'_>, agg: Agg) -> Row {
        Row {
            day: key.day,
            version: key.version.into_owned(),
            os: key.os.into_owned(),
            env: key.env,
            dims: key.dims.map(|d| d.map(Cow::into_owned)),
            agg,
        }
    }

    /// The value of one of the row's dimensions, if it has one.
    pub fn dim(&self, dim: Dim) -> Option<&str> {
        self.dims[dim.slot()].as_deref()
    }
}

/// A part of a rollup key that a report tells rows apart by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The day.
    Day,
    /// The CLI version.
    Version,
    /// The OS.
    Os,
    /// The environment.
    Env,
    /// One of the kind's own dimensions.
    Dim(Dim),
}

/// A set of key parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parts(u8);

impl Parts {
    /// The set of `parts`.
    ///
    /// ```
    /// use tally_rollup::{Dim, Part, Parts};
    /// let parts = Parts::of(&[Part::Version, Part::Dim(Dim::Command)]);
    /// assert!(parts.has(Part::Dim(Dim::Command)) && !parts.has(Part::Os));
    /// ```
    pub fn of(parts: &[Part]) -> Parts {
        Parts(parts.iter().fold(0, |bits, p| bits | Parts::bit(*p)))
    }

    fn bit(part: Part) -> u8 {
        match part {
            Part::Day => 1,
            Part::Version => 2,
            Part::Os => 4,
            Part::Env => 8,
            Part::Dim(dim) => 16 << dim.slot(),
        }
    }

    /// Whether `part` is in the set.
    pub fn has(self, part: Part) -> bool {
        self.0 & Parts::bit(part) != 0
    }

    /// Whether the dimension in `slot` is in the set.
    pub fn has_slot(self, slot: usize) -> bool {
        self.0 & (16 << slot) != 0
    }

    fn with(self, other: Parts) -> Parts {
        Parts(self.0 | other.0)
    }
}

/// What a report reads of the rollup rows of one kind.
#[derive(Debug, Clone)]
pub struct Need {
    /// The kind of rows.
    pub kind: Kind,
    /// The ways the report groups the rows, each by a set of key parts.
    pub groupings: Vec<Parts>,
    /// Whether the report counts installs; if not, install sets and
    /// counts are left empty.
    pub installs: bool,
    /// Whether the report reads [`Agg::durations`]; left empty if not.
    pub durations: bool,
}

impl Need {
    /// Rows of `kind` grouped each of the ways in `groupings`, with their
    /// installs.
    pub fn new(kind: Kind, groupings: &[&[Part]]) -> Need {
        Need {
            kind,
            groupings: groupings.iter().map(|g| Parts::of(g)).collect(),
            installs: true,
            durations: false,
        }
    }

    /// The same, without installs.
    pub fn counts_only(self) -> Need {
        Need {
            installs: false,
            ..self
        }
    }

    /// The same, with durations.
    pub fn with_durations(self) -> Need {
        Need {
            durations: true,
            ..self
        }
    }

    /// Every part some grouping needs: a backend may merge the rows that
    /// agree on these; the other parts of the rows it returns then hold any
    /// value.
    pub fn parts(&self) -> Parts {
        self.groupings
            .iter()
            .fold(Parts::default(), |all, g| all.with(*g))
    }
}

/// Rows merged by a set of key parts (the other parts blank), with their
/// number of distinct installs.
#[derive(Debug, Clone)]
pub struct Group {
    /// The merged row.
    pub row: Row,
    /// Distinct installs in it.
    pub installs: u64,
}

/// Rows merged by the parts `by` as they come; the other parts of each
/// group are left blank.
struct Grouper {
    by: Parts,
    groups: HashMap<GroupKey, Agg>,
}

type GroupKey = (i32, String, String, Option<Env>, Dims<String>);

impl Grouper {
    fn new(by: Parts) -> Grouper {
        Grouper {
            by,
            groups: HashMap::default(),
        }
    }

    /// The key of `row`'s group.
    fn key(&self, row: &Row) -> GroupKey {
        let by = self.by;
        let text = |part: Part, text: &String| {
            if by.has(part) {
                text.clone()
            } else {
                String::new()
            }
        };
        (
            if by.has(Part::Day) { row.day } else { 0 },
            text(Part::Version, &row.version),
            text(Part::Os, &row.os),
            by.has(Part::Env).then_some(row.env),
            std::array::from_fn(|slot| {
                if by.has_slot(slot) {
                    row.dims[slot].clone()
                } else {
                    None
                }
            }),
        )
    }

    /// Counts `row` in its group.
    fn add(&mut self, row: &Row) {
        let key = self.key(row);
        self.groups.entry(key).or_default().merge(&row.agg);
    }

    /// Counts `row` in its group, taking its counts as they are when it
    /// is the first of the group.
    fn take(&mut self, row: Row) {
        let key = self.key(&row);
        match self.groups.entry(key) {
            Entry::Occupied(mut group) => group.get_mut().merge(&row.agg),
            Entry::Vacant(group) => {
                group.insert(row.agg);
            }
        }
    }

    fn groups(self) -> Vec<Group> {
        self.groups
            .into_iter()
            .map(|((day, version, os, env, dims), agg)| Group {
                installs: agg.installs.len(),
                row: Row {
                    day,
                    version,
                    os,
                    env: env.unwrap_or(Env::Human),
                    dims,
                    agg,
                },
            })
            .collect()
    }
}

/// [`Source::grouped`] from [`Source::each_row`], merging install sets
/// here.
fn grouped_in_rust<S: Source + ?Sized>(
    source: &S,
    filter: &Filter,
    need: &Need,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<Vec<Vec<Group>>, S::Error> {
    // Rows are merged as they are read, so only the groups are ever held.
    let mut groupers: Vec<Grouper> = need.groupings.iter().map(|by| Grouper::new(*by)).collect();
    source.each_row(filter, need, since, until, &mut |row| {
        if let Some((last, others)) = groupers.split_last_mut() {
            for grouper in others {
                grouper.add(&row);
            }
            last.take(row);
        }
        Ok(())
    })?;
    Ok(groupers.into_iter().map(Grouper::groups).collect())
}

/// Rolls up raw events (with their install numbers) into report rows,
/// keeping those of `kind` that pass `filter`.
pub fn rows_from_events<'a>(
    events: impl IntoIterator<Item = (&'a Event, u32)>,
    kind: Kind,
    filter: &Filter,
) -> Vec<Row> {
    let mut rollups = Rollups::default();
    for (event, install) in events {
        if passes(filter, event) {
            rollups.add(event, install);
        }
    }
    rollups
        .into_rows()
        .filter(|(k, _)| k.kind == kind)
        .map(|(k, agg)| Row::new(k, agg))
        .collect()
}

/// Whether an event passes the filter's app, version, OS, environment and
/// source.
fn passes(filter: &Filter, event: &Event) -> bool {
    event.app == filter.app
        && filter
            .version
            .as_deref()
            .is_none_or(|v| v == event.app_version)
        && filter.os.as_deref().is_none_or(|o| o == event.os)
        && filter.env.is_none_or(|e| e == env_of(event))
        && filter.source.is_none_or(|s| s == event.source)
}
