//! A batch request: decoding, per-event rejection and clock-skew correction.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::{Event, Limits, Source, clock, validate};

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
    /// Where each valid event was in the request (parallel to `events`),
    /// as [`Rejection::index`] counts.
    pub positions: Vec<usize>,
    /// The events that were not accepted and why.
    pub rejected: Vec<Rejection>,
    /// The client's original timestamp of each valid event (parallel to
    /// `events`), on UTC: unlike the corrected one it is the same on every
    /// retry.
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
    /// More events than [`Limits::max_events_per_batch`]; the decoder stops
    /// reading at the first one beyond the limit, so how many more is not
    /// known.
    #[error("batch has more than the limit of {limit} events")]
    TooManyEvents {
        /// The limit.
        limit: usize,
    },
}

/// A batch's top level as parsed: its events are still text, each decoded
/// on its own so that one bad event does not cost the others.
struct RawBatch<'a> {
    sent_at: OffsetDateTime,
    events: Vec<&'a RawValue>,
    dropped: u64,
}

/// The top-level fields of format v1; any other is refused (the top level
/// is closed, so a body cannot carry padding).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    SentAt,
    Events,
    Dropped,
}

const FIELDS: &[&str] = &["sent_at", "events", "dropped"];

#[derive(Deserialize)]
struct SentAt(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

/// Parses a [`RawBatch`] whose `events` are a [`RawArray`].
#[derive(Clone, Copy)]
struct BatchSeed<'s>(RawArray<'s>);

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = RawBatch<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct("Batch", FIELDS, self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = RawBatch<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a batch object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut sent_at, mut events, mut dropped) = (None, None, None);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::SentAt => once(&mut sent_at, "sent_at", map.next_value::<SentAt>()?.0)?,
                Field::Events => once(&mut events, "events", map.next_value_seed(self.0)?)?,
                Field::Dropped => once(&mut dropped, "dropped", map.next_value()?)?,
            }
        }
        Ok(RawBatch {
            sent_at: sent_at.ok_or_else(|| de::Error::missing_field("sent_at"))?,
            events: events.ok_or_else(|| de::Error::missing_field("events"))?,
            dropped: dropped.unwrap_or(0),
        })
    }
}

/// Fills a field's slot, refusing a second value: a repeated field could
/// hide a second `events` array.
fn once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    match slot.replace(value) {
        Some(_) => Err(E::duplicate_field(name)),
        None => Ok(()),
    }
}

/// A JSON array of at most `limit` elements, each left as text to be
/// decoded on its own: at the element after the limit the parser sets
/// `too_many` and fails, without reading (or allocating for) the rest, so
/// an array of a million zeros costs no more than one of `limit + 1`.
///
/// ```
/// use serde::de::DeserializeSeed;
/// let too_many = std::cell::Cell::new(false);
/// let seed = tally_protocol::RawArray { limit: 2, too_many: &too_many };
/// let two = seed.deserialize(&mut serde_json::Deserializer::from_str("[1, {}]"))?;
/// assert_eq!(two[1].get(), "{}");
/// assert!(seed.deserialize(&mut serde_json::Deserializer::from_str("[1, 2, 3]")).is_err());
/// assert!(too_many.get());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct RawArray<'s> {
    /// The most elements accepted.
    pub limit: usize,
    /// Set when the array holds more than `limit` elements.
    pub too_many: &'s Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for RawArray<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RawArray<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut events = Vec::new();
        while let Some(event) = seq.next_element::<&RawValue>()? {
            if events.len() == self.limit {
                self.too_many.set(true);
                return Err(de::Error::custom(format!(
                    "more than the limit of {} events",
                    self.limit
                )));
            }
            events.push(event);
        }
        Ok(events)
    }
}

/// Decodes and validates a batch body (already decompressed) sent with an
/// ingest key of `app`, at server time `now`.
///
/// The body must be a JSON batch with no top-level field but `sent_at`,
/// `events` and `dropped`, at most [`Limits::max_events_per_batch`] events
/// (the parser stops at the first one past it) and a `sent_at` that is
/// [believable](clock::believable); each event is then judged on its own,
/// so one bad event does not cost the good ones. When the client clock is
/// off by more than [`Limits::skew_tolerance`], every timestamp is shifted
/// by the difference between `now` and `sent_at`. Every time returned is on
/// UTC and believable, so every store can hold it.
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
    decode_from(body, app, Source::Sdk, now, limits)
}

