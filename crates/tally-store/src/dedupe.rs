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

use hashbrown::HashTable;

use tally_protocol::StoredEvent;
use tally_rollup::micros;

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
    complete_from: i64,
}

#[derive(Debug, Clone, Copy)]
struct Remembered {
    /// The id's two halves (not a `u128`, whose 16-byte alignment would
    /// pad each slot to 32 bytes).
    id: [u64; 2],
    client_micros: i64,
}

fn halves(id: u128) -> [u64; 2] {
    [id as u64, (id >> 64) as u64]
}

/// Event ids are random (v4) or random in their low bits (v7), so folding
/// them is as good a hash as SipHash at a fraction of the cost.
fn hash([low, high]: [u64; 2]) -> u64 {
    low ^ high.wrapping_mul(0x9E37_79B9_7F4A_7C15)
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

    /// An empty memory of at most `capacity` ids that is complete for client
    /// timestamps (microseconds since the epoch) from `complete_from` on.
    pub fn new(capacity: usize, complete_from: i64) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Self {
            capacity,
            ring: Vec::with_capacity(capacity.min(1 << 20)),
            next: 0,
            index: HashTable::with_capacity(capacity.min(1 << 20)),
            complete_from,
        }
    }

    fn slot_of(&self, id: [u64; 2]) -> Option<u32> {
        self.index
            .find(hash(id), |&slot| self.ring[slot as usize].id == id)
            .copied()
    }

    /// Whether `id` is in memory.
    pub fn contains(&self, id: u128) -> bool {
        self.slot_of(halves(id)).is_some()
    }

    /// Whether memory holds every stored id with this client timestamp.
    pub fn covers(&self, client_micros: i64) -> bool {
        client_micros >= self.complete_from
    }

    /// Remembers a stored event, forgetting the oldest if full.
    pub fn insert(&mut self, id: u128, client_micros: i64) {
        let id = halves(id);
        if self.slot_of(id).is_some() {
            return;
        }
        let new = Remembered { id, client_micros };
        let slot = if self.ring.len() < self.capacity {
            self.ring.push(new);
            self.ring.len() - 1
        } else {
            let slot = self.next;
            self.next = (slot + 1) % self.capacity;
            let old = std::mem::replace(&mut self.ring[slot], new);
            if let Ok(found) = self.index.find_entry(hash(old.id), |&s| s as usize == slot) {
                found.remove();
            }
            self.complete_from = self.complete_from.max(old.client_micros.saturating_add(1));
            slot
        };
        let ring = &self.ring;
        self.index
            .insert_unique(hash(id), slot as u32, |&s| hash(ring[s as usize].id));
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
                } else if self.covers(micros(e.client_timestamp)) {
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
