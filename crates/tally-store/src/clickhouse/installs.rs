//! How the rollups tell installs apart, by the generation of the database.
//!
//! - [`Installs::Hashes`] (databases made on ClickHouse before 21.8, such
//!   as Debian's 18.16): `groupUniqArray` sets of 32-bit hashes of install
//!   ids. Two installs in four billion share a hash, so at 10M installs
//!   distinct counts are low by about 0.1%, and merging the sets is a hash
//!   insert per install per row.
//! - [`Installs::Numbers`] (databases this Tally made on 21.8 and later):
//!   `groupBitmap` sets of install numbers, exact. Writers claim blocks of
//!   numbers one after the other and give them out in order, so numbers
//!   are dense: a set is a few roaring containers however many installs
//!   it holds, and merging is a bitwise OR. `install_numbers` remembers
//!   every install's number, so that every collector uses the one given
//!   first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tally_protocol::StoredEvent;
use uuid::Uuid;

use super::http::{Http, quote};
use crate::StoreError;

/// What a database's install sets hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Installs {
    /// `groupUniqArray` of [`install_hash`]es.
    Hashes,
    /// `groupBitmap` of install numbers.
    Numbers,
}

impl Installs {
    /// The events column that names an install in the sets.
    pub(super) fn key(self) -> &'static str {
        match self {
            Installs::Hashes => "install_hash",
            Installs::Numbers => "install_number",
        }
    }

    /// The type of the rollups' `installs` column.
    pub(super) fn column_type(self) -> &'static str {
        match self {
            Installs::Hashes => "AggregateFunction(groupUniqArray, UInt32)",
            Installs::Numbers => "AggregateFunction(groupBitmap, UInt64)",
        }
    }

    /// The set state of the events' installs, for the views.
    pub(super) fn state(self) -> &'static str {
        match self {
            Installs::Hashes => "groupUniqArrayState(install_hash)",
            Installs::Numbers => "groupBitmapState(install_number)",
        }
    }

    /// The merged set of `installs` states, as an array.
    pub(super) fn merged_set(self) -> &'static str {
        match self {
            Installs::Hashes => "groupUniqArrayMerge(installs)",
            Installs::Numbers => "bitmapToArray(groupBitmapMergeState(installs))",
        }
    }

    /// How many installs the merged `installs` states hold.
    pub(super) fn merged_count(self) -> &'static str {
        match self {
            Installs::Hashes => "toUInt64(length(groupUniqArrayMerge(installs)))",
            Installs::Numbers => "groupBitmapMerge(installs)",
        }
    }

    /// Whether a row's set holds any of `keys`, as SQL.
    pub(super) fn holds_any(self, keys: &[u64]) -> String {
        match self {
            Installs::Hashes => format!(
                "hasAny(finalizeAggregation(installs), [{}])",
                literals(keys, "toUInt32")
            ),
            Installs::Numbers => format!(
                "bitmapHasAny(installs, bitmapBuild([{}]))",
                literals(keys, "toUInt64")
            ),
        }
    }

    /// A row's set without `keys`, as SQL (a state of the same type).
    pub(super) fn without(self, keys: &[u64]) -> String {
        match self {
            Installs::Hashes => format!(
                "arrayReduce('groupUniqArrayState', \
                 arrayFilter(x -> NOT has([{}], x), finalizeAggregation(installs)))",
                literals(keys, "toUInt32")
            ),
            Installs::Numbers => format!(
                "bitmapAndnot(installs, bitmapBuild([{}]))",
                literals(keys, "toUInt64")
            ),
        }
    }

    /// What stands for `install` of `app` (quoted) in the sets: its
    /// hash, or the numbers given to it and those its events still carry
    /// (a writer that had it in memory when an erasure forgot it goes on
    /// with it).
    pub(super) fn keys_of(
        self,
        http: &Http,
        app: &str,
        install: Uuid,
    ) -> Result<Vec<u64>, StoreError> {
        if self == Installs::Hashes {
            return Ok(vec![u64::from(install_hash(install))]);
        }
        let whose = format!("app = {app} AND install_id = toUUID('{install}')");
        let mut keys: Vec<u64> = http
            .rows(&format!(
                "SELECT number FROM install_numbers WHERE {whose}
                 UNION ALL SELECT DISTINCT install_number AS number FROM events WHERE {whose}"
            ))?
            .iter()
            .filter_map(|r| r["number"].as_u64())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
}

