//! Rollups: what the reports read instead of the raw events.
//!
//! Every invocation event adds to one row per [`Kind`], keyed by its UTC
//! day, app, version, OS, environment and the kind's own dimensions (the
//! command and outcome, a flag, an error, ...). A row holds exact counts, the
//! first and last time seen, a histogram of durations, and the *set* of
//! installs as a compressed bitmap of install numbers. Sets, not counts,
//! because distinct installs over a week are not the sum of distinct
//! installs per day; a union of bitmaps is, and it stays exact.
//!
//! A backend stores the rows it makes at ingest in the same transaction as
//! the events (so rollups are exactly-once as the events are), may append
//! several rows for one key (one per commit) and merge them later; readers
//! merge whatever they find. Ranges that start or end inside a day are
//! answered by adding that day's raw events, rolled up on the fly by the same
//! code, so every answer comes from one implementation.

mod histogram;
mod reports;

use std::borrow::Cow;
// Rollup keys hash several strings per event; foldhash does that several
// times faster than SipHash, with a per-process random seed since the
// strings come from clients.
use foldhash::HashMap;
use std::collections::hash_map::Entry;

use roaring::RoaringBitmap;
use tally_protocol::{Event, Outcome};
use tally_report::Env;
use time::OffsetDateTime;

use crate::StoreError;
use crate::dedupe::micros;
pub(crate) use histogram::Histogram;
pub(crate) use reports::answer;

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// What a rollup row is broken down by, besides day, version, OS and env.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Command path and outcome.
    Command,
    /// Command path and one flag name.
    Flag,
    /// Error kind and location (events with an error only).
    Error,
    /// OS version, arch, container, WSL.
    Platform,
    /// CI vendor, AI agent, TTY.
    Environment,
    /// Tool and tool version (one row per dependency).
    Dep,
}

impl Kind {
    pub(crate) const ALL: [Kind; 6] = [
        Kind::Command,
        Kind::Flag,
        Kind::Error,
        Kind::Platform,
        Kind::Environment,
        Kind::Dep,
    ];

    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Flag => "flag",
            Kind::Error => "error",
            Kind::Platform => "platform",
            Kind::Environment => "environment",
            Kind::Dep => "dep",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The environment of an event: an agent wins over CI.
pub(crate) fn env_of(event: &Event) -> Env {
    if event.agent.is_some() {
        Env::Agent
    } else if event.ci.is_some() {
        Env::Ci
    } else {
        Env::Human
    }
}

/// Parses a stored environment name.
pub(crate) fn parse_env(s: &str) -> Option<Env> {
    [Env::Human, Env::Ci, Env::Agent]
        .into_iter()
        .find(|e| e.as_str() == s)
}

/// The outcome reports show: the SDK's, or one read off the exit code.
pub(crate) fn outcome_of(event: &Event) -> Outcome {
    event.outcome.unwrap_or(if event.exit_code == 0 {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

/// Days since 1970-01-01 (UTC) of a time in microseconds.
pub(crate) fn day_of(us: i64) -> i32 {
    us.div_euclid(DAY_US) as i32
}

/// The first microsecond of a day.
pub(crate) fn day_start(day: i32) -> i64 {
    i64::from(day) * DAY_US
}

/// The first day kept when keeping `days` whole days before today.
pub(crate) fn retention_cutoff(days: u32) -> i32 {
    day_of(micros(OffsetDateTime::now_utc())) - days as i32
}

/// The key of a rollup row (with the app and kind it belongs to). Keys made
/// at ingest borrow from the events; keys read back own their text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key<'a> {
    pub(crate) app: Cow<'a, str>,
    pub(crate) kind: Kind,
    pub(crate) day: i32,
    pub(crate) version: Cow<'a, str>,
    pub(crate) os: Cow<'a, str>,
    pub(crate) env: Env,
    /// The kind's own dimensions, in the order [`Kind`] lists them; `None`
    /// where the event had no value (and past the kind's last dimension).
    pub(crate) dims: [Option<Cow<'a, str>>; 4],
}

/// What a rollup row counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Agg {
    pub(crate) runs: u64,
    /// Runs with exit code 0.
    pub(crate) ok: u64,
    /// Runs that crashed.
    pub(crate) crashes: u64,
    /// Earliest and latest event time, microseconds.
    pub(crate) first_us: i64,
    pub(crate) last_us: i64,
    /// Install numbers (see [`Installs`]).
    pub(crate) installs: RoaringBitmap,
    /// Durations, for [`Kind::Command`] rows only.
    pub(crate) durations: Histogram,
}

impl Agg {
    /// Counts one event, which happened at `at` (microseconds).
    fn add(&mut self, event: &Event, at: i64, install: u32, durations: bool) {
        if self.runs == 0 {
            (self.first_us, self.last_us) = (at, at);
        } else {
            self.first_us = self.first_us.min(at);
            self.last_us = self.last_us.max(at);
        }
        self.runs += 1;
        self.ok += u64::from(event.exit_code == 0);
        self.crashes += u64::from(event.outcome == Some(Outcome::Crash));
        self.installs.insert(install);
        if durations {
            self.durations.add(event.duration_ms, 1);
        }
    }

    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: &Agg) {
        if self.runs == 0 {
            self.first_us = other.first_us;
            self.last_us = other.last_us;
        } else if other.runs > 0 {
            self.first_us = self.first_us.min(other.first_us);
            self.last_us = self.last_us.max(other.last_us);
        }
        self.runs += other.runs;
        self.ok += other.ok;
        self.crashes += other.crashes;
        self.installs |= &other.installs;
        self.durations.merge(&other.durations);
    }

    /// The install bitmap as stored.
    pub(crate) fn installs_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.installs.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = self.installs.serialize_into(&mut out);
        out
    }

    /// Reads an install bitmap as stored.
    pub(crate) fn installs_from(bytes: &[u8]) -> Result<RoaringBitmap, StoreError> {
        RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| StoreError::Corrupt(format!("rollup install set: {e}")))
    }
}

