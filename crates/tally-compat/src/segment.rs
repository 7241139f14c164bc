//! Segment's tracking API, as its client libraries send it to
//! `/v1/batch`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/identify`,
//! `/v1/group` and `/v1/alias`.
//!
//! `track` messages are events; `page` and `screen` are stored as custom
//! events of those names (with the page's `name` only: its URL, title and
//! referrer may say who is looking); `identify`, `group` and `alias` carry a
//! person's traits and are accepted and not stored. The write key, which
//! is the app's ingest key, comes from Basic auth or a bearer token (the
//! server's to read) or the body's `writeKey`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::marker::PhantomData;
use tally_protocol::{BatchError, Limits, RawArray, read_json};
use time::OffsetDateTime;

use crate::mapping::{self, Context, Message, Read, When, id_text, invalid, sent_at_of, time_of};
use crate::{Decoded, Target};

/// Segment's limit on one request's body, in bytes: larger batches are
/// refused (its clients split below it).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// The message types Segment defines.
pub const TYPES: &[&str] = &["track", "page", "screen", "identify", "group", "alias"];

/// A Segment request, read as far as it can be without knowing its app.
#[derive(Debug)]
pub struct Request<'a> {
    key: Option<String>,
    sent_at: Option<OffsetDateTime>,
    context: Context,
    kind: Option<&'static str>,
    messages: Vec<&'a RawValue>,
}

/// What is read of a body's top object: every field named, none buffered.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    batch: Option<&'a RawValue>,
    #[serde(rename = "writeKey")]
    write_key: Option<String>,
    #[serde(borrow, rename = "sentAt")]
    sent_at: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient")]
    context: WireContext,
}

/// The part of Segment's `context` that says where a message ran; the
/// rest (IP, locale, page, user agent ...) is never read. A context is
/// description, not worth refusing a message over: a part of another
/// shape reads as absent.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WireContext {
    #[serde(deserialize_with = "lenient")]
    os: Named,
    #[serde(deserialize_with = "lenient")]
    app: Named,
    #[serde(deserialize_with = "lenient")]
    library: Named,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named {
    #[serde(deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    version: Option<String>,
}

/// A `T`, or its default when the value is of another shape.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let raw = <&RawValue>::deserialize(d)?;
    Ok(serde_json::from_str(raw.get()).unwrap_or_default())
}

/// Whether `body` is an object with a `batch` array: Segment's shape,
/// whatever path or auth it came with. Reads the body once, keeping
/// nothing.
///
/// ```
/// assert!(tally_compat::segment::has_batch(br#"{"writeKey": "k", "batch": []}"#));
/// assert!(!tally_compat::segment::has_batch(br#"{"events": []}"#));
/// ```
pub fn has_batch(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Shape<'a> {
        #[serde(borrow)]
        batch: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Shape>(body)
        .ok()
        .and_then(|s| s.batch)
        .is_some_and(|b| b.get().starts_with('['))
}

/// Reads a Segment body (already inflated) sent to `/v1/batch` (`kind`
/// `None`: each message says its type) or to the path of one type (`kind`
/// one of [`TYPES`]: the body is one message of it).
///
/// ```
/// let body = br#"{"batch": [{"type": "track", "event": "x", "anonymousId": "a"}], "writeKey": "tk_1"}"#;
/// let request = tally_compat::segment::read(body, None, &tally_protocol::Limits::default())?;
/// assert_eq!(request.key(), Some("tk_1"));
/// # Ok::<(), tally_protocol::BatchError>(())
/// ```
pub fn read<'a>(
    body: &'a [u8],
    kind: Option<&'static str>,
    limits: &Limits,
) -> Result<Request<'a>, BatchError> {
    let top: Top = read_json(PhantomData, body)?;
    let sent_at = sent_at_of(top.sent_at, "sentAt").map_err(|e| BatchError::InvalidJson {
        path: e.field,
        reason: e.reason,
    })?;
    let messages = match (kind, top.batch) {
        (None, Some(batch)) => {
            let too_many = Cell::new(false);
            let array = RawArray {
                limit: limits.max_events_per_batch,
                too_many: &too_many,
            };
            read_json(array, batch.get().as_bytes()).map_err(|e| {
                if too_many.get() {
                    BatchError::TooManyEvents {
                        limit: limits.max_events_per_batch,
                    }
                } else {
                    prefixed("batch", e)
                }
            })?
        }
        (None, None) => {
            return Err(BatchError::InvalidJson {
                path: "batch".into(),
                reason: "missing field `batch`: a Segment batch holds its messages in `batch`"
                    .into(),
            });
        }
        (Some(_), _) => vec![read_json(PhantomData::<&RawValue>, body)?],
    };
    Ok(Request {
        key: top.write_key,
        sent_at,
        context: context_of(top.context),
        kind,
        messages,
    })
}

