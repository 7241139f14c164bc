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
//!
//! A failed load is rolled back; the events stay in the journal. When the
//! failure passes by itself (a full disk, DuckDB's memory limit, too many
//! open files), the loader tries again every [`RETRY_EVERY`] (once there is
//! room on the disk) and catches up on the journal from the position the
//! database records as loaded, as an open after a crash does, in bounded
//! transactions (see [`super::handoff`] for why that loads each record
//! once); any other failure stops it until the store is opened again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use duckdb::{Connection, params};

use super::compactor::Compactor;
use super::handoff::{Handed, Handoff, Resume};
use super::installs::InstallNumbers;
use super::rollups;
use super::rows::events_batch;
use tally_protocol::StoredEvent;
use tally_rollup::Rollups;

use crate::journal::{self, Position, Recycler};
use crate::{Caches, StoreError};

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
/// How many events an open transaction rolls up between looks at how many
/// rollup rows it holds (see [`Caches::rollups`]).
const ROLLUP_CHECK: usize = 1024;
/// How often a loader stopped by a full disk looks for room again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// What the loader thread should do next.
enum Step {
    Append(Vec<Handed>),
    Commit,
    Stop,
}

/// The loader thread: owns the writing connection and the open transaction.
pub(super) struct Loader {
    conn: Connection,
    installs: InstallNumbers,
    caches: Caches,
    compactor: Compactor,
    journal: Recycler,
    journal_dir: PathBuf,
    open: Option<Open>,
    /// The last recycling failed.
    recycle_failing: bool,
}

/// What a transaction that loads journaled events holds until it commits.
struct Open {
    began: Instant,
    rows: usize,
    batches: u64,
    end: Position,
    /// The rollups of the events appended since rollups were last written
    /// in this transaction, and how many rows it writes them at.
    rollups: Rollups,
    max_rollups: usize,
    /// The days the transaction wrote rollup rows of, and how many rows.
    days: BTreeSet<i32>,
    rollup_rows: usize,
}

impl Open {
    fn new(end: Position, max_rollups: usize) -> Self {
        Self {
            began: Instant::now(),
            rows: 0,
            batches: 0,
            end,
            rollups: Rollups::default(),
            max_rollups,
            days: BTreeSet::new(),
            rollup_rows: 0,
        }
    }

    /// Appends `events` (the whole of `batches` journal records, the last
    /// ending at `end`) with their install numbers, new installs too, and
    /// adds their rollups to those written at commit. New installs are
    /// numbered in `installs` at once, within the open transaction, as
    /// later batches must see them; should it roll back, `installs` is
    /// opened again from what was committed before it is used again.
    ///
    /// Rollups are written within the transaction as soon as they have
    /// their most rows: each event may make a hundred new ones,
    /// keyed by strings its sender chose, so held to the commit they would
    /// take memory in proportion to the transaction's events.
    fn append(
        &mut self,
        conn: &Connection,
        installs: &mut InstallNumbers,
        events: &[&StoredEvent],
        batches: u64,
        end: Position,
    ) -> Result<(), StoreError> {
        let (numbers, fresh) = installs.number(conn, events.iter().copied())?;
        let mut appender = conn.appender("events")?;
        appender.append_record_batch(events_batch(events, &numbers)?)?;
        appender.flush()?;
        let mut appender = conn.appender("installs")?;
        for (id, n) in &fresh {
            appender.append_row(params![id, n])?;
        }
        appender.flush()?;
        for (events, numbers) in events
            .chunks(ROLLUP_CHECK)
            .zip(numbers.chunks(ROLLUP_CHECK))
        {
            for (stored, &install) in events.iter().zip(numbers) {
                self.rollups.add(&stored.event, install);
            }
            if self.rollups.len() >= self.max_rollups {
                self.write_rollups(conn)?;
            }
        }
        self.rows += events.len();
        self.batches += batches;
        self.end = end;
        Ok(())
    }

    fn write_rollups(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let rollups = std::mem::take(&mut self.rollups);
        self.rollup_rows += rollups::append(conn, &rollups)?;
        self.days.extend(rollups.days());
        Ok(())
    }

    /// Whether to commit now rather than append more: a row group is in.
    fn full(&self) -> bool {
        self.rows >= ROW_GROUP_ROWS
    }

    /// Writes what waits for the commit (the rollups, and how far the
    /// journal is loaded) and commits.
    fn commit(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.write_rollups(conn)?;
        conn.execute(
            "UPDATE journal_loaded SET segment = ?, \"offset\" = ?",
            params![self.end.segment as i64, self.end.offset as i64],
        )?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    }
}

