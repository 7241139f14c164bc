//! Merging appended rollup rows on a thread of its own, so that commits do
//! not wait for it.
//!
//! Each commit appends rollup rows; now and then the rows of the days that
//! got some are merged into one per key. That takes as long as a large
//! commit, and done on the commit thread it was what requests waited for at
//! the tail. On its own connection it runs beside the commits: it merges
//! and deletes only the rows its snapshot sees, so rows committed meanwhile
//! stay for the next round, and readers merge whatever rows they find.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use duckdb::Connection;

use super::rollups;
use crate::StoreError;

/// Compact after this many appended rollup rows ...
const COMPACT_ROWS: usize = 50_000;
/// ... or this long after the last compaction, whichever comes first.
const COMPACT_EVERY: Duration = Duration::from_secs(10);

/// Days to compact.
type Job = BTreeSet<i32>;

pub(super) struct Compactor {
    /// Days with rows appended and not yet handed to the thread.
    dirty: BTreeSet<i32>,
    /// Rows appended since the last hand-over.
    appended: usize,
    handed_at: Instant,
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread, which compacts over `conn`.
    pub(super) fn start(mut conn: Connection) -> Result<Self, StoreError> {
        // One job waiting at most: while the thread works, days gather here.
        let (jobs, rx) = mpsc::sync_channel::<Job>(1);
        let thread = std::thread::Builder::new()
            .name("tally-compact".into())
            .spawn(move || {
                // Days whose compaction failed are tried again with the next.
                let mut failed = BTreeSet::new();
                for mut days in rx {
                    days.append(&mut failed);
                    if let Err(e) = rollups::compact(&mut conn, &days) {
                        tracing::warn!(error = %e, "compacting rollups failed");
                        failed = days;
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("starting the compactor: {e}")))?;
        Ok(Self {
            dirty: BTreeSet::new(),
            appended: 0,
            handed_at: Instant::now(),
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Notes `rows` appended rollup rows on `days`, and hands the days over
    /// when there are enough, unless the thread is still busy.
    pub(super) fn appended(&mut self, days: impl IntoIterator<Item = i32>, rows: usize) {
        self.dirty.extend(days);
        self.appended += rows;
        let due = self.appended >= COMPACT_ROWS
            || (self.appended > 0 && self.handed_at.elapsed() >= COMPACT_EVERY);
        if !due {
            return;
        }
        let Some(jobs) = &self.jobs else { return };
        match jobs.try_send(std::mem::take(&mut self.dirty)) {
            Ok(()) => {
                self.appended = 0;
                self.handed_at = Instant::now();
            }
            // Busy: keep the days for the next commit's try.
            Err(mpsc::TrySendError::Full(days)) | Err(mpsc::TrySendError::Disconnected(days)) => {
                self.dirty = days
            }
        }
    }
}

impl Drop for Compactor {
    /// Hands over the days left and lets the thread finish, so that a store
    /// closed cleanly is left compacted.
    fn drop(&mut self) {
        if let Some(jobs) = self.jobs.take()
            && !self.dirty.is_empty()
        {
            let _ = jobs.send(std::mem::take(&mut self.dirty));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