fn literals(keys: &[u64], cast: &str) -> String {
    keys.iter()
        .map(|k| format!("{cast}({k})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The install's hash in [`Installs::Hashes`] sets: its 128 bits folded
/// to 32. Two installs in four billion share one, so at 10M installs
/// distinct counts are low by about 0.1% at most.
pub(super) fn install_hash(id: Uuid) -> u32 {
    let n = id.as_u128();
    (n ^ (n >> 32) ^ (n >> 64) ^ (n >> 96)) as u32
}

/// The tables of [`Installs::Numbers`]: each install's number (more than
/// one only where two collectors met a new install at the same moment;
/// the least is used from then on), and the blocks of numbers writers
/// claimed.
pub(super) const NUMBER_TABLES: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS install_numbers (
        app String,
        install_id UUID,
        number UInt64
    ) ENGINE = MergeTree ORDER BY (app, install_id)",
    "CREATE TABLE IF NOT EXISTS install_blocks (
        block UInt64,
        claimant UUID,
        claimed_us Int64
    ) ENGINE = MergeTree ORDER BY block",
];

/// Numbers a writer claims at a time: small, so that a writer that stops
/// early leaves a small gap, and 64 blocks share a roaring container.
const BLOCK: u64 = 1 << 10;

/// Installs looked up this many at a time.
const LOOKUP_CHUNK: usize = 10_000;

/// Numbers known to a writer beyond which it forgets them all before its
/// next batch (about 60 MB); they are looked up again as their installs
/// come back.
const KNOWN_AT_MOST: usize = 1 << 20;

/// How long a writer trusts the numbers it knows: an erasure through
/// another collector forgets an install's number, and an event of it that
/// arrives later should not carry the old one for long.
const KNOWN_FOR: Duration = Duration::from_secs(3600);

/// Marks a number this writer gave and has not read back since: two
/// writers that gave an install a number at the same moment both read
/// the least one back on their next batch of it. (Numbers stay far below.)
const UNSETTLED: u64 = 1 << 63;

/// One writer's install numbers: those it has seen, and its block.
pub(super) struct Numbering {
    /// By app, then install; [`UNSETTLED`] set on those to read back.
    known: HashMap<String, HashMap<Uuid, u64>>,
    /// The next number of this writer's block, and the block's end.
    block: Option<(u64, u64)>,
    /// Since when `known` is trusted.
    since: Option<Instant>,
    /// How many numbers `known` may hold before a batch.
    known_at_most: usize,
}

impl Default for Numbering {
    fn default() -> Self {
        Numbering {
            known: HashMap::new(),
            block: None,
            since: None,
            known_at_most: KNOWN_AT_MOST,
        }
    }
}

impl Numbering {
    /// Makes sure every install of `events` has a number, giving new
    /// installs one (stored before this returns, so that the events
    /// carrying it are inserted after it).
    pub(super) fn prepare(
        &mut self,
        http: &Http,
        events: &[&StoredEvent],
    ) -> Result<(), StoreError> {
        let stale = self.since.is_none_or(|since| since.elapsed() > KNOWN_FOR);
        if stale || self.known.values().map(HashMap::len).sum::<usize>() > self.known_at_most {
            self.known.clear();
            self.since = Some(Instant::now());
        }
        let mut wanted: Vec<(&str, Uuid)> = events
            .iter()
            .map(|e| (e.event.app.as_str(), e.event.install_id))
            .filter(|&(app, install)| {
                self.known
                    .get(app)
                    .and_then(|k| k.get(&install))
                    .is_none_or(|n| n & UNSETTLED != 0)
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut unknown = Vec::new();
        for same_app in wanted.chunk_by(|a, b| a.0 == b.0) {
            let app = same_app[0].0;
            for part in same_app.chunks(LOOKUP_CHUNK) {
                let found = look_up(http, app, part)?;
                unknown.extend(part.iter().filter(|(_, i)| !found.contains_key(i)).copied());
                self.known.entry(app.to_owned()).or_default().extend(found);
            }
        }
        if !unknown.is_empty() {
            self.give(http, &unknown)?;
        }
        Ok(())
    }

    /// The number of `install` of `app`, once [`Numbering::prepare`]d.
    pub(super) fn number(&self, app: &str, install: Uuid) -> Option<u64> {
        Some(self.known.get(app)?.get(&install)? & !UNSETTLED)
    }

    /// Gives each of `installs` the next number of this writer's block,
    /// and stores them; only then are they known.
    fn give(&mut self, http: &Http, installs: &[(&str, Uuid)]) -> Result<(), StoreError> {
        let mut given = Vec::with_capacity(installs.len());
        let mut lines = Vec::new();
        for &(app, install) in installs {
            let (next, end) = match self.block {
                Some((next, end)) if next < end => (next, end),
                _ => {
                    let start = claim_block(http)? * BLOCK;
                    (start, start + BLOCK)
                }
            };
            self.block = Some((next + 1, end));
            let row = serde_json::json!({"app": app, "install_id": install, "number": next});
            serde_json::to_writer(&mut lines, &row)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            lines.push(b'\n');
            given.push((app, install, next));
        }
        http.insert("install_numbers", &lines)?;
        for (app, install, number) in given {
            self.known
                .entry(app.to_owned())
                .or_default()
                .insert(install, number | UNSETTLED);
        }
        Ok(())
    }
}

/// The stored numbers of `installs` of `app`, the least of each.
fn look_up(
    http: &Http,
    app: &str,
    installs: &[(&str, Uuid)],
) -> Result<HashMap<Uuid, u64>, StoreError> {
    let ids: Vec<String> = installs.iter().map(|(_, i)| format!("'{i}'")).collect();
    let mut found = HashMap::new();
    http.each_row(
        &format!(
            "SELECT toString(install_id) AS install, min(number) AS number
             FROM install_numbers WHERE app = {} AND install_id IN ({})
             GROUP BY install_id",
            quote(app),
            ids.join(",")
        ),
        |row: Value| {
            let install = row["install"].as_str().and_then(|s| s.parse().ok());
            if let (Some(install), Some(number)) = (install, row["number"].as_u64()) {
                found.insert(install, number);
            }
            Ok(())
        },
    )?;
    Ok(found)
}

/// A block of numbers no other writer has claimed: the one after the
/// last claimed, or a little further when another writer claims it too.
///
/// A writer writes its claim, then reads the block's claims, and keeps
/// the block only if it sees its own alone. Of two writers claiming one
/// block, the one that reads second has written before it reads, after
/// the first wrote, so it sees both: never do both keep it.
fn claim_block(http: &Http) -> Result<u64, StoreError> {
    let me = Uuid::new_v4();
    for attempt in 0..64u64 {
        let rows = http.rows("SELECT count() AS n, max(block) AS last FROM install_blocks")?;
        let last = rows.first().filter(|r| r["n"].as_u64() != Some(0));
        // Writers that met step apart by a random few.
        let skip = if attempt == 0 {
            0
        } else {
            u64::from(Uuid::new_v4().as_bytes()[0] % 8)
        };
        let block = last.and_then(|r| r["last"].as_u64()).map_or(0, |b| b + 1) + skip;
        let claim = serde_json::json!({
            "block": block,
            "claimant": me,
            "claimed_us": tally_rollup::micros(time::OffsetDateTime::now_utc()),
        });
        http.insert("install_blocks", format!("{claim}\n").as_bytes())?;
        let rows = http.rows(&format!(
            "SELECT uniqExact(claimant) AS n FROM install_blocks WHERE block = {block}"
        ))?;
        if rows.first().and_then(|r| r["n"].as_u64()) == Some(1) {
            return Ok(block);
        }
    }
    Err(StoreError::Unavailable(
        "no block of install numbers could be claimed: other writers claimed every one tried"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use tally_testkit::clickhouse::LocalServer;
    use tally_testkit::events::sample;

    /// Installs past the bound (an ingest key in hostile hands can make up
    /// millions) never hold more numbers in memory than the bound and a
    /// batch, and each install keeps the number it was given first when
    /// its number has to be looked up again.
    #[test]
    fn numbers_in_memory_stay_bounded_and_each_install_keeps_its_own() {
        let server = LocalServer::start_current().expect("PyPI's chdb-core");
        let store =
            super::super::ClickHouseStore::open(&server.store_url("bounded")).expect("open");
        assert_eq!(store.layout.installs, Installs::Numbers);
        let mut numbering = Numbering {
            known_at_most: 100,
            ..Numbering::default()
        };
        let at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let events: Vec<StoredEvent> = (0..1000u32)
            .map(|n| {
                let mut e = sample(n, "bounded", at);
                e.event.install_id = Uuid::from_u128(u128::from(n) + 1);
                e
            })
            .collect();
        let mut given = HashMap::new();
        for round in 0..2 {
            for chunk in events.chunks(150) {
                let batch: Vec<&StoredEvent> = chunk.iter().collect();
                numbering.prepare(&store.http, &batch).expect("numbers");
                let held: usize = numbering.known.values().map(HashMap::len).sum();
                assert!(held <= 100 + chunk.len(), "{held} numbers in memory");
                for e in chunk {
                    let number = numbering.number("bounded", e.event.install_id);
                    let first = *given.entry(e.event.install_id).or_insert(number);
                    assert_eq!(number, first, "round {round}: the install's number changed");
                }
            }
        }
        let distinct: HashSet<_> = given.values().collect();
        assert_eq!(distinct.len(), events.len(), "a number each");
    }
}
