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

/// Days to compact, and where to say when done (for [`Compactor::now`]).
type Job = (BTreeSet<i32>, Option<mpsc::Sender<Result<(), StoreError>>>);

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
                for (mut days, done) in rx {
                    days.append(&mut failed);
                    let result = rollups::compact(&mut conn, &days);
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, "compacting rollups failed");
                        failed = days;
                    }
                    if let Some(done) = done {
                        let _ = done.send(result);
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
        match jobs.try_send((std::mem::take(&mut self.dirty), None)) {
            Ok(()) => {
                self.appended = 0;
                self.handed_at = Instant::now();
            }
            // Busy: keep the days for the next commit's try.
            Err(mpsc::TrySendError::Full((days, _)))
            | Err(mpsc::TrySendError::Disconnected((days, _))) => self.dirty = days,
        }
    }

    /// Compacts every day with appended rows, and returns when done.
    #[cfg(test)]
    pub(super) fn now(&mut self) -> Result<(), StoreError> {
        let gone = || StoreError::Unavailable("the compactor has stopped".into());
        let jobs = self.jobs.as_ref().ok_or_else(gone)?;
        let (done, result) = mpsc::channel();
        jobs.send((std::mem::take(&mut self.dirty), Some(done)))
            .map_err(|_| gone())?;
        self.appended = 0;
        self.handed_at = Instant::now();
        result.recv().map_err(|_| gone())?
    }
}

impl Drop for Compactor {
    /// Hands over the days left and lets the thread finish, so that a store
    /// closed cleanly is left compacted.
    fn drop(&mut self) {
        if let Some(jobs) = self.jobs.take()
            && !self.dirty.is_empty()
        {
            let _ = jobs.send((std::mem::take(&mut self.dirty), None));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
