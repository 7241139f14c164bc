//! The hand-over between the writer, the [loader](super::loader) thread
//! and the readers, and what it knows of the loader's failure.
//!
//! The writer appends a batch to the journal and hands it over; the loader
//! takes what was handed over; readers wait until what was handed over when
//! they asked is committed. When the loader fails, it has rolled back what
//! it had not committed: the database holds exactly the journal's records
//! up to the position its last commit recorded, and the writer is refused.
//! A full disk (or a lack of memory or open files) passes: the loader then
//! catches up on the journal from that position and says it [recovered](Handoff::recovered). For that to load
//! each record once, no record may be appended while it reads the journal:
//! the writer holds [`Room`] from before it asks the database for
//! duplicates until its batch is handed over, and the loader waits for it
//! to be let go.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tally_protocol::StoredEvent;

use crate::StoreError;
use crate::journal::Position;

/// Events handed over and not yet appended, at most, and the memory they
/// may take (`StoredEvent::memory_bytes`): the writer waits beyond either,
/// so memory stays bounded when DuckDB is slower than requests, whatever
/// size the events are.
const MAX_BACKLOG: usize = 20_000;
const MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

/// The hand-over between the writer, the loader thread and the readers.
#[derive(Default)]
pub(super) struct Handoff {
    state: Mutex<State>,
    pub(super) changed: Condvar,
    /// How many install ids the loader's cache holds now.
    pub(super) installs_held: AtomicUsize,
}

#[derive(Default)]
pub(super) struct State {
    /// Journaled batches not yet taken by the loader, and where each ends.
    pub(super) queue: VecDeque<Handed>,
    /// Events in `queue`, and the memory they take.
    pub(super) backlog: usize,
    pub(super) backlog_bytes: usize,
    /// Events handed over and not yet committed.
    pub(super) unloaded: usize,
    /// When the oldest batch in `queue` came.
    pub(super) oldest: Option<Instant>,
    /// Batches handed over, and committed, ever.
    sent: u64,
    committed: u64,
    /// A reader waits for a commit.
    pub(super) commit_wanted: bool,
    /// The writer is gone: commit and stop.
    pub(super) closing: bool,
    /// Why the loader stopped, if it did.
    failure: Option<Failure>,
    /// Whether a writer is open (there may be one at a time).
    writing: bool,
    /// The writer holds [`Room`]: it may append to the journal.
    appending: bool,
    /// Installs erased since the loader last looked, whose numbers its
    /// cache must drop.
    pub(super) forgotten: Vec<uuid::Uuid>,
}

/// A journaled batch, where its record ends, and the memory it takes.
pub(super) struct Handed {
    pub(super) events: Vec<StoredEvent>,
    pub(super) end: Position,
    pub(super) bytes: usize,
}

/// Why the loader stopped.
struct Failure {
    reason: String,
    /// The disk was full: loading goes on once it has room.
    disk_full: bool,
    /// It passes by itself (a full disk, or out of memory or open files):
    /// the loader tries again.
    passes: bool,
}

/// What the loader should do about its failure, if it has one.
pub(super) enum Resume {
    /// Nothing failed (or no more): load.
    Load,
    /// Try to catch up on the journal.
    CatchUp,
    /// Stop: the writer closes, or the failure does not pass by itself.
    Stop,
}

impl Handoff {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_timeout<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(state, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Marks a writer open; fails if one is.
    pub(super) fn open_writer(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.writing {
            return Err(StoreError::Unavailable(
                "the store has a writer already".into(),
            ));
        }
        // A new loader would record positions past the failed one's
        // records, and the next open would then skip them; after a failure
        // that passes, it catches up on the journal first.
        if let Some(failure) = state.failure.as_ref().filter(|f| !f.passes) {
            return Err(StoreError::Unavailable(format!(
                "loading events failed earlier ({}); open the store again to load its journal",
                failure.reason
            )));
        }
        // The last writer's loader committed everything before it stopped.
        state.writing = true;
        state.closing = false;
        state.commit_wanted = false;
        Ok(())
    }

    /// Tells the loader to commit what it has and stop.
    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.changed.notify_all();
    }

    /// Marks the writer closed, once its loader has stopped.
    pub(super) fn close_writer(&self) {
        self.lock().writing = false;
    }

    /// Waits until the backlog has room and takes it; fails if the loader
    /// stopped.
    pub(super) fn wait_for_room(self: &Arc<Self>) -> Result<Room, StoreError> {
        let mut state = self.lock();
        loop {
            if let Some(failure) = &state.failure {
                return Err(failure.refusal());
            }
            if state.backlog < MAX_BACKLOG && state.backlog_bytes < MAX_BACKLOG_BYTES {
                state.appending = true;
                return Ok(Room(Arc::clone(self)));
            }
            state = self.wait(state);
        }
    }

    /// Waits until everything handed over so far is committed (or the
    /// loader stopped).
    pub(super) fn wait_loaded(&self) {
        let mut state = self.lock();
        let target = state.sent;
        while state.committed < target && state.failure.is_none() {
            state.commit_wanted = true;
            self.changed.notify_all();
            state = self.wait(state);
        }
    }