/// The rollup rows an invocation event counts in: each kind with its own
/// dimensions (see [`Key::dims`]).
pub(crate) fn keys_of(event: &Event) -> Vec<(Kind, [Option<&str>; 4])> {
    let flag = |b: Option<bool>| b.map(|b| if b { "true" } else { "false" });
    let mut keys = vec![
        (
            Kind::Command,
            [
                Some(event.command.as_str()),
                Some(outcome_of(event).as_str()),
                None,
                None,
            ],
        ),
        (
            Kind::Platform,
            [
                event.os_version.as_deref(),
                Some(event.arch.as_str()),
                flag(event.container),
                flag(event.wsl),
            ],
        ),
        (
            Kind::Environment,
            [
                event.ci.as_deref(),
                event.agent.as_deref(),
                flag(event.tty),
                None,
            ],
        ),
    ];
    for (i, f) in event.flags.iter().enumerate() {
        // A flag given twice counts once for the run.
        if !event.flags[..i].contains(f) {
            keys.push((
                Kind::Flag,
                [Some(event.command.as_str()), Some(f.as_str()), None, None],
            ));
        }
    }
    if let Some(error) = &event.error {
        keys.push((
            Kind::Error,
            [
                Some(error.kind.as_str()),
                error.location.as_deref(),
                None,
                None,
            ],
        ));
    }
    for (tool, version) in &event.deps {
        keys.push((
            Kind::Dep,
            [Some(tool.as_str()), Some(version.as_str()), None, None],
        ));
    }
    keys
}

/// Rollup rows being built, e.g. for one batch of events.
///
/// Kept in two levels: the part of a key all of an event's rows share (app,
/// day, version, OS, environment), then each row's kind and dimensions. An
/// event counts in half a dozen rows, and so hashes and compares its shared
/// part once rather than once per row.
#[derive(Debug, Default)]
pub(crate) struct Rollups {
    rows: hashbrown::HashMap<Shared<'static>, hashbrown::HashMap<Own<'static>, Agg>>,
}

