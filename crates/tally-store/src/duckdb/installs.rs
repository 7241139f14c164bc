//! The numbers the rollups' install sets hold (see `tally_rollup::Agg`):
//! one per install id, given in order of first sight and kept in the
//! `installs` table.
//!
//! Install ids are the clients' to choose, so an attacker with an app's
//! (public) ingest key can send a new one with every event: the map from
//! id to number can grow as fast as the app's rate limit lets events in.
//! Only a bounded cache of it is kept in memory, in two generations (the
//! ids seen lately, and those seen before them), so that installs that keep
//! running stay in it however many new ones come; an id in neither is
//! looked up in the table, with all the batch's other misses in one join.
//! Memory is bounded by the cache's capacity whatever the table holds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use duckdb::{Connection, params};
use tally_protocol::StoredEvent;
use uuid::Uuid;

use crate::StoreError;

/// The install number of each event of a batch, in order, and the installs
/// seen for the first time with the numbers they were given.
pub(super) type Numbered = (Vec<u32>, Vec<(Uuid, u32)>);

/// The install numbers of one store, for its loader.
pub(super) struct InstallNumbers {
    /// The ids seen lately, up to half the capacity ...
    recent: HashMap<u128, u32>,
    /// ... and those seen before them, dropped when `recent` fills again.
    older: HashMap<u128, u32>,
    generation: usize,
    /// The number the next new install gets.
    next: u32,
}

impl InstallNumbers {
    /// Reads the next number from `conn`'s table, and the ids numbered last
    /// (the most likely to run again) into the cache.
    pub(super) fn open(conn: &Connection, capacity: usize) -> Result<Self, StoreError> {
        let generation = (capacity / 2).max(1);
        let next: i64 =
            conn.query_row("SELECT coalesce(max(n) + 1, 0) FROM installs", [], |r| {
                r.get(0)
            })?;
        let mut recent = HashMap::new();
        let mut stmt =
            conn.prepare("SELECT install_id, n FROM installs ORDER BY n DESC LIMIT ?")?;
        let mut rows = stmt.query([generation as i64])?;
        while let Some(r) = rows.next()? {
            let id: Uuid = r.get(0)?;
            recent.insert(id.as_u128(), r.get(1)?);
        }
        Ok(Self {
            recent,
            older: HashMap::new(),
            generation,
            next: next as u32,
        })
    }

    /// How many install ids the cache holds now.
    pub(super) fn held(&self) -> usize {
        self.recent.len() + self.older.len()
    }

    /// Says [`Self::held`] in `gauge`.
    pub(super) fn show(&self, gauge: &AtomicUsize) {
        gauge.store(self.held(), Ordering::Relaxed);
    }

    /// The install numbers of `events`, in order, looking up in `conn`'s
    /// table the ids the cache does not hold and handing out the next
    /// numbers to ids seen for the first time; those are also returned, to
    /// be stored in the same transaction as the events.
    pub(super) fn number<'a>(
        &mut self,
        conn: &Connection,
        events: impl IntoIterator<Item = &'a StoredEvent> + Clone,
    ) -> Result<Numbered, StoreError> {
        // The batch's numbers are held here until it is numbered, so that
        // filling the cache meanwhile cannot drop one it needs.
        let mut batch: HashMap<u128, u32> = HashMap::new();
        let mut misses = HashSet::new();
        for stored in events.clone() {
            let id = stored.event.install_id.as_u128();
            if batch.contains_key(&id) || misses.contains(&id) {
                continue;
            }
            match self.cached(id) {
                Some(n) => {
                    batch.insert(id, n);
                }
                None => {
                    misses.insert(id);
                }
            }
        }
        batch.extend(look_up(conn, misses)?);
        let mut fresh = Vec::new();
        let numbers = events
            .into_iter()
            .map(|stored| {
                let id = stored.event.install_id;
                *batch.entry(id.as_u128()).or_insert_with(|| {
                    let n = self.next;
                    self.next += 1;
                    fresh.push((id, n));
                    n
                })
            })
            .collect();
        for (id, n) in batch {
            self.remember(id, n);
        }
        Ok((numbers, fresh))
    }

    /// Drops an erased install's number: if it comes again, it is a new
    /// install with a new number.
    pub(super) fn forget(&mut self, id: Uuid) {
        self.recent.remove(&id.as_u128());
        self.older.remove(&id.as_u128());
    }

    fn cached(&mut self, id: u128) -> Option<u32> {
        if let Some(&n) = self.recent.get(&id) {
            return Some(n);
        }
        let n = self.older.remove(&id)?;
        self.remember(id, n);
        Some(n)
    }

    fn remember(&mut self, id: u128, n: u32) {
        if self.recent.len() >= self.generation && !self.recent.contains_key(&id) {
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(id, n);
    }
}

/// The stored numbers of those of `ids` that have one.
fn look_up(conn: &Connection, ids: HashSet<u128>) -> Result<Vec<(u128, u32)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // A temporary table of the connection, filled by an appender: a join
    // with it is one scan of the table, where one lookup per id would be
    // one scan each.
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS install_lookup (install_id UUID NOT NULL);
         DELETE FROM install_lookup;",
    )?;
    let mut appender = conn.appender_to_catalog_and_db("install_lookup", "temp", "main")?;
    for id in ids {
        appender.append_row(params![Uuid::from_u128(id)])?;
    }
    appender.flush()?;
    drop(appender);
    let mut stmt = conn.prepare(
        "SELECT install_id, n FROM installs WHERE install_id IN (SELECT install_id FROM install_lookup)",
    )?;
    let mut rows = stmt.query([])?;
    let mut found = Vec::new();
    while let Some(r) = rows.next()? {
        let id: Uuid = r.get(0)?;
        found.push((id.as_u128(), r.get(1)?));
    }
    Ok(found)
}