/// [`decode_batch`] for a batch of a gateway's requests, as `tally
/// import-logs` sends them to a server with the admin token: each event
/// must be a gateway's, where an SDK's batch may hold none.
///
/// ```
/// use tally_protocol::{decode_import, Limits};
/// let now = time::macros::datetime!(2026-11-25 12:00 UTC);
/// let body = br#"{"sent_at": "2026-11-25T12:00:00Z", "events": [{"id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01",
///     "timestamp": "2026-11-25T11:59:58Z", "app": "mycli", "app_version": "1.4.2",
///     "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff", "command": "projects.get",
///     "flags": [], "exit_code": 0, "duration_ms": 5, "os": "linux", "arch": "x86_64"}]}"#;
/// let decoded = decode_import(body, "mycli", now, &Limits::default())?;
/// assert_eq!(decoded.rejected[0].field, "source");
/// # Ok::<(), tally_protocol::BatchError>(())
/// ```
pub fn decode_import(
    body: &[u8],
    app: &str,
    now: OffsetDateTime,
    limits: &Limits,
) -> Result<DecodedBatch, BatchError> {
    decode_from(body, app, Source::Gateway, now, limits)
}

/// A batch whose every event must have been seen by `source`.
fn decode_from(
    body: &[u8],
    app: &str,
    source: Source,
    now: OffsetDateTime,
    limits: &Limits,
) -> Result<DecodedBatch, BatchError> {
    let too_many = Cell::new(false);
    let seed = BatchSeed(RawArray {
        limit: limits.max_events_per_batch,
        too_many: &too_many,
    });
    let raw = read_json(seed, body).map_err(|e| {
        if too_many.get() {
            BatchError::TooManyEvents {
                limit: limits.max_events_per_batch,
            }
        } else {
            e
        }
    })?;
    let sent_at = clock::believable(raw.sent_at).map_err(|reason| BatchError::InvalidJson {
        path: "sent_at".into(),
        reason,
    })?;
    // A gateway's times are the gateway's clock, not the importer's.
    let shift = match source {
        Source::Sdk => clock::shift(now, sent_at, limits.skew_tolerance),
        Source::Gateway => time::Duration::ZERO,
    };
    let mut decoded = DecodedBatch {
        events: Vec::with_capacity(raw.events.len()),
        positions: Vec::with_capacity(raw.events.len()),
        rejected: Vec::new(),
        client_timestamps: Vec::with_capacity(raw.events.len()),
        dropped: raw.dropped,
    };
    for (index, raw_event) in raw.events.into_iter().enumerate() {
        match decode_event(raw_event, app, source, now, shift, limits) {
            Ok((event, client_timestamp)) => {
                decoded.events.push(event);
                decoded.positions.push(index);
                decoded.client_timestamps.push(client_timestamp);
            }
            Err((field, reason)) => decoded.rejected.push(Rejection::new(index, field, reason)),
        }
    }
    Ok(decoded)
}

fn decode_event(
    raw: &RawValue,
    app: &str,
    source: Source,
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
    let read = || serde_json::de::StrRead::new(text);
    let event = parse(PhantomData::<Event>, read).map_err(|e| match e {
        BatchError::InvalidJson { path, reason } => (path, reason),
        other => (String::new(), other.to_string()),
    })?;
    if event.source != source {
        let reason = match source {
            // An ingest key ships inside every binary: whoever holds it
            // could otherwise pass their runs off as the API's requests.
            Source::Sdk => {
                "a gateway's requests are imported with `tally import-logs`, not sent with an ingest key"
            }
            Source::Gateway => "an import holds a gateway's requests only",
        };
        return Err(("source".into(), reason.into()));
    }
    admit(event, app, now, shift, limits).map_err(|e| (e.field, e.reason))
}