    /// Waits until everything handed over so far is committed; fails if
    /// the loader stopped, as the database then lacks acknowledged events.
    pub(super) fn wait_complete(&self) -> Result<(), StoreError> {
        self.wait_loaded();
        match self.failure() {
            Some(failure) => Err(StoreError::Unavailable(failure)),
            None => Ok(()),
        }
    }

    /// Tells the loader that `install` was erased, numbers and all.
    pub(super) fn forgotten(&self, install: uuid::Uuid) {
        let mut state = self.lock();
        if state.writing {
            state.forgotten.push(install);
        }
    }

    /// Events handed over and not yet committed.
    pub(super) fn unloaded(&self) -> usize {
        self.lock().unloaded
    }

    /// Why the loader stopped, if it did, in words fit for anyone who asks
    /// (`/healthz` is open): what failed and what comes next, never the
    /// error itself, which names files and is in the server's log.
    pub(super) fn failure(&self) -> Option<String> {
        self.lock().failure.as_ref().map(|failure| {
            if failure.disk_full {
                "loading acknowledged events into the store failed: the disk is full; \
                 they are safe in the journal and are loaded as soon as it has room again"
                    .to_owned()
            } else if failure.passes {
                "loading acknowledged events into the store failed: the server ran out of \
                 memory or open files; they are safe in the journal and loading is tried again \
                 every few seconds"
                    .to_owned()
            } else {
                "loading acknowledged events into the store failed (the server's log says \
                 why); they are safe in the journal and are loaded when the server starts again"
                    .to_owned()
            }
        })
    }

    /// Whether everything handed over is committed.
    pub(super) fn all_loaded(&self) -> bool {
        let state = self.lock();
        state.committed == state.sent && state.failure.is_none()
    }

    /// Records that loading failed with `e` (which the loader rolled back).
    pub(super) fn failed(&self, e: &StoreError) {
        self.lock().failure = Some(Failure {
            reason: e.to_string(),
            disk_full: e.is_disk_full(),
            passes: e.passes(),
        });
        self.changed.notify_all();
    }

    /// `committed` batches of `rows` events are committed.
    pub(super) fn committed(&self, batches: u64, rows: usize) {
        let mut state = self.lock();
        state.committed += batches;
        state.unloaded -= rows;
        self.changed.notify_all();
    }

    /// Waits `every` (or until the writer closes), then says what the
    /// loader should do; [`Resume::CatchUp`] only once no [`Room`] is held.
    pub(super) fn resume(&self, every: Duration) -> Resume {
        let mut state = self.lock();
        let due = Instant::now() + every;
        loop {
            match &state.failure {
                None => return Resume::Load,
                Some(failure) if !failure.passes => return Resume::Stop,
                Some(_) if state.closing => return Resume::Stop,
                Some(_) => {}
            }
            let now = Instant::now();
            if now < due {
                state = self.wait_timeout(state, due - now);
            } else if state.appending {
                state = self.wait(state);
            } else {
                return Resume::CatchUp;
            }
        }
    }

    /// The loader caught up on the journal up to `end` after a failure:
    /// the batches handed over that end there or before are loaded, and
    /// the writer may go on.
    pub(super) fn recovered(&self, end: Position) {
        let mut state = self.lock();
        state.queue.retain(|handed| handed.end > end);
        let waiting: usize = state.queue.iter().map(|h| h.events.len()).sum();
        state.backlog_bytes = state.queue.iter().map(|h| h.bytes).sum();
        state.committed = state.sent - state.queue.len() as u64;
        (state.backlog, state.unloaded) = (waiting, waiting);
        state.oldest = (waiting > 0).then(Instant::now);
        state.failure = None;
        self.changed.notify_all();
    }
}

impl Failure {
    /// What the writer answers while the loader is stopped.
    fn refusal(&self) -> StoreError {
        let why = format!("loading events into the store failed: {}", self.reason);
        if self.disk_full {
            StoreError::DiskFull(why)
        } else if self.passes {
            StoreError::OutOfResources(why)
        } else {
            StoreError::Unavailable(why)
        }
    }
}

/// The writer's leave to append to the journal and hand the batch over; a
/// loader that failed does not read the journal while it is held.
pub(super) struct Room(Arc<Handoff>);

impl Room {
    /// Fails if the loader failed since the room was taken: what the
    /// database said of duplicates meanwhile may lack the events it rolled
    /// back, so a batch checked against it must not be appended.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match &self.0.lock().failure {
            Some(failure) => Err(failure.refusal()),
            None => Ok(()),
        }
    }

    /// Hands journaled `events`, whose record ends at `end`, to the loader.
    pub(super) fn push(self, events: Vec<StoredEvent>, end: Position) {
        let bytes = events.iter().map(StoredEvent::memory_bytes).sum();
        let mut state = self.0.lock();
        state.backlog += events.len();
        state.backlog_bytes += bytes;
        state.unloaded += events.len();
        state.oldest.get_or_insert_with(Instant::now);
        state.sent += 1;
        state.queue.push_back(Handed { events, end, bytes });
        self.0.changed.notify_all();
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        self.0.lock().appending = false;
        self.0.changed.notify_all();
    }
}
