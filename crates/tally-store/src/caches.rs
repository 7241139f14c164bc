//! How much the embedded store keeps in memory.

use crate::RecentIds;

/// What the embedded store keeps in memory to be fast, at most: the rest
/// it finds in its tables, more slowly.
///
/// ```
/// let caches = tally_store::Caches { installs: 10_000, ..Default::default() };
/// assert_eq!(caches.recent_ids, tally_store::RecentIds::DEFAULT_CAPACITY);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caches {
    /// Event ids the writer remembers, to tell duplicates without a lookup
    /// (see [`RecentIds`]).
    pub recent_ids: usize,
    /// Install ids whose numbers the loader remembers (about 40 bytes
    /// each); the others are looked up in the `installs` table.
    pub installs: usize,
    /// Rollup rows a transaction of the loader holds (a few hundred bytes
    /// each) before it writes them to the table.
    pub rollups: usize,
}

impl Caches {
    /// Install ids remembered by default: about 40 MB. A CLI with more
    /// installs than this running every week looks some of them up in
    /// the table, once per load of the journal at most.
    pub const DEFAULT_INSTALLS: usize = 1 << 20;
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            recent_ids: RecentIds::DEFAULT_CAPACITY,
            installs: Caches::DEFAULT_INSTALLS,
            rollups: 200_000,
        }
    }
}