/// The part of a rollup key that all the rows of one event share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shared<'a> {
    app: Cow<'a, str>,
    day: i32,
    version: Cow<'a, str>,
    os: Cow<'a, str>,
    env: Env,
}

/// The part of a rollup key that is the row's own: see [`Key::dims`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Own<'a> {
    kind: Kind,
    dims: [Option<Cow<'a, str>>; 4],
}

impl Rollups {
    /// Adds one stored event (custom events have no rollups). A key is
    /// looked up as it borrows from the event, and copied only when new:
    /// most events add to rows that exist.
    pub(crate) fn add(&mut self, event: &Event, install: u32) {
        if event.name.is_some() {
            return;
        }
        let at = micros(event.timestamp);
        let shared = Shared {
            app: Cow::Borrowed(&event.app),
            day: day_of(at),
            version: Cow::Borrowed(&event.app_version),
            os: Cow::Borrowed(&event.os),
            env: env_of(event),
        };
        let rows = self.rows.entry_ref(&Lookup(shared)).or_default();
        for (kind, dims) in keys_of(event) {
            let own = Own {
                kind,
                dims: dims.map(|d| d.map(Cow::Borrowed)),
            };
            rows.entry_ref(&Lookup(own)).or_default().add(
                event,
                at,
                install,
                kind == Kind::Command,
            );
        }
    }

    /// Adds rows (read back, say) into these.
    #[cfg(feature = "duckdb")]
    pub(crate) fn merge(&mut self, key: Key<'static>, agg: &Agg) {
        let (shared, own) = split(key);
        self.rows
            .entry(shared)
            .or_default()
            .entry(own)
            .or_default()
            .merge(agg);
    }

    /// The rows, each with its whole key.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (Key<'_>, &Agg)> {
        self.rows.iter().flat_map(|(shared, rows)| {
            rows.iter().map(move |(own, agg)| {
                let key = Key {
                    app: borrowed(&shared.app),
                    kind: own.kind,
                    day: shared.day,
                    version: borrowed(&shared.version),
                    os: borrowed(&shared.os),
                    env: shared.env,
                    dims: own.dims.each_ref().map(|d| d.as_deref().map(borrowed)),
                };
                (key, agg)
            })
        })
    }

    /// The rows, taken.
    pub(crate) fn into_rows(self) -> impl Iterator<Item = (Key<'static>, Agg)> {
        self.rows.into_iter().flat_map(|(shared, rows)| {
            rows.into_iter().map(move |(own, agg)| {
                let key = Key {
                    app: shared.app.clone(),
                    kind: own.kind,
                    day: shared.day,
                    version: shared.version.clone(),
                    os: shared.os.clone(),
                    env: shared.env,
                    dims: own.dims,
                };
                (key, agg)
            })
        })
    }

    /// How many rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.values().map(hashbrown::HashMap::len).sum()
    }

    /// The days the rows are of (a day once per combination of the other
    /// shared parts).
    pub(crate) fn days(&self) -> impl Iterator<Item = i32> {
        self.rows.keys().map(|shared| shared.day)
    }
}

fn borrowed(text: &str) -> Cow<'_, str> {
    Cow::Borrowed(text)
}

fn owned(text: &str) -> Cow<'static, str> {
    Cow::Owned(text.to_owned())
}

#[cfg(feature = "duckdb")]
fn split(key: Key<'static>) -> (Shared<'static>, Own<'static>) {
    let shared = Shared {
        app: key.app,
        day: key.day,
        version: key.version,
        os: key.os,
        env: key.env,
    };
    let own = Own {
        kind: key.kind,
        dims: key.dims,
    };
    (shared, own)
}

/// A part of a key that borrows, to look up rows whose keys own their text.
#[derive(Hash)]
struct Lookup<T>(T);

/// A key part that borrows, and the same part as a row keeps it.
trait KeyPart {
    type Kept;
    fn is(&self, kept: &Self::Kept) -> bool;
}

