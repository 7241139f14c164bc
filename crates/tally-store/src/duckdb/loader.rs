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
//! disk was full, the loader looks for room every [`RETRY_EVERY`] and then
//! catches up on the journal from the position the database records as
//! loaded, as an open after a crash does (see [`super::handoff`] for why
//! that loads each record once); any other failure stops it until the
//! store is opened again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use duckdb::{Connection, params};

use super::compactor::Compactor;
use super::handoff::{Handed, Handoff, Resume};
use super::rollups;
use super::rows::events_batch;
use tally_protocol::StoredEvent;
use tally_rollup::{Installs, Rollups};

use crate::StoreError;
use crate::journal::{self, Position, Recycler};

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
    installs: Installs,
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
    /// later batches must see them; should it roll back, `installs` is
    /// read again from what was committed before it is used again.
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

    /// Writes what waits for the commit (the rollups, and how far the
    /// journal is loaded) and commits. Returns how many rollup rows.
    fn commit(&self, conn: &Connection) -> Result<usize, StoreError> {
        let appended = rollups::append(conn, &self.rollups)?;
        conn.execute(
            "UPDATE journal_loaded SET segment = ?, \"offset\" = ?",
            params![self.end.segment as i64, self.end.offset as i64],
        )?;
        conn.execute_batch("COMMIT")?;
        Ok(appended)
    }
}

impl Loader {
    pub(super) fn new(
        conn: &Connection,
        journal: Recycler,
        journal_dir: PathBuf,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            installs: rollups::load_installs(conn)?,
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
                    let appended = self.append(&batches);
                    drop(batches);
                    let mut state = handoff.lock();
                    state.backlog -= taken;
                    state.backlog_bytes -= bytes;
                    handoff.changed.notify_all();
                    drop(state);
                    appended?;
                    if self.open.as_ref().is_some_and(|o| o.rows >= ROW_GROUP_ROWS) {
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
        let mut installs = None;
        let caught = catch_up(&self.conn, &self.journal_dir, &mut installs)?;
        // The numbers given in the transaction that failed were not stored.
        self.installs = match installs {
            Some(installs) => installs,
            None => rollups::load_installs(&self.conn)?,
        };
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
        } else {
            tracing::error!(error = %e, "Loading journaled events failed; they stay in the journal and are loaded at the next start.");
        }
        self.open = None;
        roll_back(&self.conn);
        handoff.failed(e);
    }

    fn append(&mut self, batches: &[Handed]) -> Result<(), StoreError> {
        let Some(end) = batches.last().map(|h| h.end) else {
            return Ok(());
        };
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                self.conn.execute_batch("BEGIN TRANSACTION")?;
                self.open.insert(Open::new(end))
            }
        };
        let events: Vec<&StoredEvent> = batches.iter().flat_map(|h| &h.events).collect();
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
        let appended = open.commit(&self.conn)?;
        self.compactor.appended(open.rollups.days(), appended);
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
/// what one committed stays loaded if a later one fails. `installs` is read
/// when first needed; on an error it holds numbers that were rolled back.
fn catch_up(
    conn: &Connection,
    dir: &Path,
    installs: &mut Option<Installs>,
) -> Result<CaughtUp, StoreError> {
    let mut caught = CaughtUp {
        end: loaded_position(conn)?,
        events: 0,
        days: BTreeSet::new(),
        rollup_rows: 0,
    };
    let mut open: Option<Open> = None;
    let commit = |open: Open, caught: &mut CaughtUp| -> Result<(), StoreError> {
        caught.rollup_rows += open.commit(conn)?;
        caught.days.extend(open.rollups.days());
        caught.events += open.rows;
        caught.end = open.end;
        Ok(())
    };
    let loaded = journal::replay(dir, caught.end, |events, end| {
        let installs = match installs {
            Some(installs) => installs,
            None => installs.insert(rollups::load_installs(conn)?),
        };
        let tx = match &mut open {
            Some(tx) => tx,
            None => {
                conn.execute_batch("BEGIN TRANSACTION")?;
                open.insert(Open::new(end))
            }
        };
        let refs: Vec<&StoredEvent> = events.iter().collect();
        tx.append(conn, installs, &refs, 1, end)?;
        match open.take_if(|tx| tx.rows >= ROW_GROUP_ROWS) {
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
pub(super) fn recover(conn: &mut Connection, journal_dir: &Path) -> Result<(), StoreError> {
    let caught = catch_up(conn, journal_dir, &mut None)?;
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
