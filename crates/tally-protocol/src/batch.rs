//! A batch request: decoding, per-event rejection and clock-skew correction.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::{Event, Limits, validate};

/// The body of `POST /v1/batch`, as an SDK builds it.
///
/// ```
/// use tally_protocol::Batch;
/// let batch = Batch { sent_at: time::OffsetDateTime::UNIX_EPOCH, events: vec![], dropped: 0 };
/// let json = serde_json::to_string(&batch)?;
/// assert_eq!(json, r#"{"sent_at":"1970-01-01T00:00:00Z","events":[]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// When the client sent the request, by its own clock.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// The events, at most [`Limits::max_events_per_batch`].
    pub events: Vec<Event>,
    /// How many events the client had to throw away (its spool overflowed)
    /// since its last acknowledged batch; left out when zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A batch after decoding: the valid events, skew-corrected, and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBatch {
    /// Valid events, in request order, with timestamps on the server's clock.
    pub events: Vec<Event>,
    /// The events that were not accepted and why.
    pub rejected: Vec<Rejection>,
    /// The client's original timestamp of each valid event (parallel to
    /// `events`): unlike the corrected one it is the same on every retry.
    pub client_timestamps: Vec<OffsetDateTime>,
    /// Events the client reports it dropped before sending (see [`Batch::dropped`]).
    pub dropped: u64,
}

/// Why one event of a batch was not accepted.
///
/// ```
/// let r = tally_protocol::Rejection { index: 2, field: "exit_code".into(), reason: "missing".into() };
/// assert_eq!(serde_json::to_value(&r)?["field"], "exit_code");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Position of the event in the batch's `events` array.
    pub index: usize,
    /// The offending field as a dotted path (e.g. "error.message"), or ""
    /// when the event as a whole is at fault.
    pub field: String,
    /// A sentence saying what is wrong.
    pub reason: String,
}

/// The answer to an accepted batch request.
///
/// ```
/// let r = tally_protocol::IngestResponse { accepted: 2, duplicates: 1, rejected: vec![] };
/// assert_eq!(serde_json::to_string(&r)?, r#"{"accepted":2,"duplicates":1,"rejected":[]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// Events stored by this request.
    pub accepted: usize,
    /// Events already stored by an earlier request (same `id`).
    pub duplicates: usize,
    /// Events not stored, with the reason; retrying them will not help.
    pub rejected: Vec<Rejection>,
}

/// Why a batch was refused as a whole; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is not JSON of the batch's shape.
    #[error("invalid JSON at {path}: {reason}")]
    InvalidJson {
        /// Where in the document, e.g. "sent_at" or "." for the whole.
        path: String,
        /// What the parser said.
        reason: String,
    },
    /// More events than [`Limits::max_events_per_batch`].
    #[error("batch has {count} events, more than the limit of {limit}")]
    TooManyEvents {
        /// Events in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(with = "time::serde::rfc3339")]
    sent_at: OffsetDateTime,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    #[serde(default)]
    dropped: u64,
}

/// Decodes and validates a batch body (already decompressed) sent with an
/// ingest key of `app`, at server time `now`.
///
/// The body must be a JSON batch; each event is then judged on its own, so
/// one bad event does not cost the good ones. When the client clock is off by
/// more than [`Limits::skew_tolerance`], every timestamp is shifted by the
/// difference between `now` and `sent_at`.
///
/// ```
/// use tally_protocol::{decode_batch, BatchError, Limits};
/// let err = decode_batch(b"not json", "mycli", time::OffsetDateTime::now_utc(), &Limits::default());
/// assert!(matches!(err, Err(BatchError::InvalidJson { .. })));
/// ```
pub fn decode_batch(
    body: &[u8],
    app: &str,
    now: OffsetDateTime,
    limits: &Limits,
) -> Result<DecodedBatch, BatchError> {
    let raw: RawBatch = parse(|| serde_json::de::SliceRead::new(body))?;
    if raw.events.len() > limits.max_events_per_batch {
        return Err(BatchError::TooManyEvents {
            count: raw.events.len(),
            limit: limits.max_events_per_batch,
        });
    }

    let skew = now - raw.sent_at;
    let shift = if skew.abs() > limits.skew_tolerance {
        skew
    } else {
        time::Duration::ZERO
    };
    let mut decoded = DecodedBatch {
        events: Vec::with_capacity(raw.events.len()),
        rejected: Vec::new(),
        client_timestamps: Vec::with_capacity(raw.events.len()),
        dropped: raw.dropped,
    };
    for (index, raw_event) in raw.events.into_iter().enumerate() {
        match decode_event(raw_event, app, now, shift, limits) {
            Ok((event, client_timestamp)) => {
                decoded.events.push(event);
                decoded.client_timestamps.push(client_timestamp);
            }
            Err((field, reason)) => decoded.rejected.push(Rejection {
                index,
                field,
                reason,
            }),
        }
    }
    Ok(decoded)
}

fn decode_event(
    raw: &RawValue,
    app: &str,
    now: OffsetDateTime,
    shift: time::Duration,
    limits: &Limits,
) -> Result<(Event, OffsetDateTime), (String, String)> {
    let text = raw.get();
    if text.len() > limits.max_event_bytes {
        return Err((
            String::new(),
            format!(
                "event is {} bytes, more than the limit of {}",
                text.len(),
                limits.max_event_bytes
            ),
        ));
    }
    // Text the batch parsed is valid UTF-8: read as a str, it is not
    // checked again.
    let mut event: Event = parse(|| serde_json::de::StrRead::new(text)).map_err(|e| match e {
        BatchError::InvalidJson { path, reason } => (path, reason),
        other => (String::new(), other.to_string()),
    })?;
    validate::event(&event, app).map_err(|e| (e.field, e.reason))?;

    let client_timestamp = event.timestamp;
    event.timestamp = (event.timestamp + shift).to_offset(time::UtcOffset::UTC);
    if event.timestamp > now + limits.max_future {
        return Err((
            "timestamp".into(),
            format!(
                "is in the future ({} after the server's clock, after correcting the client's clock)",
                event.timestamp - now
            ),
        ));
    }
    if event.timestamp < now - limits.max_age {
        return Err((
            "timestamp".into(),
            format!("is older than {} days", limits.max_age.whole_days()),
        ));
    }
    Ok((event, client_timestamp))
}

/// Parses the JSON `read` gives as a `T`. Tracking the path costs time on
/// every value, so it is only done to say where JSON that failed to parse
/// went wrong.
fn parse<'de, T, R>(read: impl Fn() -> R) -> Result<T, BatchError>
where
    T: Deserialize<'de>,
    R: serde_json::de::Read<'de>,
{
    let mut de = serde_json::Deserializer::new(read());
    if let Ok(value) = T::deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::new(read());
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| invalid_json(&e))?;
    de.end().map_err(|e| BatchError::InvalidJson {
        path: ".".into(),
        reason: message_of(&e),
    })?;
    Ok(value)
}

fn invalid_json(e: &serde_path_to_error::Error<serde_json::Error>) -> BatchError {
    let reason = message_of(e.inner());
    let mut path = e.path().to_string();
    // A missing field is reported by serde at its parent; name the field.
    if let Some(name) = reason
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        path = if path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
    }
    BatchError::InvalidJson { path, reason }
}

/// serde_json's message without its " at line 1 column 7" suffix: clients
/// see one event's text, not the line numbers of our re-parse.
fn message_of(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(at) => full[..at].to_owned(),
        None => full,
    }
}
