//! The events table's rows: events as an Arrow batch for DuckDB's
//! columnar append, and rows read back into events.

use std::sync::{Arc, LazyLock};

use duckdb::arrow::array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;
use tally_protocol::{Event, StoredEvent};
use tally_rollup::{from_micros, micros};

use crate::StoreError;

/// The events as one Arrow batch in the events table's column order, for
/// DuckDB's columnar append (far cheaper than a row of values at a time);
/// `installs` are the events' install numbers.
pub(super) fn events_batch(
    events: &[&StoredEvent],
    installs: &[u32],
) -> Result<RecordBatch, StoreError> {
    let e = || events.iter().map(|s| &s.event);
    let error = || e().map(|e| e.error.as_ref());
    let text = |f: fn(&Event) -> &str| Arc::new(StringArray::from_iter_values(e().map(f)));
    let maybe_text = |f: fn(&Event) -> Option<&str>| Arc::new(StringArray::from_iter(e().map(f)));
    let flag = |f: fn(&Event) -> Option<bool>| Arc::new(BooleanArray::from_iter(e().map(f)));
    let time = |f: fn(&StoredEvent) -> time::OffsetDateTime| {
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            events.iter().map(|s| micros(f(s))),
        ))
    };
    let uuid = |f: fn(&Event) -> uuid::Uuid| {
        FixedSizeBinaryArray::try_from_iter(e().map(|e| f(e).into_bytes()))
            .map(Arc::new)
            .map_err(arrow_error)
    };
    let deps = e()
        .map(|e| json_map(&e.deps))
        .collect::<Result<Vec<_>, _>>()?;
    let properties = e()
        .map(|e| json_map(&e.properties))
        .collect::<Result<Vec<_>, _>>()?;
    let columns: [ArrayRef; 28] = [
        uuid(|e| e.id)?,
        time(|s| s.event.timestamp),
        time(|s| s.client_timestamp),
        time(|s| s.received_at),
        text(|e| &e.app),
        text(|e| &e.app_version),
        uuid(|e| e.install_id)?,
        text(|e| &e.command),
        Arc::new(StringArray::from_iter_values(
            e().map(|e| e.flags.join(" ")),
        )),
        Arc::new(Int32Array::from_iter_values(e().map(|e| e.exit_code))),
        maybe_text(|e| e.outcome.map(|o| o.as_str())),
        Arc::new(Int64Array::from_iter_values(
            e().map(|e| e.duration_ms.min(i64::MAX as u64) as i64),
        )),
        text(|e| &e.os),
        text(|e| &e.arch),
        maybe_text(|e| e.os_version.as_deref()),
        maybe_text(|e| e.ci.as_deref()),
        maybe_text(|e| e.agent.as_deref()),
        flag(|e| e.tty),
        Arc::new(StringArray::from_iter(error().map(|e| e.map(|e| &e.kind)))),
        Arc::new(StringArray::from_iter(
            error().map(|e| e.map(|e| &e.message)),
        )),
        Arc::new(StringArray::from_iter(
            error().map(|e| e.and_then(|e| e.location.as_deref())),
        )),
        Arc::new(StringArray::from(deps)),
        Arc::new(StringArray::from(properties)),
        flag(|e| e.container),
        flag(|e| e.wsl),
        maybe_text(|e| e.name.as_deref()),
        Arc::new(Int32Array::from_iter_values(
            installs.iter().map(|&n| n as i32),
        )),
        Arc::new(StringArray::from_iter_values(
            e().map(|e| e.source.as_str()),
        )),
    ];
    RecordBatch::try_new(EVENTS_SCHEMA.clone(), columns.into()).map_err(arrow_error)
}

fn arrow_error(e: ArrowError) -> StoreError {
    StoreError::Corrupt(format!("events as arrow: {e}"))
}

/// The events table's columns as Arrow types; UUIDs carry the extension
/// name DuckDB reads as its UUID type.
static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let uuid = |name| {
        Field::new(name, DataType::FixedSizeBinary(16), false).with_metadata(
            std::collections::HashMap::from([(
                "ARROW:extension:name".to_owned(),
                "arrow.uuid".to_owned(),
            )]),
        )
    };
    let time = |name| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        )
    };
    let text = |name, nullable| Field::new(name, DataType::Utf8, nullable);
    let flag = |name| Field::new(name, DataType::Boolean, true);
    Arc::new(Schema::new(vec![
        uuid("id"),
        time("timestamp"),
        time("client_timestamp"),
        time("received_at"),
        text("app", false),
        text("app_version", false),
        uuid("install_id"),
        text("command", false),
        text("flags", false),
        Field::new("exit_code", DataType::Int32, false),
        text("outcome", true),
        Field::new("duration_ms", DataType::Int64, false),
        text("os", false),
        text("arch", false),
        text("os_version", true),
        text("ci", true),
        text("agent", true),
        flag("tty"),
        text("error_kind", true),
        text("error_message", true),
        text("error_location", true),
        text("deps", true),
        text("properties", true),
        flag("container"),
        flag("wsl"),
        text("name", true),
        Field::new("install_no", DataType::Int32, false),
        text("source", false),
    ]))
});

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
        source: {
            let source: Option<String> = r.get(26)?;
            match source.as_deref() {
                None => tally_protocol::Source::Sdk,
                Some(name) => tally_protocol::Source::parse(name)
                    .ok_or_else(|| StoreError::Corrupt(format!("source {name:?}")))?,
            }
        },
    };
    Ok(StoredEvent {
        event,
        client_timestamp: from_micros(r.get(2)?),
        received_at: from_micros(r.get(3)?),
    })
}
