//! Inserts into the embedded store, exactly once each.
//!
//! A batch's new events are appended to the [journal](crate::journal) and
//! synced, which is when `insert` returns; the [loader](super::loader)
//! thread stores them in DuckDB behind, so requests do not wait for DuckDB's
//! commits and checkpoints.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use duckdb::Connection;

use super::handoff::Handoff;
use super::loader::{self, Loader};
use tally_protocol::StoredEvent;
use tally_rollup::micros;

use crate::dedupe::{self, Seen};
use crate::journal::{self, Encoded, Journal};
use crate::{Caches, RecentIds, Staged, StoreError, Writer};

pub(super) struct DuckDbWriter {
    /// Looks up ids older than what `recent` covers.
    conn: Connection,
    recent: RecentIds,
    journal: Journal,
    handoff: Arc<Handoff>,
    loader: Option<JoinHandle<()>>,
}

/// Unknown ids are looked up this many at a time.
const LOOKUP_CHUNK: usize = 500;

impl DuckDbWriter {
    /// Fills memory with the ids of the newest stored events, so that a
    /// restarted server still recognises retries of recent events without
    /// asking the database, and starts the loader.
    pub(super) fn open(
        conn: Connection,
        caches: Caches,
        journal_dir: PathBuf,
        handoff: Arc<Handoff>,
    ) -> Result<Self, StoreError> {
        handoff.open_writer()?;
        let opened = Self::start(conn, caches, journal_dir, Arc::clone(&handoff));
        if opened.is_err() {
            handoff.close_writer();
        }
        opened
    }

    fn start(
        conn: Connection,
        caches: Caches,
        journal_dir: PathBuf,
        handoff: Arc<Handoff>,
    ) -> Result<Self, StoreError> {
        let capacity = caches.recent_ids;
        let mut newest = newest(&conn, capacity)?;
        // Rows sharing the oldest loaded dedupe time may have been cut off
        // by the limit, so memory is complete only after it.
        let complete_from = match newest.last() {
            Some(&(_, oldest)) if newest.len() == capacity => oldest.saturating_add(1),
            _ => i64::MIN,
        };
        let mut recent = RecentIds::new(capacity, complete_from);
        newest.reverse();
        for (id, ts) in newest {
            recent.insert(id.as_u128(), ts);
        }
        // After the last record, loaded or not: a store that could not load
        // its journal at open (a full disk) loads it later, and a segment
        // reused meanwhile would lose it.
        let loaded = loader::loaded_position(&conn)?;
        let journal = Journal::create(&journal_dir, journal::end(&journal_dir, loaded)?.segment)?;
        let loader = Loader::new(&conn, caches, journal.recycler(), journal_dir)?;
        let thread = {
            let handoff = Arc::clone(&handoff);
            std::thread::Builder::new()
                .name("tally-load".into())
                .spawn(move || loader.run(&handoff))
                .map_err(|e| StoreError::Unavailable(format!("starting the loader: {e}")))?
        };
        Ok(Self {
            conn,
            recent,
            journal,
            handoff,
            loader: Some(thread),
        })
    }

