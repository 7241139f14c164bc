//! Moving journaled events into DuckDB, behind the acknowledgements.
//!
//! The writer acknowledges a batch once it is in the [journal](crate::journal)
//! and hands it over here. The loader thread appends what it is handed to
//! one open DuckDB transaction and commits it (with the rollups of all its
//! events and how far the journal is loaded) once it holds a full row group,
//! when a reader asks, or every few seconds. A transaction of at least a row
//! group is DuckDB's bulk path: its row groups are compressed and written
//! once, and the WAL only points at them, where small commits copy every row
//! into the WAL and recompress the table's last row group at each checkpoint.
//!
//! Readers of the store ask for a commit of what was handed over and wait
//! for it, so an export or a report sees every event acknowledged.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use duckdb::{Connection, params};

use super::compactor::Compactor;
use super::rollups;
use super::rows::events_batch;
use tally_protocol::StoredEvent;
use tally_rollup::{Installs, Rollups};

use crate::StoreError;
use crate::journal::{self, Position, Recycler};

/// Events handed over and not yet appended, at most: the writer waits
/// beyond it, so memory stays bounded when DuckDB is slower than requests.
const MAX_BACKLOG: usize = 20_000;
/// DuckDB's row group size: a transaction with this many rows takes the
/// bulk path.
const ROW_GROUP_ROWS: usize = 122_880;
/// An open transaction is committed at the latest this long after it began.
const COMMIT_EVERY: Duration = Duration::from_secs(5);
/// The loader waits for this many events, or for its oldest to be this old,
/// before it appends: appends have a cost of their own, and nothing waits
/// for the loader but readers, who ask for what there is.
const MIN_APPEND: usize = 4096;
const MAX_WAIT: Duration = Duration::from_millis(100);