fn prefixed(at: &str, e: BatchError) -> BatchError {
    match e {
        BatchError::InvalidJson { path, reason } => BatchError::InvalidJson {
            path: format!("{at}{path}"),
            reason,
        },
        other => other,
    }
}

impl<'a> Request<'a> {
    /// The write key the body sent, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The request's messages as Tally events of `target`'s app, at server
    /// time `now`; see `docs/compat.md` for the mapping.
    pub fn decode(self, target: &Target, now: OffsetDateTime, limits: &Limits) -> Decoded {
        let (kind, context) = (self.kind, &self.context);
        mapping::decode_all(self.messages, self.sent_at, target, now, limits, |text| {
            read_message(text, kind, context)
        })
    }
}

/// One message as Segment's clients send it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    event: Option<String>,
    name: Option<String>,
    user_id: Option<Value>,
    anonymous_id: Option<Value>,
    message_id: Option<String>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    original_timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    sent_at: Option<&'a RawValue>,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default, deserialize_with = "lenient")]
    context: WireContext,
}

fn read_message(text: &str, kind: Option<&'static str>, batch: &Context) -> Read {
    let wire: Wire = mapping::read_message(text)?;
    let kind = match kind {
        Some(kind) => kind.to_owned(),
        None => wire.kind.ok_or_else(|| {
            invalid(
                "type",
                "is missing: say which message this is (track, page ...)",
            )
        })?,
    };
    let (name, properties) = match kind.as_str() {
        "track" => (
            wire.event
                .ok_or_else(|| invalid("event", "is missing: a track message names its event"))?,
            wire.properties,
        ),
        "page" | "screen" => {
            let mut only_name = Map::new();
            if let Some(name) = wire.name {
                only_name.insert("name".into(), Value::String(name));
            }
            (kind, only_name)
        }
        "identify" | "group" | "alias" => return Ok(None),
        _ => {
            return Err(invalid(
                "type",
                format!("is {kind:?}, not one of {}", TYPES.join(", ")),
            ));
        }
    };
    let distinct_id = id_text(wire.anonymous_id.as_ref())
        .or_else(|| id_text(wire.user_id.as_ref()))
        .ok_or_else(|| {
            invalid(
                "anonymousId",
                "is missing: a Segment message needs an anonymousId or a userId",
            )
        })?;
    // Segment's rule: the time the client says it happened, on the
    // client's clock, corrected by how far that clock is off at `sentAt`.
    let time = match time_of(wire.original_timestamp, "originalTimestamp")? {
        Some(t) => Some(t),
        None => time_of(wire.timestamp, "timestamp")?,
    };
    let mut context = context_of(wire.context);
    context.os = context.os.or_else(|| batch.os.clone());
    context.os_version = context.os_version.or_else(|| batch.os_version.clone());
    context.app_version = context.app_version.or_else(|| batch.app_version.clone());
    context.library = context.library.or_else(|| batch.library.clone());
    Ok(Some(Message {
        name,
        foreign_id: wire.message_id,
        distinct_id,
        time: time.map(When::Client),
        sent_at: sent_at_of(wire.sent_at, "sentAt")?,
        properties,
        context,
    }))
}

/// What Segment's `context` says of the platform.
fn context_of(context: WireContext) -> Context {
    Context {
        os: context.os.name,
        os_version: context.os.version,
        app_version: context.app.version,
        library: context.library.name,
    }
}
