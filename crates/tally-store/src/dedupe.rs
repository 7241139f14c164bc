//! Exactly-once without an index over every id ever stored.
//!
//! A unique index over 100M UUIDs costs gigabytes of memory, so a backend
//! instead keeps the ids of its most recent events in memory ([`RecentIds`])
//! and remembers from which client timestamp on that memory is complete:
//! every stored event whose client timestamp is at or after
//! `complete_from` has its id in the set. Most retries are of recent events,
//! decided in memory; an event older than `complete_from` (one that sat in
//! a CLI's spool for days) is looked up in the store itself, by id within a
//! narrow range of client timestamps, which the backend answers from its
//! time-ordered storage without a full scan.
//!
//! Memory is bounded by the capacity whatever the store holds; evicting the
//! oldest entry advances `complete_from` past that entry's timestamp.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::StoredEvent;

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
#[derive(Debug)]
pub struct RecentIds {
    capacity: usize,
    ids: HashSet<u128, BuildHasherDefault<IdHasher>>,
    order: VecDeque<(u128, i64)>,
    complete_from: i64,
}

impl RecentIds {
    /// An empty memory of at most `capacity` ids that is complete for client
    /// timestamps (microseconds since the epoch) from `complete_from` on.
    pub fn new(capacity: usize, complete_from: i64) -> Self {
        Self {
            capacity: capacity.max(1),
            ids: HashSet::with_capacity_and_hasher(capacity.min(1 << 20), Default::default()),
            order: VecDeque::with_capacity(capacity.min(1 << 20)),
            complete_from,
        }
    }

    /// Whether `id` is in memory.
    pub fn contains(&self, id: u128) -> bool {
        self.ids.contains(&id)
    }

    /// Whether memory holds every stored id with this client timestamp.
    pub fn covers(&self, client_micros: i64) -> bool {
        client_micros >= self.complete_from
    }

    /// Remembers a stored event, forgetting the oldest if full.
    pub fn insert(&mut self, id: u128, client_micros: i64) {
        if !self.ids.insert(id) {
            return;
        }
        self.order.push_back((id, client_micros));
        if self.order.len() > self.capacity
            && let Some((old, old_micros)) = self.order.pop_front()
        {
            self.ids.remove(&old);
            self.complete_from = self.complete_from.max(old_micros.saturating_add(1));
        }
    }

    /// Sorts each event of `batch` into new, duplicate, or ask-the-store.
    pub fn classify(&self, batch: &[StoredEvent]) -> Vec<Seen> {
        let mut in_batch = HashSet::with_capacity_and_hasher(batch.len(), IdBuild::default());
        batch
            .iter()
            .map(|e| {
                let id = e.event.id.as_u128();
                if !in_batch.insert(id) || self.contains(id) {
                    Seen::Duplicate
                } else if self.covers(micros(e.client_timestamp)) {
                    Seen::New
                } else {
                    Seen::Unknown
                }
            })
            .collect()
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;

/// Event ids are random (v4) or random in their low bits (v7), so folding
/// them is as good a hash as SipHash at a fraction of the cost.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, id: u128) {
        self.0 = (id as u64) ^ ((id >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Microseconds since the epoch, the resolution stores keep.
pub(crate) fn micros(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// The inverse of [`micros`].
pub(crate) fn from_micros(us: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reinserting_a_known_id_does_not_evict() {
        let mut recent = RecentIds::new(2, 0);
        recent.insert(1, 1);
        recent.insert(2, 2);
        recent.insert(2, 2);
        assert!(recent.contains(1) && recent.contains(2));
    }
}