impl KeyPart for Shared<'_> {
    type Kept = Shared<'static>;
    fn is(&self, kept: &Shared<'static>) -> bool {
        self == kept
    }
}

impl KeyPart for Own<'_> {
    type Kept = Own<'static>;
    fn is(&self, kept: &Own<'static>) -> bool {
        self == kept
    }
}

impl<T: KeyPart> hashbrown::Equivalent<T::Kept> for Lookup<T> {
    fn equivalent(&self, kept: &T::Kept) -> bool {
        self.0.is(kept)
    }
}

impl From<&Lookup<Shared<'_>>> for Shared<'static> {
    fn from(lookup: &Lookup<Shared<'_>>) -> Self {
        Shared {
            app: owned(&lookup.0.app),
            day: lookup.0.day,
            version: owned(&lookup.0.version),
            os: owned(&lookup.0.os),
            env: lookup.0.env,
        }
    }
}

impl From<&Lookup<Own<'_>>> for Own<'static> {
    fn from(lookup: &Lookup<Own<'_>>) -> Self {
        Own {
            kind: lookup.0.kind,
            dims: lookup.0.dims.each_ref().map(|d| d.as_deref().map(owned)),
        }
    }
}

/// Dense numbers for installs, the members of rollup install sets.
///
/// Numbers are handed out in order of first appearance, so installs active
/// at the same time have close numbers and their bitmaps compress well.
#[derive(Debug, Default)]
pub(crate) struct Installs {
    numbers: HashMap<u128, u32>,
}

impl Installs {
    /// Remembers a stored number.
    pub(crate) fn insert(&mut self, install: u128, number: u32) {
        self.numbers.insert(install, number);
    }

    /// The stored number of an install.
    pub(crate) fn get(&self, install: u128) -> Option<u32> {
        self.numbers.get(&install).copied()
    }

    /// How many installs have numbers: the next number to hand out.
    pub(crate) fn len(&self) -> usize {
        self.numbers.len()
    }
}

/// A report's time range in microseconds, split into whole days (read from
/// stored rollups) and the partial days at its edges (rolled up from raw
/// events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    /// Whole days, first and last inclusive; `None` is unbounded on that side.
    pub(crate) days: (Option<i32>, Option<i32>),
    /// Whether there are whole days at all.
    pub(crate) any_days: bool,
    /// Raw ranges `[from, to)` in microseconds.
    pub(crate) edges: Vec<(i64, i64)>,
}

impl Span {
    /// Splits `[since, until)`.
    pub(crate) fn new(since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> Span {
        let since = since.map(micros);
        let until = until.map(micros);
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Span {
                    days: (None, None),
                    any_days: false,
                    edges: vec![],
                };
            }
            if day_of(s) == day_of(u - 1) && (s % DAY_US != 0 || u % DAY_US != 0) {
                return Span {
                    days: (None, None),
                    any_days: false,
                    edges: vec![(s, u)],
                };
            }
        }
        let mut edges = Vec::new();
        let first = since.map(|s| {
            let d = day_of(s);
            if s == day_start(d) {
                d
            } else {
                edges.push((s, day_start(d + 1)));
                d + 1
            }
        });
        let last = until.map(|u| {
            let d = day_of(u);
            if u != day_start(d) {
                edges.push((day_start(d), u));
            }
            d - 1
        });
        let any_days = match (first, last) {
            (Some(f), Some(l)) => f <= l,
            _ => true,
        };
        Span {
            days: (first, last),
            any_days,
            edges,
        }
    }
}

/// One rollup row as reports see it: the key without app and kind.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) day: i32,
    pub(crate) version: String,
    pub(crate) os: String,
    pub(crate) env: Env,
    pub(crate) dims: [Option<String>; 4],
    pub(crate) agg: Agg,
}

impl Row {
    pub(crate) fn new(key: Key<'_>, agg: Agg) -> Row {
        Row {
            day: key.day,
            version: key.version.into_owned(),
            os: key.os.into_owned(),
            env: key.env,
            dims: key.dims.map(|d| d.map(Cow::into_owned)),
            agg,
        }
    }
}