    /// Turns every [`Seen::Unknown`] into New or Duplicate by asking the
    /// database, within the batch's range of client timestamps.
    fn resolve(&self, batch: &[StoredEvent], seen: &mut [Seen]) -> Result<(), StoreError> {
        let unknown: Vec<usize> = (0..batch.len())
            .filter(|&i| seen[i] == Seen::Unknown)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        // The database must hold everything journaled before it is asked.
        self.handoff.wait_loaded();
        for chunk in unknown.chunks(LOOKUP_CHUNK) {
            let stamps = chunk.iter().map(|&i| micros(batch[i].client_timestamp));
            let (lo, hi) = stamps.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
            // The ids are formatted by us from parsed UUIDs: safe to inline.
            let ids: Vec<String> = chunk
                .iter()
                .map(|&i| format!("'{}'", batch[i].event.id))
                .collect();
            let sql = format!(
                "SELECT id FROM events
                 WHERE client_timestamp BETWEEN make_timestamp(?) AND make_timestamp(?)
                   AND id IN ({})",
                ids.join(",")
            );
            let mut stmt = self.conn.prepare(&sql)?;
            let stored: HashSet<uuid::Uuid> = stmt
                .query_map([lo, hi], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for &i in chunk {
                seen[i] = if stored.contains(&batch[i].event.id) {
                    Seen::Duplicate
                } else {
                    Seen::New
                };
            }
        }
        Ok(())
    }
}

/// The ids and [`dedupe::latest`] times of the `capacity` stored events
/// latest by it, latest first.
fn newest(conn: &Connection, capacity: usize) -> Result<Vec<(uuid::Uuid, i64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, least(epoch_us(client_timestamp), epoch_us(timestamp) + ?,
                epoch_us(received_at) + ?) AS latest
         FROM events ORDER BY latest DESC LIMIT ?",
    )?;
    let slack = |d: time::Duration| d.whole_microseconds() as i64;
    let params = [slack(dedupe::JITTER), slack(dedupe::SKEW), capacity as i64];
    let rows = stmt.query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Writer for DuckDbWriter {
    fn insert(&mut self, staged: &mut Staged) -> Result<Vec<bool>, StoreError> {
        // Taken before the database is asked for duplicates: a loader that
        // failed and catches up waits for it, so the answer holds until
        // the batch is journaled (see `handoff`).
        let room = self.handoff.wait_for_room()?;
        let mut seen = self.recent.classify(staged.events());
        self.resolve(staged.events(), &mut seen)?;
        room.check()?;
        let new: Vec<bool> = seen.iter().map(|&s| s == Seen::New).collect();
        let count = new.iter().filter(|&&n| n).count();
        if count == 0 {
            staged.take();
            return Ok(new);
        }
        // Encoded in the request's thread (see `DuckDbStore::stage`), unless
        // the events were staged without it.
        let made;
        let encoded = match staged.prepared_as::<Encoded>() {
            Some(encoded) => encoded,
            None => {
                made = Encoded::new(staged.events());
                &made
            }
        };
        let end = if count == new.len() {
            self.journal.append([encoded.bytes()])?
        } else {
            let pieces = (0..new.len()).filter(|&i| new[i]).map(|i| encoded.event(i));
            self.journal.append(pieces)?
        };
        let events: Vec<StoredEvent> = staged
            .take()
            .into_iter()
            .zip(&new)
            .filter_map(|(e, &n)| n.then_some(e))
            .collect();
        for stored in &events {
            self.recent.remember(stored);
        }
        room.push(events, end);
        Ok(new)
    }
}

impl Drop for DuckDbWriter {
    /// Lets the loader store what is journaled, then recycles the journal's
    /// segments.
    fn drop(&mut self) {
        self.handoff.close();
        if let Some(thread) = self.loader.take()
            && thread.join().is_err()
        {
            tracing::error!("The loader thread panicked.");
        }
        if self.handoff.all_loaded()
            && let Err(e) = self.journal.recycler().recycle(u64::MAX)
        {
            tracing::warn!(error = %e, "Recycling the journal failed.");
        }
        self.handoff.close_writer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use tally_testkit::events::sample;
    use time::macros::datetime;

    /// A restarted writer remembers events by the same dedupe time as the
    /// running one: the SQL of [`newest`] is [`dedupe::latest`].
    #[test]
    fn memory_refilled_at_start_uses_the_dedupe_time_of_the_running_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::DuckDbStore::open(dir.path()).expect("open");
        let now = datetime!(2026-11-25 12:00 UTC);
        let clocks = [
            (now, now),
            (datetime!(1970-01-01 0:00 UTC), now),
            (datetime!(2099-06-01 0:00 UTC), now),
            (
                now + time::Duration::minutes(5),
                now + time::Duration::minutes(5),
            ),
        ];
        let events: Vec<StoredEvent> = (0..)
            .zip(clocks)
            .map(|(n, (client, corrected))| {
                let mut e = sample(n, "memory", corrected);
                e.client_timestamp = client;
                e
            })
            .collect();
        store
            .writer()
            .expect("writer")
            .insert(&mut store.stage(events.clone()))
            .expect("insert");
        let mut expected: Vec<(uuid::Uuid, i64)> = events
            .iter()
            .map(|e| (e.event.id, dedupe::latest(e)))
            .collect();
        expected.sort_by_key(|&(_, latest)| std::cmp::Reverse(latest));
        let conn = store.connection().expect("connection");
        assert_eq!(newest(&conn, 10).expect("newest"), expected);
    }
}