/// Why one event, already read, cannot be stored: the field at fault (a
/// dotted path, or "" for the whole event) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The field at fault, e.g. "app_version".
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks an event sent with an ingest key of `app` by the rules of
/// [`decode_batch`], and puts its time on the server's clock: shifted by
/// `shift` (see [`clock::shift`]) and kept within `limits`. Returns the
/// event and its time by the client's clock, the one its dedupe key holds.
///
/// For events read from another format (a PostHog or Segment message):
/// they are judged exactly as Tally's own.
///
/// ```
/// use tally_protocol::{admit, Limits};
/// let event: tally_protocol::Event = serde_json::from_str(r#"{"id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01",
///     "timestamp": "2026-11-25T11:59:58Z", "app": "mycli", "app_version": "",
///     "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff", "command": "build",
///     "flags": [], "exit_code": 0, "duration_ms": 5, "os": "linux", "arch": "x86_64"}"#)?;
/// let now = time::macros::datetime!(2026-11-25 12:00 UTC);
/// let refused = admit(event, "mycli", now, time::Duration::ZERO, &Limits::default()).unwrap_err();
/// assert_eq!(refused.field, "app_version");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn admit(
    mut event: Event,
    app: &str,
    now: OffsetDateTime,
    shift: time::Duration,
    limits: &Limits,
) -> Result<(Event, OffsetDateTime), Invalid> {
    validate::event(&event, app)?;
    // Both times are checked before anything is computed from them: the
    // client's is stored as the dedupe key, the corrected one is reported.
    let at = |reason| Invalid {
        field: "timestamp".to_owned(),
        reason,
    };
    let client_timestamp = clock::believable(event.timestamp).map_err(at)?;
    event.timestamp = clock::corrected(
        client_timestamp,
        shift,
        now,
        limits.max_future,
        limits.max_age,
    )
    .map_err(at)?;
    Ok((event, client_timestamp))
}

impl Rejection {
    /// The rejection of the event at `index`, its field and reason cut to
    /// a length an answer may quote.
    ///
    /// ```
    /// let r = tally_protocol::Rejection::new(3, "os".into(), "x".repeat(1000));
    /// assert!(r.reason.len() < 300);
    /// ```
    pub fn new(index: usize, field: String, reason: String) -> Self {
        Self {
            index,
            field: brief(field),
            reason: brief(reason),
        }
    }
}

/// Parses `json` with `seed`, saying where it went wrong when it does: a
/// path such as `batch[3].timestamp` and serde's reason without its line
/// and column (the client sent one event's text, not our offsets).
///
/// ```
/// use std::marker::PhantomData;
/// let e = tally_protocol::read_json(PhantomData::<Vec<u8>>, b"[1, -1]").unwrap_err();
/// assert!(e.to_string().starts_with("invalid JSON at [1]"), "{e}");
/// ```
pub fn read_json<'de, S>(seed: S, json: &'de [u8]) -> Result<S::Value, BatchError>
where
    S: DeserializeSeed<'de> + Copy,
{
    parse(seed, || serde_json::de::SliceRead::new(json))
}

/// Parses the JSON `read` gives with `seed`. Tracking the path costs time
/// on every value, so it is only done to say where JSON that failed to parse
/// went wrong.
fn parse<'de, S, R>(seed: S, read: impl Fn() -> R) -> Result<S::Value, BatchError>
where
    S: DeserializeSeed<'de> + Copy,
    R: serde_json::de::Read<'de>,
{
    let mut de = serde_json::Deserializer::new(read());
    if let Ok(value) = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::new(read());
    let mut track = serde_path_to_error::Track::new();
    let value = seed
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
        .map_err(|e| invalid_json(track.path(), &e))?;
    de.end().map_err(|e| BatchError::InvalidJson {
        path: ".".into(),
        reason: message_of(&e),
    })?;
    Ok(value)
}

fn invalid_json(path: serde_path_to_error::Path, e: &serde_json::Error) -> BatchError {
    let reason = message_of(e);
    let mut path = path.to_string();
    // serde reports a missing or repeated field at its parent (an unknown
    // one at itself); name the field.
    let named = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| reason.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    if let Some(name) = named {
        path = if path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
    }
    BatchError::InvalidJson {
        path: brief(path),
        reason,
    }
}

/// serde_json's message without its " at line 1 column 7" suffix: clients
/// see one event's text, not the line numbers of our re-parse.
fn message_of(e: &serde_json::Error) -> String {
    let full = e.to_string();
    brief(match full.rfind(" at line ") {
        Some(at) => full[..at].to_owned(),
        None => full,
    })
}

/// The longest field path or reason sent back, in bytes.
const MAX_SAID: usize = 200;

/// `said` cut to [`MAX_SAID`] bytes (at a character, with an ellipsis):
/// reasons quote what was sent (serde's "invalid type: string \"...\"",
/// a property's name in a path), and an answer must not echo a body,
/// several times its size once escaped, back to whoever sent it.
fn brief(mut said: String) -> String {
    if said.len() > MAX_SAID {
        let mut end = MAX_SAID;
        while !said.is_char_boundary(end) {
            end -= 1;
        }
        said.truncate(end);
        said.push('…');
        said.shrink_to_fit();
    }
    said
}