/// A part of a rollup key that a report tells rows apart by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Day,
    Version,
    Os,
    Env,
    /// One of the kind's own dimensions ([`Key::dims`]).
    Dim(usize),
}

/// A set of key parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Parts(u8);

impl Parts {
    pub(crate) fn of(parts: &[Part]) -> Parts {
        Parts(parts.iter().fold(0, |bits, p| bits | Parts::bit(*p)))
    }

    fn bit(part: Part) -> u8 {
        match part {
            Part::Day => 1,
            Part::Version => 2,
            Part::Os => 4,
            Part::Env => 8,
            Part::Dim(i) => 16 << i,
        }
    }

    pub(crate) fn has(self, part: Part) -> bool {
        self.0 & Parts::bit(part) != 0
    }

    fn with(self, other: Parts) -> Parts {
        Parts(self.0 | other.0)
    }
}

/// What a report reads of the rollup rows of one kind.
#[derive(Debug, Clone)]
pub(crate) struct Need {
    pub(crate) kind: Kind,
    /// The ways the report groups the rows, each by a set of key parts.
    pub(crate) groupings: Vec<Parts>,
    /// Whether the report counts installs; if not, install sets and
    /// counts are left empty.
    pub(crate) installs: bool,
    /// Whether the report reads [`Agg::durations`]; left empty if not.
    pub(crate) durations: bool,
}

impl Need {
    /// Rows of `kind` grouped each of the ways in `groupings`, with their
    /// installs.
    pub(crate) fn new(kind: Kind, groupings: &[&[Part]]) -> Need {
        Need {
            kind,
            groupings: groupings.iter().map(|g| Parts::of(g)).collect(),
            installs: true,
            durations: false,
        }
    }

    /// The same, without installs.
    pub(crate) fn counts_only(self) -> Need {
        Need {
            installs: false,
            ..self
        }
    }

    /// The same, with durations.
    pub(crate) fn with_durations(self) -> Need {
        Need {
            durations: true,
            ..self
        }
    }

    /// Every part some grouping needs: a backend may merge the rows that
    /// agree on these; the other parts of the rows it returns then hold any
    /// value.
    pub(crate) fn parts(&self) -> Parts {
        self.groupings
            .iter()
            .fold(Parts::default(), |all, g| all.with(*g))
    }
}

/// Rows merged by a set of key parts (the other parts blank), with their
/// number of distinct installs.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) row: Row,
    pub(crate) installs: u64,
}

/// Rows merged by the parts `by` as they come; the other parts of each
/// group are left blank.
struct Grouper {
    by: Parts,
    groups: HashMap<GroupKey, Agg>,
}