impl Loader {
    pub(super) fn new(
        conn: &Connection,
        caches: Caches,
        journal: Recycler,
        journal_dir: PathBuf,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            installs: InstallNumbers::open(conn, caches.installs)?,
            caches,
            compactor: Compactor::start(conn.try_clone()?)?,
            conn: conn.try_clone()?,
            journal,
            journal_dir,
            open: None,
            recycle_failing: false,
        })
    }

    /// Hands the journal's segments before `below` back for reuse (and
    /// makes the writer's next one, if none is ready). A failure is said
    /// once until it passes: on a full disk it comes with every commit.
    fn recycle(&mut self, below: u64) {
        match self.journal.recycle(below) {
            Ok(()) => self.recycle_failing = false,
            Err(e) if self.recycle_failing => {
                tracing::debug!(error = %e, "Recycling loaded journal segments failed again.");
            }
            Err(e) => {
                tracing::warn!(error = %e, "Recycling loaded journal segments failed.");
                self.recycle_failing = true;
            }
        }
    }

    /// Loads what the writer hands over until it closes. A store that could
    /// not load its journal when it opened starts failed, and catches up
    /// first.
    pub(super) fn run(mut self, handoff: &Handoff) {
        self.recycle(0);
        self.installs.show(&handoff.installs_held);
        while self.resume(handoff) {
            match self.load(handoff) {
                Ok(()) => return,
                Err(e) => self.fail(handoff, &e),
            }
        }
    }

    /// Loads until the writer closes (`Ok`) or a step fails.
    fn load(&mut self, handoff: &Handoff) -> Result<(), StoreError> {
        loop {
            match self.next_step(handoff) {
                Step::Append(batches) => {
                    let taken: usize = batches.iter().map(|h| h.events.len()).sum();
                    let bytes: usize = batches.iter().map(|h| h.bytes).sum();
                    let appended = self.append(&batches, handoff);
                    drop(batches);
                    let mut state = handoff.lock();
                    state.backlog -= taken;
                    state.backlog_bytes -= bytes;
                    handoff.changed.notify_all();
                    drop(state);
                    appended?;
                    if self.open.as_ref().is_some_and(Open::full) {
                        self.commit(handoff)?;
                    }
                }
                Step::Commit => self.commit(handoff)?,
                Step::Stop => return self.commit(handoff),
            }
        }
    }

    /// Whether to load: at once if nothing failed; after the full disk has
    /// room again and the journal is caught up; not after another failure
    /// or once the writer closes.
    fn resume(&mut self, handoff: &Handoff) -> bool {
        loop {
            match handoff.resume(RETRY_EVERY) {
                Resume::Load => return true,
                Resume::Stop => return false,
                Resume::CatchUp => {}
            }
            if !journal::has_room(&self.journal_dir) {
                tracing::debug!("The disk is still full; loading waits.");
                continue;
            }
            if let Err(e) = self.catch_up(handoff) {
                self.fail(handoff, &e);
            }
        }
    }

    /// Loads what the journal holds beyond what the database has (what
    /// failed to load, and all handed over since), then lets the writer go
    /// on. Runs while no [`super::handoff::Room`] is held, so the journal
    /// does not change meanwhile.
    fn catch_up(&mut self, handoff: &Handoff) -> Result<(), StoreError> {
        // The numbers given in the transaction that failed were not stored.
        self.installs = InstallNumbers::open(&self.conn, self.caches.installs)?;
        let caught = catch_up(
            &self.conn,
            &self.journal_dir,
            &mut self.installs,
            self.caches,
        );
        if caught.is_err() {
            self.installs = InstallNumbers::open(&self.conn, self.caches.installs)?;
        }
        self.installs.show(&handoff.installs_held);
        let caught = caught?;
        self.compactor
            .appended(caught.days.iter().copied(), caught.rollup_rows);
        handoff.recovered(caught.end);
        self.recycle(caught.end.segment);
        tracing::warn!(
            events = caught.events,
            "The disk has room again: the journaled events are loaded, and ingest goes on."
        );
        Ok(())
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

    /// Rolls back what is open (the events stay in the journal) and says
    /// why loading stopped.
    fn fail(&mut self, handoff: &Handoff, e: &StoreError) {
        if e.is_disk_full() {
            tracing::error!(error = %e, "Loading journaled events failed on a full disk; they stay in the journal and are loaded once it has room.");
        } else if e.passes() {
            tracing::error!(error = %e, "Loading journaled events failed for want of memory or open files; they stay in the journal and loading is tried again.");
        } else {
            tracing::error!(error = %e, "Loading journaled events failed; they stay in the journal and are loaded at the next start.");
        }
        self.open = None;
        roll_back(&self.conn);
        handoff.failed(e);
    }

    fn append(&mut self, batches: &[Handed], handoff: &Handoff) -> Result<(), StoreError> {
        let Some(end) = batches.last().map(|h| h.end) else {
            return Ok(());
        };
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                self.conn.execute_batch("BEGIN TRANSACTION")?;
                self.open.insert(Open::new(end, self.caches.rollups))
            }
        };
        for install in std::mem::take(&mut handoff.lock().forgotten) {
            self.installs.forget(install);
        }
        let events: Vec<&StoredEvent> = batches.iter().flat_map(|h| &h.events).collect();
        let appended = open.append(
            &self.conn,
            &mut self.installs,
            &events,
            batches.len() as u64,
            end,
        );
        self.installs.show(&handoff.installs_held);
        appended
    }

    fn commit(&mut self, handoff: &Handoff) -> Result<(), StoreError> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        open.commit(&self.conn)?;
        self.compactor.appended(open.days, open.rollup_rows);
        handoff.committed(open.batches, open.rows);
        self.recycle(open.end.segment);
        Ok(())
    }
}

