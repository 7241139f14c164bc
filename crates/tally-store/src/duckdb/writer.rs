//! Group-committed inserts into the embedded store, exactly once each.

use std::collections::HashSet;

use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, params};

use super::compactor::Compactor;
use super::rollups;
use crate::dedupe::{Seen, from_micros, micros};
use crate::rollup::{Installs, Rollups};
use crate::{RecentIds, StoreError, StoredEvent, Writer};

pub(super) struct DuckDbWriter {
    conn: Connection,
    recent: RecentIds,
    installs: Installs,
    compactor: Compactor,
}

/// Unknown ids are looked up this many at a time.
const LOOKUP_CHUNK: usize = 500;

impl DuckDbWriter {
    /// Fills memory with the ids of the newest stored events, so that a
    /// restarted server still recognises retries of recent events without
    /// asking the database.
    pub(super) fn open(conn: Connection, capacity: usize) -> Result<Self, StoreError> {
        let mut stmt = conn.prepare(
            "SELECT id, epoch_us(client_timestamp) AS ts FROM events
             ORDER BY ts DESC LIMIT ?",
        )?;
        let mut newest: Vec<(uuid::Uuid, i64)> = stmt
            .query_map([capacity as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        // Rows sharing the oldest loaded timestamp may have been cut off by
        // the limit, so memory is complete only after it.
        let complete_from = match newest.last() {
            Some(&(_, oldest)) if newest.len() == capacity => oldest.saturating_add(1),
            _ => i64::MIN,
        };
        let mut recent = RecentIds::new(capacity, complete_from);
        newest.reverse();
        for (id, ts) in newest {
            recent.insert(id.as_u128(), ts);
        }
        Ok(Self {
            installs: rollups::load_installs(&conn)?,
            compactor: Compactor::start(conn.try_clone()?)?,
            conn,
            recent,
        })
    }

    /// Merges the rollup rows appended since the last time, now.
    #[cfg(test)]
    pub(super) fn compact(&mut self) -> Result<(), StoreError> {
        self.compactor.now()
    }

    /// Turns every [`Seen::Unknown`] into New or Duplicate by asking the
    /// database, within the batch's range of client timestamps.
    fn resolve(&self, batch: &[StoredEvent], seen: &mut [Seen]) -> Result<(), StoreError> {
        let unknown: Vec<usize> = (0..batch.len())
            .filter(|&i| seen[i] == Seen::Unknown)
            .collect();
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

impl Writer for DuckDbWriter {
    fn insert(&mut self, batch: &[StoredEvent]) -> Result<Vec<bool>, StoreError> {
        let mut seen = self.recent.classify(batch);
        self.resolve(batch, &mut seen)?;
        let new: Vec<&StoredEvent> = batch
            .iter()
            .zip(&seen)
            .filter(|(_, s)| **s == Seen::New)
            .map(|(e, _)| e)
            .collect();
        let (numbers, fresh) = rollups::number_installs(&self.installs, new.iter().copied());
        let mut rollup = Rollups::default();
        for (stored, &install) in new.iter().zip(&numbers) {
            rollup.add(&stored.event, install);
        }
        // Events, install numbers and rollups commit together or not at all.
        let tx = self.conn.transaction()?;
        {
            let mut appender = tx.appender("events")?;
            for (stored, &install) in new.iter().zip(&numbers) {
                append(&mut appender, stored, install)?;
            }
            appender.flush()?;
            let mut appender = tx.appender("installs")?;
            for (id, n) in &fresh {
                appender.append_row(params![id, n])?;
            }
            appender.flush()?;
        }
        let appended = rollups::append(&tx, &rollup)?;
        tx.commit()?;
        for (id, n) in fresh {
            self.installs.insert(id.as_u128(), n);
        }
        for stored in &new {
            self.recent
                .insert(stored.event.id.as_u128(), micros(stored.client_timestamp));
        }
        self.compactor
            .appended(rollup.rows.keys().map(|k| k.day), appended);
        Ok(seen.into_iter().map(|s| s == Seen::New).collect())
    }
}

fn timestamp(t: time::OffsetDateTime) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, micros(t))
}

fn append(
    appender: &mut duckdb::Appender<'_>,
    stored: &StoredEvent,
    install: u32,
) -> Result<(), StoreError> {
    let e = &stored.event;
    let error = e.error.as_ref();
    appender.append_row(params![
        e.id,
        timestamp(e.timestamp),
        timestamp(stored.client_timestamp),
        timestamp(stored.received_at),
        e.app,
        e.app_version,
        e.install_id,
        e.command,
        e.flags.join(" "),
        e.exit_code,
        e.outcome.map(|o| o.as_str()),
        e.duration_ms as i64,
        e.os,
        e.arch,
        e.os_version,
        e.ci,
        e.agent,
        e.tty,
        error.map(|e| e.kind.as_str()),
        error.map(|e| e.message.as_str()),
        error.and_then(|e| e.location.as_deref()),
        json_map(&e.deps)?,
        json_map(&e.properties)?,
        e.container,
        e.wsl,
        e.name,
        install,
    ])?;
    Ok(())
}

fn json_map<V: serde::Serialize>(
    map: &std::collections::BTreeMap<String, V>,
) -> Result<Option<String>, StoreError> {
    if map.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(map)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Parses a JSON map column; NULL is the empty map.
fn parse_map<V: serde::de::DeserializeOwned>(
    what: &str,
    text: Option<String>,
) -> Result<std::collections::BTreeMap<String, V>, StoreError> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
        .map(Option::unwrap_or_default)
}

/// Reads one row of [`super::EXPORT_COLUMNS`] back into an event.
pub(super) fn row_to_event(r: &duckdb::Row<'_>) -> Result<StoredEvent, StoreError> {
    let flags: String = r.get(8)?;
    let outcome: Option<String> = r.get(10)?;
    let error_kind: Option<String> = r.get(18)?;
    let error = match error_kind {
        Some(kind) => Some(tally_protocol::ErrorInfo {
            kind,
            message: r.get::<_, Option<String>>(19)?.unwrap_or_default(),
            location: r.get(20)?,
        }),
        None => None,
    };
    let event = tally_protocol::Event {
        id: r.get(0)?,
        timestamp: from_micros(r.get(1)?),
        app: r.get(4)?,
        app_version: r.get(5)?,
        install_id: r.get(6)?,
        command: r.get(7)?,
        flags: flags.split_whitespace().map(str::to_owned).collect(),
        exit_code: r.get(9)?,
        outcome: outcome.as_deref().and_then(tally_protocol::Outcome::parse),
        duration_ms: r.get::<_, i64>(11)? as u64,
        os: r.get(12)?,
        arch: r.get(13)?,
        os_version: r.get(14)?,
        ci: r.get(15)?,
        agent: r.get(16)?,
        tty: r.get(17)?,
        container: r.get(23)?,
        wsl: r.get(24)?,
        name: r.get(25)?,
        error,
        deps: parse_map("deps", r.get(21)?)?,
        properties: parse_map("properties", r.get(22)?)?,
    };
    Ok(StoredEvent {
        event,
        client_timestamp: from_micros(r.get(2)?),
        received_at: from_micros(r.get(3)?),
    })
}