type GroupKey = (i32, String, String, Option<Env>, [Option<String>; 4]);

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
            std::array::from_fn(|i| {
                if by.has(Part::Dim(i)) {
                    row.dims[i].clone()
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

/// Where reports get rollup rows: a backend's stored rollups for whole
/// days plus the raw events of the partial days at the edges of a range,
/// rolled up here, all filtered by the query's app, version, OS and
/// environment.
pub(crate) trait Source {
    /// The query's filter.
    fn filter(&self) -> &tally_report::Filter;

    /// Stored rows for the whole days `first..=last` (unbounded where
    /// `None`) that pass [`Source::filter`], as `need` asks, each handed
    /// to `each` as it is read.
    fn stored(
        &self,
        need: &Need,
        days: (Option<i32>, Option<i32>),
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The filter's app's invocation events in `[from, to)` (microseconds),
    /// each with its install number.
    fn events(&self, from: i64, to: i64) -> Result<Vec<(crate::StoredEvent, u32)>, StoreError>;

    /// Rows within `[since, until)`, as `need` asks, each handed to `each`.
    fn each_row(
        &self,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let span = Span::new(since, until);
        if span.any_days {
            self.stored(need, span.days, each)?;
        }
        for &(from, to) in &span.edges {
            let events = self.events(from, to)?;
            rows_from_events(
                events.iter().map(|(e, n)| (&e.event, *n)),
                need.kind,
                self.filter(),
            )
            .into_iter()
            .try_for_each(&mut *each)?;
        }
        Ok(())
    }

    /// Rows within `[since, until)`, as `need` asks.
    fn rows(
        &self,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<Row>, StoreError> {
        let mut out = Vec::new();
        self.each_row(need, since, until, &mut |row| {
            out.push(row);
            Ok(())
        })?;
        Ok(out)
    }

    /// Rows within `[since, until)` grouped each of the ways `need` asks,
    /// in that order. A backend that counts distinct installs itself
    /// answers without sending the sets.
    fn grouped(
        &self,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<Vec<Group>>, StoreError> {
        grouped_in_rust(self, need, since, until)
    }
}

/// [`Source::grouped`] from [`Source::each_row`], merging install sets
/// here.
pub(crate) fn grouped_in_rust<S: Source + ?Sized>(
    source: &S,
    need: &Need,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<Vec<Vec<Group>>, StoreError> {
    // Rows are merged as they are read, so only the groups are ever held.
    let mut groupers: Vec<Grouper> = need.groupings.iter().map(|by| Grouper::new(*by)).collect();
    source.each_row(need, since, until, &mut |row| {
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
pub(crate) fn rows_from_events<'a>(
    events: impl IntoIterator<Item = (&'a Event, u32)>,
    kind: Kind,
    filter: &tally_report::Filter,
) -> Vec<Row> {
    let mut rollups = Rollups::default();
    for (event, install) in events {
        if passes(
            filter,
            &event.app,
            &event.app_version,
            &event.os,
            env_of(event),
        ) {
            rollups.add(event, install);
        }
    }
    rollups
        .into_rows()
        .filter(|(k, _)| k.kind == kind)
        .map(|(k, agg)| Row::new(k, agg))
        .collect()
}

/// Whether a row or event with these values passes the filter.
pub(crate) fn passes(
    filter: &tally_report::Filter,
    app: &str,
    version: &str,
    os: &str,
    env: Env,
) -> bool {
    app == filter.app
        && filter.version.as_deref().is_none_or(|v| v == version)
        && filter.os.as_deref().is_none_or(|o| o == os)
        && filter.env.is_none_or(|e| e == env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_range_splits_into_whole_days_and_edges() {
        let span = Span::new(
            Some(datetime!(2026-11-01 12:00 UTC)),
            Some(datetime!(2026-11-04 06:00 UTC)),
        );
        let d = day_of(micros(datetime!(2026-11-01 00:00 UTC)));
        assert_eq!(span.days, (Some(d + 1), Some(d + 2)));
        assert_eq!(
            span.edges,
            vec![
                (
                    micros(datetime!(2026-11-01 12:00 UTC)),
                    micros(datetime!(2026-11-02 00:00 UTC))
                ),
                (
                    micros(datetime!(2026-11-04 00:00 UTC)),
                    micros(datetime!(2026-11-04 06:00 UTC))
                ),
            ]
        );
        let aligned = Span::new(Some(datetime!(2026-11-01 00:00 UTC)), None);
        assert_eq!(aligned.days, (Some(d), None));
        assert!(aligned.edges.is_empty());
        let inside = Span::new(
            Some(datetime!(2026-11-01 01:00 UTC)),
            Some(datetime!(2026-11-01 02:00 UTC)),
        );
        assert!(!inside.any_days);
        assert_eq!(inside.edges.len(), 1);
    }

    #[test]
    fn repeated_flags_count_once_per_run() {
        let mut event = crate::conformance::sample(2, "x", datetime!(2026-11-01 10:00 UTC)).event;
        event.name = None;
        event.flags = vec!["--force".into(), "--force".into()];
        let mut rollups = Rollups::default();
        rollups.add(&event, 7);
        let flags: Vec<_> = rollups
            .rows()
            .filter(|(k, _)| k.kind == Kind::Flag)
            .collect();
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].1.runs, 1);
    }
}