/// The hand-over between the writer, the loader thread and the readers.
#[derive(Default)]
pub(super) struct Handoff {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Journaled batches not yet taken by the loader, and where each ends.
    queue: VecDeque<(Vec<StoredEvent>, Position)>,
    /// Events in `queue`.
    backlog: usize,
    /// Events handed over and not yet committed.
    unloaded: usize,
    /// When the oldest batch in `queue` came.
    oldest: Option<Instant>,
    /// Batches handed over, and committed, ever.
    sent: u64,
    committed: u64,
    /// A reader waits for a commit.
    commit_wanted: bool,
    /// The writer is gone: commit and stop.
    closing: bool,
    /// Why the loader stopped, if it did.
    failure: Option<String>,
    /// Whether a writer is open (there may be one at a time).
    writing: bool,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
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
        // records, and the next open would then skip them.
        if let Some(failure) = &state.failure {
            return Err(StoreError::Unavailable(format!(
                "loading events failed earlier ({failure}); open the store again to load its journal"
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

    /// Waits until the backlog has room; fails if the loader stopped.
    pub(super) fn wait_for_room(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        loop {
            if let Some(failure) = &state.failure {
                return Err(StoreError::Unavailable(format!(
                    "loading events into the store failed: {failure}"
                )));
            }
            if state.backlog < MAX_BACKLOG {
                return Ok(());
            }
            state = self.wait(state);
        }
    }

    /// Hands journaled `events`, whose record ends at `end`, to the loader.
    pub(super) fn push(&self, events: Vec<StoredEvent>, end: Position) {
        let mut state = self.lock();
        state.backlog += events.len();
        state.unloaded += events.len();
        state.oldest.get_or_insert_with(Instant::now);
        state.sent += 1;
        state.queue.push_back((events, end));
        self.changed.notify_all();
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

    /// Events handed over and not yet committed.
    pub(super) fn unloaded(&self) -> usize {
        self.lock().unloaded
    }

    /// Why the loader stopped, if it did.
    pub(super) fn failure(&self) -> Option<String> {
        self.lock().failure.as_ref().map(|failure| {
            format!(
                "loading acknowledged events into the store failed ({failure}); \
                 they are safe in the journal and are loaded when the server starts again"
            )
        })
    }

    /// Whether everything handed over is committed.
    pub(super) fn all_loaded(&self) -> bool {
        let state = self.lock();
        state.committed == state.sent && state.failure.is_none()
    }
}

/// What the loader thread should do next.
enum Step {
    Append(Vec<(Vec<StoredEvent>, Position)>),
    Commit,
    Stop,
}

/// The loader thread: owns the writing connection and the open transaction.
pub(super) struct Loader {
    conn: Connection,
    installs: Installs,
    compactor: Compactor,
    journal: Recycler,
    open: Option<Open>,
}

/// What a transaction that loads journaled events holds until it commits.
struct Open {
    began: Instant,
    rows: usize,
    batches: u64,
    end: Position,
    /// The rollups of every event appended, written at commit.
    rollups: Rollups,
}

impl Open {
    fn new(end: Position) -> Self {
        Self {
            began: Instant::now(),
            rows: 0,
            batches: 0,
            end,
            rollups: Rollups::default(),
        }
    }

    /// Appends `events` (the whole of `batches` journal records, the last
    /// ending at `end`) with their install numbers, new installs too, and
    /// adds their rollups to those written at commit. New installs are
    /// numbered in `installs` at once, within the open transaction, as
    /// later batches must see them; should it roll back, the loader stops
    /// and the next start numbers them again from what was committed.
    fn append(
        &mut self,
        conn: &Connection,
        installs: &mut Installs,
        events: &[&StoredEvent],
        batches: u64,
        end: Position,
    ) -> Result<(), StoreError> {
        let (numbers, fresh) = rollups::number_installs(installs, events.iter().copied());
        for (stored, &install) in events.iter().zip(&numbers) {
            self.rollups.add(&stored.event, install);
        }
        let mut appender = conn.appender("events")?;
        appender.append_record_batch(events_batch(events, &numbers)?)?;
        appender.flush()?;
        let mut appender = conn.appender("installs")?;
        for (id, n) in &fresh {
            appender.append_row(params![id, n])?;
        }
        appender.flush()?;
        self.rows += events.len();
        self.batches += batches;
        self.end = end;
        Ok(())
    }

    /// Writes what waits for the commit: the rollups, and how far the
    /// journal is loaded. Returns how many rollup rows.
    fn finish(&self, conn: &Connection) -> Result<usize, StoreError> {
        let appended = rollups::append(conn, &self.rollups)?;
        conn.execute(
            "UPDATE journal_loaded SET segment = ?, \"offset\" = ?",
            params![self.end.segment as i64, self.end.offset as i64],
        )?;
        Ok(appended)
    }
}

impl Loader {
    pub(super) fn new(conn: &Connection, journal: Recycler) -> Result<Self, StoreError> {
        Ok(Self {
            installs: rollups::load_installs(conn)?,
            compactor: Compactor::start(conn.try_clone()?)?,
            conn: conn.try_clone()?,
            journal,
            open: None,
        })
    }

    /// Hands the journal's segments before `below` back for reuse (and
    /// makes the writer's next one, if none is ready).
    fn recycle(&self, below: u64) {
        if let Err(e) = self.journal.recycle(below) {
            tracing::warn!(error = %e, "Recycling loaded journal segments failed.");
        }
    }

    /// Loads what the writer hands over until it closes.
    pub(super) fn run(mut self, handoff: &Handoff) {
        self.recycle(0);
        loop {
            let step = self.next_step(handoff);
            let result = match step {
                Step::Append(batches) => {
                    let taken: usize = batches.iter().map(|(b, _)| b.len()).sum();
                    let appended = self.append(&batches);
                    let mut state = handoff.lock();
                    state.backlog -= taken;
                    handoff.changed.notify_all();
                    drop(state);
                    appended.and_then(|()| {
                        let full = self.open.as_ref().is_some_and(|o| o.rows >= ROW_GROUP_ROWS);
                        if full { self.commit(handoff) } else { Ok(()) }
                    })
                }
                Step::Commit => self.commit(handoff),
                Step::Stop => {
                    if let Err(e) = self.commit(handoff) {
                        self.fail(handoff, &e);
                    }
                    return;
                }
            };
            if let Err(e) = result {
                self.fail(handoff, &e);
                return;
            }
        }
    }

    fn next_step(&self, handoff: &Handoff) -> Step {
        let mut state = handoff.lock();
        loop {
            if let Some(oldest) = state.oldest {
                let due = oldest + MAX_WAIT;
                let now = Instant::now();
                if state.backlog >= MIN_APPEND || state.closing || state.commit_wanted || now >= due
                {
                    state.oldest = None;
                    return Step::Append(state.queue.drain(..).collect());
                }
                state = handoff
                    .changed
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            if state.closing {
                return Step::Stop;
            }
            let Some(open) = &self.open else {
                state.commit_wanted = false;
                state = handoff.wait(state);
                continue;
            };
            let due = open.began + COMMIT_EVERY;
            let now = Instant::now();
            if state.commit_wanted || now >= due {
                state.commit_wanted = false;
                return Step::Commit;
            }
            state = handoff
                .changed
                .wait_timeout(state, due - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Rolls back what is open; the events stay in the journal, which the
    /// next start loads.
    fn fail(&mut self, handoff: &Handoff, e: &StoreError) {
        tracing::error!(error = %e, "Loading journaled events failed; they stay in the journal and are loaded at the next start.");
        if self.open.take().is_some() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        handoff.lock().failure = Some(e.to_string());
        handoff.changed.notify_all();
    }

    fn append(&mut self, batches: &[(Vec<StoredEvent>, Position)]) -> Result<(), StoreError> {
        let Some(&(_, end)) = batches.last() else {
            return Ok(());
        };
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                self.conn.execute_batch("BEGIN TRANSACTION")?;
                self.open.insert(Open::new(end))
            }
        };
        let events: Vec<&StoredEvent> = batches.iter().flat_map(|(b, _)| b).collect();
        open.append(
            &self.conn,
            &mut self.installs,
            &events,
            batches.len() as u64,
            end,
        )
    }

    fn commit(&mut self, handoff: &Handoff) -> Result<(), StoreError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let appended = open.finish(&self.conn)?;
        self.conn.execute_batch("COMMIT")?;
        self.compactor.appended(open.rollups.days(), appended);
        let mut state = handoff.lock();
        state.committed += open.batches;
        state.unloaded -= open.rows;
        handoff.changed.notify_all();
        drop(state);
        self.recycle(open.end.segment);
        Ok(())
    }
}

/// How far the journal is loaded, as recorded by the last commit.
pub(super) fn loaded_position(conn: &Connection) -> Result<Position, StoreError> {
    let (segment, offset): (i64, i64) =
        conn.query_row("SELECT segment, \"offset\" FROM journal_loaded", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(Position {
        segment: segment as u64,
        offset: offset as u64,
    })
}

/// Loads what the journal holds beyond the loaded position (the events a
/// crash left unloaded) in one transaction, then recycles the journal's
/// segments. Runs
/// when the store opens, before any writer.
pub(super) fn recover(conn: &mut Connection, journal_dir: &Path) -> Result<(), StoreError> {
    let from = loaded_position(conn)?;
    let mut loaded: Option<(Installs, Open)> = None;
    let tx = conn.transaction()?;
    journal::replay(journal_dir, from, |events, end| {
        let (installs, open) = match &mut loaded {
            Some(state) => state,
            None => loaded.insert((rollups::load_installs(&tx)?, Open::new(end))),
        };
        let refs: Vec<&StoredEvent> = events.iter().collect();
        open.append(&tx, installs, &refs, 1, end)
    })?;
    let Some((_, open)) = loaded else {
        drop(tx);
        return journal::recycle_loaded(journal_dir, from.segment);
    };
    open.finish(&tx)?;
    tx.commit()?;
    tracing::info!(
        events = open.rows,
        "Loaded the events a previous run had journaled but not stored."
    );
    let days: BTreeSet<i32> = open.rollups.days().collect();
    rollups::compact(conn, &days)?;
    journal::recycle_loaded(journal_dir, open.end.segment)
}
