//! Inserts into ClickHouse, exactly once across collectors, and events read
//! back.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};
use tally_protocol::{ErrorInfo, Event, Outcome, Source, StoredEvent};
use tally_rollup::{Histogram, Kind, day_of, day_start, env_of, from_micros, keys_of, micros};

use super::http::{Http, quote};
use super::installs::{Installs, Numbering, install_hash};
use crate::{Staged, StoreError, Writer};

/// Marks a missing dimension in `rk` (protocol strings never hold NUL).
pub(super) const NONE: &str = "\0";

/// Ids are looked up this many at a time: each lookup reads the id column
/// of the batch's days once, so fewer, larger lookups cost less.
const LOOKUP_CHUNK: usize = 20_000;

pub(super) struct ClickHouseWriter {
    pub(super) http: Http,
    pub(super) installs: Installs,
    pub(super) numbering: Numbering,
}

impl ClickHouseWriter {
    /// Which ids of `events` ClickHouse holds already. Every batch asks,
    /// since other collectors write to the same tables.
    fn stored(&self, events: &[&StoredEvent]) -> Result<HashSet<uuid::Uuid>, StoreError> {
        let mut stored = HashSet::new();
        for chunk in events.chunks(LOOKUP_CHUNK) {
            let apps: BTreeSet<&str> = chunk.iter().map(|e| e.event.app.as_str()).collect();
            let days: BTreeSet<i32> = chunk
                .iter()
                .map(|e| day_of(micros(e.client_timestamp)))
                .collect();
            let list = |items: Vec<String>| items.join(",");
            let sql = format!(
                "SELECT toString(id) AS found FROM events WHERE app IN ({}) AND cday IN ({}) AND id IN ({})",
                list(apps.iter().map(|a| quote(a)).collect()),
                list(days.iter().map(|d| format!("toDate({d})")).collect()),
                list(chunk.iter().map(|e| format!("'{}'", e.event.id)).collect()),
            );
            self.http.each_row(&sql, |row: Value| {
                if let Some(id) = row["found"].as_str().and_then(|s| s.parse().ok()) {
                    stored.insert(id);
                }
                Ok(())
            })?;
        }
        Ok(stored)
    }
}

impl Writer for ClickHouseWriter {
    fn insert(&mut self, staged: &mut Staged) -> Result<Vec<bool>, StoreError> {
        let events = staged.events();
        let mut in_batch = HashSet::new();
        let firsts: Vec<bool> = events.iter().map(|e| in_batch.insert(e.event.id)).collect();
        let stored = self.stored(&marked(events, &firsts))?;
        let new: Vec<bool> = events
            .iter()
            .zip(&firsts)
            .map(|(e, first)| *first && !stored.contains(&e.event.id))
            .collect();
        let inserted = marked(events, &new);
        let numbered = self.installs == Installs::Numbers;
        if numbered {
            self.numbering.prepare(&self.http, &inserted)?;
        }
        let mut lines = Vec::new();
        for event in inserted {
            let mut row = to_row(event);
            if numbered {
                let number = self
                    .numbering
                    .number(&event.event.app, event.event.install_id);
                row["install_number"] = json!(number.ok_or_else(|| {
                    StoreError::Corrupt(format!("no number for install {}", event.event.install_id))
                })?);
            }
            serde_json::to_writer(&mut lines, &row)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            lines.push(b'\n');
        }
        if !lines.is_empty() {
            // One INSERT, one block: ClickHouse stores all of it or none,
            // and the rollups view counts it in the same statement.
            self.http.insert("events", &lines)?;
        }
        staged.take();
        Ok(new)
    }
}

/// The events whose mark is set.
fn marked<'a>(events: &'a [StoredEvent], marks: &[bool]) -> Vec<&'a StoredEvent> {
    events
        .iter()
        .zip(marks)
        .filter_map(|(e, &mark)| mark.then_some(e))
        .collect()
}

fn date(day: i32) -> String {
    from_micros(day_start(day)).date().to_string()
}

