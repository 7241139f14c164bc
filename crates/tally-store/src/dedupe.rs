//! Exactly-once without an index over every id ever stored.
//!
//! A unique index over 100M UUIDs costs gigabytes of memory, so a backend
//! instead keeps the ids of its most recent events in memory ([`RecentIds`])
//! and remembers from which *dedupe time* on that memory is complete: every
//! stored event whose dedupe time is at or after `complete_from` has its id
//! in the set. Most retries are of recent events, decided in memory; an
//! event presented with an earlier dedupe time (one that sat in a CLI's
//! spool for days) is looked up in the store itself, by id within a narrow
//! range of client timestamps (the one time every retry repeats), which the
//! backend answers from its time-ordered storage without a full scan.
//!
//! Memory is bounded by the capacity whatever the store holds; evicting the
//! oldest entry advances `complete_from` past that entry's dedupe time.
//!
//! # Dedupe times, and why no client clock can move the mark
//!
//! The mark only ever rises, so if a client could choose an entry's dedupe
//! time, one event claiming year 2099 would, once evicted, send every later
//! event down the slow path. So the two sides differ:
//!
//! - An incoming event *presents* [`presented`]: the earlier of its client
//!   timestamp and its corrected timestamp.
//! - A stored event is remembered at [`latest`]: the latest time any retry
//!   of it can present, and never later than [`SKEW`] after the server
//!   received it, whatever the client's clock says.
//!
//! A retry presents at most its original's `latest` (so an evicted
//! original is never missed): always when the client's clock was not ahead
//! of the server's by more than [`SKEW`] at the original (its client
//! timestamp is then at most `received_at + SKEW`, and it is repeated
//! exactly); for a clock further ahead, whose timestamps the server moved
//! back, as long as that clock did not fall back by more than [`JITTER`]
//! between the two attempts. For every clock in step with the server's
//! both sides are its client timestamp, as they would be on a mark of
//! client timestamps alone.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use tally_protocol::StoredEvent;
use tally_rollup::micros;

/// How far ahead of the server's a client clock may run and still have its
/// timestamps kept as sent: the protocol's default skew tolerance (a server
/// may be configured stricter, never looser).
pub(crate) const SKEW: time::Duration = time::Duration::seconds(10);

/// How much a clock that runs ahead, and so is corrected, may lose against
/// the server's between an event's first attempt and a retry (network
/// delays included) without dedupe missing the retry. Small, because it is
/// also how far past its corrected time such an event raises the mark.
pub(crate) const JITTER: time::Duration = time::Duration::seconds(1);

/// The dedupe time `e` presents when it arrives (see the module docs), in
/// microseconds.
pub fn presented(e: &StoredEvent) -> i64 {
    micros(e.client_timestamp).min(micros(e.event.timestamp))
}

/// The latest dedupe time a retry of the stored event `e` can present (see
/// the module docs), in microseconds: never more than [`SKEW`] after the
/// server received it.
pub fn latest(e: &StoredEvent) -> i64 {
    let after = |t, by: time::Duration| micros(t).saturating_add(by.whole_microseconds() as i64);
    micros(e.client_timestamp)
        .min(after(e.event.timestamp, JITTER))
        .min(after(e.received_at, SKEW))
}

/// What is known of one event of a batch before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Surely not stored yet.
    New,
    /// Surely stored already, or earlier in the same batch.
    Duplicate,
    /// Older than what memory covers: the store must be asked.
    Unknown,
}

/// The ids of the most recently stored events; see the module docs.
///
/// ```
/// use tally_store::RecentIds;
/// let mut recent = RecentIds::new(2, i64::MIN);
/// recent.insert(1, 100);
/// recent.insert(2, 200);
/// recent.insert(3, 300); // evicts id 1, so memory is complete from 101 on
/// assert!(!recent.contains(1));
/// assert!(recent.covers(101) && !recent.covers(100));
/// ```
pub struct RecentIds {
    capacity: usize,
    /// The ids remembered, oldest first from `next` on once full: a ring.
    ring: Vec<Remembered>,
    next: usize,
    /// Where in `ring` each id is: 4 bytes a slot, where a set of the ids
    /// themselves would take 16 (and most of the memory is this index).
    index: HashTable<u32>,
    /// Seeded per process: ids are chosen by clients (the compatible
    /// ingest passes a sender's UUIDs through), and a hash anyone can
    /// compute lets a sender pick ids that all land in one bucket.
    hasher: foldhash::fast::RandomState,
    complete_from: i64,
}

