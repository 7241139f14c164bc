//! Rollup rows being built, and the dense install numbers their sets hold.

use std::borrow::Cow;

// Rollup keys hash several strings per event; foldhash does that several
// times faster than SipHash, with a per-process random seed since the
// strings come from clients.
use foldhash::HashMap;
use tally_protocol::{Event, Source};
use tally_report::Env;

use crate::{Agg, Dims, Key, Kind, day_of, env_of, keys_of, micros};

/// Rollup rows being built, e.g. for one batch of events.
///
/// Kept in two levels: the part of a key all of an event's rows share (app,
/// day, version, OS, environment, source), then each row's kind and dimensions. An
/// event counts in half a dozen rows, and so hashes and compares its shared
/// part once rather than once per row.
///
/// ```
/// # let event: tally_protocol::Event = serde_json::from_str(r#"{
/// #     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-20T10:00:00Z",
/// #     "app": "mycli", "app_version": "1.4.2", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
/// #     "command": "deploy", "flags": ["--force"], "exit_code": 0, "duration_ms": 3,
/// #     "os": "linux", "arch": "x86_64"}"#)?;
/// use tally_rollup::{Dim, Kind, Rollups};
/// let mut rollups = Rollups::default();
/// rollups.add(&event, 0);
/// rollups.add(&event, 1);
/// let (key, agg) = rollups.rows().find(|(k, _)| k.kind == Kind::Flag).expect("a flag row");
/// assert_eq!((key.dim(Dim::Flag), agg.runs, agg.installs.len()), (Some("--force"), 2, 2));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Rollups {
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
    source: Source,
}

/// The part of a rollup key that is the row's own: see [`Key::dims`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Own<'a> {
    kind: Kind,
    dims: Dims<Cow<'a, str>>,
}

impl Rollups {
    /// Adds one stored event, counting `install` (its number, see
    /// [`Installs`]) in each row's set. A key is looked up as it borrows
    /// from the event, and copied only when new: most events add to rows
    /// that exist.
    pub fn add(&mut self, event: &Event, install: u32) {
        let at = micros(event.timestamp);
        let shared = Shared {
            app: Cow::Borrowed(&event.app),
            day: day_of(at),
            version: Cow::Borrowed(&event.app_version),
            os: Cow::Borrowed(&event.os),
            env: env_of(event),
            source: event.source,
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

    /// Adds a row (read back, say) into these.
    pub fn merge(&mut self, key: Key<'static>, agg: &Agg) {
        let shared = Shared {
            app: key.app,
            day: key.day,
            version: key.version,
            os: key.os,
            env: key.env,
            source: key.source,
        };
        let own = Own {
            kind: key.kind,
            dims: key.dims,
        };
        self.rows
            .entry(shared)
            .or_default()
            .entry(own)
            .or_default()
            .merge(agg);
    }

    /// The rows, each with its whole key.
    pub fn rows(&self) -> impl Iterator<Item = (Key<'_>, &Agg)> {
        self.rows.iter().flat_map(|(shared, rows)| {
            rows.iter().map(move |(own, agg)| {
                let key = Key {
                    app: borrowed(&shared.app),
                    kind: own.kind,
                    day: shared.day,
                    version: borrowed(&shared.version),
                    os: borrowed(&shared.os),
                    env: shared.env,
                    source: shared.source,
                    dims: own.dims.each_ref().map(|d| d.as_deref().map(borrowed)),
                };
                (key, agg)
            })
        })
    }

    /// The rows, taken.
    pub fn into_rows(self) -> impl Iterator<Item = (Key<'static>, Agg)> {
        self.rows.into_iter().flat_map(|(shared, rows)| {
            rows.into_iter().map(move |(own, agg)| {
                let key = Key {
                    app: shared.app.clone(),
                    kind: own.kind,
                    day: shared.day,
                    version: shared.version.clone(),
                    os: shared.os.clone(),
                    env: shared.env,
                    source: shared.source,
                    dims: own.dims,
                };
                (key, agg)
            })
        })
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.values().map(hashbrown::HashMap::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The days the rows are of (a day once per combination of the other
    /// shared parts).
    pub fn days(&self) -> impl Iterator<Item = i32> {
        self.rows.keys().map(|shared| shared.day)
    }
}

fn borrowed(text: &str) -> Cow<'_, str> {
    Cow::Borrowed(text)
}

fn owned(text: &str) -> Cow<'static, str> {
    Cow::Owned(text.to_owned())
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
            source: lookup.0.source,
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
///
/// ```
/// let mut installs = tally_rollup::Installs::default();
/// installs.insert(0xabc, 0);
/// assert_eq!((installs.get(0xabc), installs.get(0xdef), installs.len()), (Some(0), None, 1));
/// ```
#[derive(Debug, Default)]
pub struct Installs {
    numbers: HashMap<u128, u32>,
}

impl Installs {
    /// Remembers a stored number.
    pub fn insert(&mut self, install: u128, number: u32) {
        self.numbers.insert(install, number);
    }

    /// The stored number of an install.
    pub fn get(&self, install: u128) -> Option<u32> {
        self.numbers.get(&install).copied()
    }

    /// How many installs have numbers: the next number to hand out.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether no install has a number.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// The number of `install`, handing out the next one if it has none.
    pub fn number(&mut self, install: u128) -> u32 {
        let next = self.numbers.len() as u32;
        *self.numbers.entry(install).or_insert(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_flags_count_once_per_run() {
        let mut event =
            tally_testkit::events::sample(2, "x", time::macros::datetime!(2026-11-01 10:00 UTC))
                .event;
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