fn to_row(stored: &StoredEvent) -> Value {
    let e = &stored.event;
    let keys = keys_of(e);
    let column =
        |i: usize| -> Vec<&str> { keys.iter().map(|(_, d)| d[i].unwrap_or(NONE)).collect() };
    let error = e.error.as_ref();
    let mut row = json!({
        "id": e.id,
        "timestamp_us": micros(e.timestamp),
        "client_timestamp_us": micros(stored.client_timestamp),
        "received_at_us": micros(stored.received_at),
        "cday": date(day_of(micros(stored.client_timestamp))),
        "day": date(day_of(micros(e.timestamp))),
        "app": e.app,
        "app_version": e.app_version,
        "install_id": e.install_id,
        "install_hash": install_hash(e.install_id),
        "command": e.command,
        "flags": e.flags,
        "exit_code": e.exit_code,
        "outcome": e.outcome.map(Outcome::as_str),
        "duration_ms": e.duration_ms,
        "os": e.os,
        "arch": e.arch,
        "os_version": e.os_version,
        "ci": e.ci,
        "agent": e.agent,
        "tty": e.tty.map(u8::from),
        "error_kind": error.map(|x| &x.kind),
        "error_message": error.map(|x| &x.message),
        "error_location": error.and_then(|x| x.location.as_ref()),
        "deps": map_json(&e.deps),
        "properties": map_json(&e.properties),
        "container": e.container.map(u8::from),
        "wsl": e.wsl.map(u8::from),
        "name": e.name,
        "env": env_of(e).as_str(),
        "crashed": u8::from(e.outcome == Some(Outcome::Crash)),
        "duration_bucket": Histogram::bucket(e.duration_ms),
        "rk.kind": keys.iter().map(|(k, _)| stored_kind(*k, e.source)).collect::<Vec<_>>(),
        "rk.d1": column(0),
        "rk.d2": column(1),
        "rk.d3": column(2),
        "rk.d4": column(3),
    });
    // The column's default is the SDK: only a gateway's events name it.
    if e.source != Source::Sdk {
        row["source"] = json!(e.source.as_str());
    }
    row
}

/// The `kind` of a rollup row as stored: the kind's name for the SDK's
/// runs, behind `gateway.` for a gateway's requests. The source is part of
/// the kind so that the rollup table's sort key, by which ClickHouse
/// merges rows, tells the sources apart without a new table or view.
pub(super) fn stored_kind(kind: Kind, source: Source) -> String {
    match source {
        Source::Sdk => kind.as_str().to_owned(),
        Source::Gateway => format!("gateway.{}", kind.as_str()),
    }
}

/// A map stored as JSON text, empty when the map is.
fn map_json<V: serde::Serialize>(map: &std::collections::BTreeMap<String, V>) -> String {
    if map.is_empty() {
        String::new()
    } else {
        serde_json::to_string(map).unwrap_or_default()
    }
}

/// A map stored by [`map_json`], read back.
fn parse_map<V: serde::de::DeserializeOwned>(
    row: &Value,
    column: &str,
) -> Result<std::collections::BTreeMap<String, V>, StoreError> {
    match row[column].as_str() {
        None | Some("") => Ok(Default::default()),
        Some(s) => serde_json::from_str(s)
            .map_err(|_| StoreError::Corrupt(format!("ClickHouse event row: {column}"))),
    }
}

/// The columns [`from_row`] reads, for SELECTs.
pub(super) const EVENT_COLUMNS: &str = "toString(id) AS id, timestamp_us, client_timestamp_us, \
    received_at_us, app, app_version, toString(install_id) AS install_id, command, \
    flags, exit_code, outcome, duration_ms, os, arch, os_version, ci, agent, tty, error_kind, \
    error_message, error_location, deps, properties, container, wsl, name, source";

/// An event read back from a row of [`EVENT_COLUMNS`].
pub(super) fn from_row(row: &Value) -> Result<StoredEvent, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("ClickHouse event row: {what}"));
    let text = |k: &str| row[k].as_str().map(str::to_owned);
    let req = |k: &str| text(k).ok_or_else(|| corrupt(k));
    let int = |k: &str| row[k].as_i64().ok_or_else(|| corrupt(k));
    let flag = |k: &str| row[k].as_u64().map(|v| v != 0);
    let uuid =
        |k: &str| -> Result<uuid::Uuid, StoreError> { req(k)?.parse().map_err(|_| corrupt(k)) };
    let event = Event {
        id: uuid("id")?,
        timestamp: from_micros(int("timestamp_us")?),
        app: req("app")?,
        app_version: req("app_version")?,
        install_id: uuid("install_id")?,
        command: req("command")?,
        flags: serde_json::from_value(row["flags"].clone()).map_err(|_| corrupt("flags"))?,
        exit_code: int("exit_code")? as i32,
        outcome: text("outcome").as_deref().and_then(Outcome::parse),
        duration_ms: int("duration_ms")? as u64,
        os: req("os")?,
        arch: req("arch")?,
        os_version: text("os_version"),
        ci: text("ci"),
        agent: text("agent"),
        tty: flag("tty"),
        container: flag("container"),
        wsl: flag("wsl"),
        name: text("name"),
        error: text("error_kind").map(|kind| ErrorInfo {
            kind,
            message: text("error_message").unwrap_or_default(),
            location: text("error_location"),
        }),
        deps: parse_map(row, "deps")?,
        properties: parse_map(row, "properties")?,
        source: match row["source"].as_str() {
            None | Some("") => Source::Sdk,
            Some(name) => Source::parse(name).ok_or_else(|| corrupt("source"))?,
        },
    };
    Ok(StoredEvent {
        event,
        client_timestamp: from_micros(int("client_timestamp_us")?),
        received_at: from_micros(int("received_at_us")?),
    })
}