#[derive(Debug, Clone, Copy)]
struct Remembered {
    /// The id's two halves (not a `u128`, whose 16-byte alignment would
    /// pad each slot to 32 bytes).
    id: [u64; 2],
    /// Its [`latest`] dedupe time.
    latest: i64,
}

fn halves(id: u128) -> [u64; 2] {
    [id as u64, (id >> 64) as u64]
}

impl std::fmt::Debug for RecentIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentIds")
            .field("capacity", &self.capacity)
            .field("len", &self.ring.len())
            .field("complete_from", &self.complete_from)
            .finish()
    }
}

impl RecentIds {
    /// How many ids a store's writer remembers unless told otherwise (about
    /// 35 MB).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// An empty memory of at most `capacity` ids that is complete for dedupe
    /// times (microseconds since the epoch, see the module docs) from
    /// `complete_from` on.
    pub fn new(capacity: usize, complete_from: i64) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Self {
            capacity,
            ring: Vec::with_capacity(capacity.min(1 << 20)),
            next: 0,
            index: HashTable::with_capacity(capacity.min(1 << 20)),
            hasher: Default::default(),
            complete_from,
        }
    }

    fn hash(&self, id: [u64; 2]) -> u64 {
        self.hasher.hash_one(id)
    }

    fn slot_of(&self, id: [u64; 2]) -> Option<u32> {
        self.index
            .find(self.hash(id), |&slot| self.ring[slot as usize].id == id)
            .copied()
    }

    /// Whether `id` is in memory.
    pub fn contains(&self, id: u128) -> bool {
        self.slot_of(halves(id)).is_some()
    }

    /// Whether memory holds every stored id that an event presenting this
    /// dedupe time can have.
    pub fn covers(&self, presented: i64) -> bool {
        presented >= self.complete_from
    }

    /// Remembers a stored event by its id and its latest dedupe time,
    /// forgetting the oldest if full.
    pub fn insert(&mut self, id: u128, latest: i64) {
        let id = halves(id);
        if self.slot_of(id).is_some() {
            return;
        }
        let new = Remembered { id, latest };
        let slot = if self.ring.len() < self.capacity {
            self.ring.push(new);
            self.ring.len() - 1
        } else {
            let slot = self.next;
            self.next = (slot + 1) % self.capacity;
            let old = std::mem::replace(&mut self.ring[slot], new);
            let old_hash = self.hash(old.id);
            if let Ok(found) = self.index.find_entry(old_hash, |&s| s as usize == slot) {
                found.remove();
            }
            self.complete_from = self.complete_from.max(old.latest.saturating_add(1));
            slot
        };
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.index
            .insert_unique(hasher.hash_one(id), slot as u32, |&s| {
                hasher.hash_one(ring[s as usize].id)
            });
    }

    /// Remembers the stored event `e`.
    pub fn remember(&mut self, e: &StoredEvent) {
        self.insert(e.event.id.as_u128(), latest(e));
    }

    /// Sorts each event of `batch` into new, duplicate, or ask-the-store.
    pub fn classify(&self, batch: &[StoredEvent]) -> Vec<Seen> {
        let mut in_batch =
            foldhash::HashSet::with_capacity_and_hasher(batch.len(), Default::default());
        batch
            .iter()
            .map(|e| {
                let id = e.event.id.as_u128();
                if !in_batch.insert(id) || self.contains(id) {
                    Seen::Duplicate
                } else if self.covers(presented(e)) {
                    Seen::New
                } else {
                    Seen::Unknown
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    /// Event `n` with the client's timestamp, the corrected one, and when
    /// the server received it.
    fn event(
        n: u32,
        client: OffsetDateTime,
        corrected: OffsetDateTime,
        at: OffsetDateTime,
    ) -> StoredEvent {
        let mut e = tally_testkit::events::sample(n, "dedupe", corrected);
        (e.client_timestamp, e.received_at) = (client, at);
        e
    }

    /// An event from a clock in step with the server's, received at `at`.
    fn in_step(n: u32, at: OffsetDateTime) -> StoredEvent {
        event(n, at, at, at)
    }

    /// Regression: ids were hashed by a fixed fold, so a sender choosing
    /// its UUIDs (the compatible ingest passes them through) could put
    /// every id into one bucket and make each lookup walk all of them.
    #[test]
    fn ids_chosen_to_collide_under_a_fixed_fold_spread_out() {
        let recent = RecentIds::new(16, i64::MIN);
        let colliding =
            (1..=1000u64).map(|high| [0xDEAD ^ high.wrapping_mul(0x9E37_79B9_7F4A_7C15), high]);
        let hashes: std::collections::HashSet<u64> =
            colliding.map(|id| recent.hash(id) & 1023).collect();
        // The low bits pick the bucket: 1000 ids fall into ~640 of 1024
        // (into one under the old fold).
        assert!(hashes.len() > 500, "{} buckets", hashes.len());
    }

    #[test]
    fn the_skew_is_the_protocols_default_tolerance() {
        assert_eq!(SKEW, tally_protocol::Limits::default().skew_tolerance);
    }

    /// Regression: one event claiming 2099, once evicted, raised the mark
    /// to 2099 and sent every later event to the store.
    #[test]
    fn a_client_clock_cannot_raise_the_mark_past_the_servers() {
        let mut recent = RecentIds::new(2, i64::MIN);
        // Sent with a matching sent_at (so moved back to now), and with a
        // sent_at of now (so kept as sent, up to the 5 minutes of future).
        let max_future = NOW + time::Duration::minutes(5);
        let hostile = [
            event(1, datetime!(2099-12-31 23:59 UTC), NOW, NOW),
            event(2, max_future, max_future, NOW),
        ];
        let later = NOW + time::Duration::seconds(30);
        for e in hostile
            .iter()
            .chain(&[in_step(3, later), in_step(4, later)])
        {
            recent.remember(e);
        }
        assert!(
            hostile
                .iter()
                .all(|e| !recent.contains(e.event.id.as_u128()))
        );
        assert!(
            recent.complete_from <= micros(NOW + SKEW) + 1,
            "the mark is {}",
            tally_rollup::from_micros(recent.complete_from)
        );
        let next = in_step(5, later);
        assert_eq!(recent.classify(&[next]), [Seen::New], "the fast path");
    }

    /// A clock that reads 1970 neither moves the mark nor gets a retry of
    /// its forgotten events wrong.
    #[test]
    fn a_clock_far_behind_is_asked_of_the_store_once_forgotten() {
        let mut recent = RecentIds::new(1, i64::MIN);
        let behind = event(1, datetime!(1970-01-01 0:00 UTC), NOW, NOW);
        recent.remember(&behind);
        recent.remember(&in_step(2, NOW));
        assert_eq!(
            recent.complete_from,
            micros(datetime!(1970-01-01 0:00 UTC)) + 1
        );
        assert_eq!(recent.classify(&[behind]), [Seen::Unknown]);
    }

    /// A clock an hour ahead is corrected; its retry, minutes later with the
    /// clock still ahead, presents about the same corrected time, which the
    /// evicted original's dedupe time covers: the store is asked.
    #[test]
    fn a_retry_from_a_clock_ahead_is_not_missed() {
        let mut recent = RecentIds::new(1, i64::MIN);
        let client = NOW + time::Duration::hours(1);
        let corrected = NOW - time::Duration::seconds(1);
        recent.remember(&event(1, client, corrected, NOW));
        recent.remember(&in_step(2, NOW + time::Duration::minutes(1)));
        let later = NOW + time::Duration::minutes(5);
        let retry = event(
            1,
            client,
            corrected + time::Duration::milliseconds(200),
            later,
        );
        assert_eq!(recent.classify(&[retry]), [Seen::Unknown]);
    }

    #[test]
    fn eviction_moves_completeness_past_the_evicted_timestamp() {
        let mut recent = RecentIds::new(2, 0);
        recent.insert(1, 50);
        recent.insert(2, 10);
        recent.insert(3, 20);
        // id 1 (ts 50) went; anything at or before 50 may now be unknown.
        assert!(!recent.covers(50));
        assert!(recent.covers(51));
        recent.insert(4, 30);
        // id 2 (ts 10) went, but completeness never moves back.
        assert!(!recent.covers(50));
    }

    #[test]
    fn memory_keeps_the_newest_ids_through_many_evictions() {
        let mut recent = RecentIds::new(3, 0);
        for n in 1..=10u128 {
            recent.insert(n << 64 | n, n as i64 * 10);
        }
        let kept: Vec<u128> = (1..=10).filter(|&n| recent.contains(n << 64 | n)).collect();
        assert_eq!(kept, [8, 9, 10]);
        assert!(recent.covers(71) && !recent.covers(70));
    }

    #[test]
    fn reinserting_a_known_id_does_not_evict() {
        let mut recent = RecentIds::new(2, 0);
        recent.insert(1, 1);
        recent.insert(2, 2);
        recent.insert(2, 2);
        assert!(recent.contains(1) && recent.contains(2));
    }
}