/// Ends the connection's transaction, if one is open: after a failed
/// statement or a failed commit it may be, or not, and a connection left
/// in an aborted transaction could never begin another.
fn roll_back(conn: &Connection) {
    let _ = conn.execute_batch("ROLLBACK");
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

/// What [`catch_up`] loaded.
struct CaughtUp {
    /// Where the last record loaded ends (the loaded position if none was).
    end: Position,
    events: usize,
    /// The days it added rollup rows to, and how many rows.
    days: BTreeSet<i32>,
    rollup_rows: usize,
}

/// Loads what the journal in `dir` holds beyond the position the database
/// records as loaded, in transactions of about a row group, each recording
/// how far it loaded: memory stays bounded whatever the journal holds, and
/// what one committed stays loaded if a later one fails. On an error,
/// `installs` holds numbers that were rolled back.
fn catch_up(
    conn: &Connection,
    dir: &Path,
    installs: &mut InstallNumbers,
    caches: Caches,
) -> Result<CaughtUp, StoreError> {
    let mut caught = CaughtUp {
        end: loaded_position(conn)?,
        events: 0,
        days: BTreeSet::new(),
        rollup_rows: 0,
    };
    let mut open: Option<Open> = None;
    let commit = |mut open: Open, caught: &mut CaughtUp| -> Result<(), StoreError> {
        open.commit(conn)?;
        caught.rollup_rows += open.rollup_rows;
        caught.days.extend(open.days);
        caught.events += open.rows;
        caught.end = open.end;
        Ok(())
    };
    let loaded = journal::replay(dir, caught.end, |events, end| {
        let tx = match &mut open {
            Some(tx) => tx,
            None => {
                conn.execute_batch("BEGIN TRANSACTION")?;
                open.insert(Open::new(end, caches.rollups))
            }
        };
        let refs: Vec<&StoredEvent> = events.iter().collect();
        tx.append(conn, installs, &refs, 1, end)?;
        match open.take_if(|tx| tx.full()) {
            Some(full) => commit(full, &mut caught),
            None => Ok(()),
        }
    })
    .and_then(|()| match open.take() {
        Some(last) => commit(last, &mut caught),
        None => Ok(()),
    });
    if let Err(e) = loaded {
        roll_back(conn);
        return Err(e);
    }
    Ok(caught)
}

/// Loads what the journal holds beyond the loaded position (the events a
/// crash left unloaded), then recycles the journal's segments. Runs when
/// the store opens, before any writer.
pub(super) fn recover(
    conn: &mut Connection,
    caches: Caches,
    journal_dir: &Path,
) -> Result<(), StoreError> {
    let mut installs = InstallNumbers::open(conn, caches.installs)?;
    let caught = catch_up(conn, journal_dir, &mut installs, caches)?;
    if caught.events > 0 {
        tracing::info!(
            events = caught.events,
            "Loaded the events a previous run had journaled but not stored."
        );
        // Merging rows is for speed: readers merge the rows they find.
        if let Err(e) = rollups::compact(conn, &caught.days) {
            tracing::warn!(error = %e, "Compacting the rollups of the loaded events failed.");
        }
    }
    journal::recycle_loaded(journal_dir, caught.end.segment)
}
