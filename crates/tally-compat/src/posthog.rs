//! PostHog's capture API (v0), as its client libraries send it to
//! `/batch`, `/capture`, `/e`, `/i/v0/e` and `/track`.
//!
//! A body is an array of events, an object with the events in `batch`
//! (`{"api_key": ..., "batch": [...], "sent_at": ...}`, what posthog-python
//! and posthog-node send), or one event. The project token, which is the
//! app's ingest key, comes from the body's `api_key`, `token` or `$token`,
//! or failing those from the first event's (its `properties` too).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::marker::PhantomData;
use tally_protocol::{BatchError, Limits, RawArray, read_json};
use time::OffsetDateTime;

use crate::mapping::{self, Message, Read, When, id_text, invalid, sent_at_of, time_of};
use crate::{Decoded, Target};

/// A PostHog request, read as far as it can be without knowing its app.
#[derive(Debug)]
pub struct Request<'a> {
    key: Option<String>,
    sent_at: Option<OffsetDateTime>,
    events: Vec<&'a RawValue>,
}

/// Events PostHog uses to set a person's properties (names, e-mails):
/// never CLI usage, so accepted and not stored.
const PERSON_EVENTS: &[&str] = &[
    "$identify",
    "$set",
    "$set_once",
    "$create_alias",
    "$merge_dangerously",
    "$groupidentify",
];

/// What is read of a body's top object, or of its first event when the
/// body has no token: every field named, none buffered (a `flatten` would
/// keep every field it does not know, in memory, for anyone to fill).
#[derive(Deserialize)]
struct Head<'a> {
    api_key: Option<String>,
    token: Option<String>,
    #[serde(rename = "$token")]
    dollar_token: Option<String>,
    #[serde(borrow)]
    batch: Option<&'a RawValue>,
    #[serde(borrow)]
    sent_at: Option<&'a RawValue>,
    #[serde(borrow, rename = "sentAt")]
    sent_at_camel: Option<&'a RawValue>,
    properties: Option<PropertyKeys>,
}

impl Head<'_> {
    /// The token of a body: its own, or (an event's) its properties'.
    fn key(self) -> Option<String> {
        let properties = self.properties.and_then(|p| p.token.or(p.dollar_token));
        self.api_key
            .or(self.token)
            .or(self.dollar_token)
            .or(properties)
    }
}

#[derive(Deserialize)]
struct PropertyKeys {
    token: Option<String>,
    #[serde(rename = "$token")]
    dollar_token: Option<String>,
}

/// Reads a PostHog body (already inflated): its token, when it sent one,
/// and its events, at most [`Limits::max_events_per_batch`] of them (the
/// parser stops at the first beyond).
///
/// ```
/// let body = br#"[{"event": "x", "distinct_id": "u", "api_key": "tk_1"}]"#;
/// let request = tally_compat::posthog::read(body, &tally_protocol::Limits::default())?;
/// assert_eq!(request.key(), Some("tk_1"));
/// assert!(tally_compat::posthog::read(b"42", &Default::default()).is_err());
/// # Ok::<(), tally_protocol::BatchError>(())
/// ```
pub fn read<'a>(body: &'a [u8], limits: &Limits) -> Result<Request<'a>, BatchError> {
    let too_many = Cell::new(false);
    let array = RawArray {
        limit: limits.max_events_per_batch,
        too_many: &too_many,
    };
    let many = |json: &'a [u8]| {
        read_json(array, json).map_err(|e| {
            if too_many.get() {
                BatchError::TooManyEvents {
                    limit: limits.max_events_per_batch,
                }
            } else {
                e
            }
        })
    };
    let (mut key, sent_at, events) = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => (None, None, many(body)?),
        Some(b'{') => {
            let top: Head = read_json(PhantomData, body)?;
            let sent_at =
                sent_at_of(top.sent_at.or(top.sent_at_camel), "sent_at").map_err(|e| {
                    BatchError::InvalidJson {
                        path: e.field,
                        reason: e.reason,
                    }
                })?;
            let events = match top.batch {
                Some(batch) => many(batch.get().as_bytes())?,
                None => vec![read_json(PhantomData::<&RawValue>, body)?],
            };
            (top.key(), sent_at, events)
        }
        _ => {
            return Err(BatchError::InvalidJson {
                path: ".".into(),
                reason: "expected an event, an array of events or an object with a batch".into(),
            });
        }
    };
    if key.is_none()
        && let Some(first) = events.first()
        && first.get().len() <= limits.max_event_bytes
        && let Ok(event) = serde_json::from_str::<Head>(first.get())
    {
        key = event.key();
    }
    Ok(Request {
        key,
        sent_at,
        events,
    })
}

impl<'a> Request<'a> {
    /// The project token the request sent, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Each event's `uuid` as sent (`None` where it has none, or is no
    /// string), in order: PostHog's newer capture API answers per uuid.
    pub fn uuids(&self) -> Vec<Option<String>> {
        #[derive(Deserialize)]
        struct Uuid {
            uuid: Option<String>,
        }
        self.events
            .iter()
            .map(|raw| {
                serde_json::from_str::<Uuid>(raw.get())
                    .ok()
                    .and_then(|u| u.uuid)
            })
            .collect()
    }

    /// How many events the request holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the request holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The request's events as Tally events of `target`'s app, at server
    /// time `now`; see `docs/compat.md` for the mapping.
    pub fn decode(self, target: &Target, now: OffsetDateTime, limits: &Limits) -> Decoded {
        mapping::decode_all(self.events, self.sent_at, target, now, limits, |text| {
            read_event(text, now)
        })
    }
}

/// One event as PostHog's clients send it.
#[derive(Deserialize)]
struct Wire<'a> {
    event: String,
    distinct_id: Option<Value>,
    #[serde(rename = "$distinct_id")]
    dollar_distinct_id: Option<Value>,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    uuid: Option<String>,
    /// Milliseconds between the event and the request (posthog-js).
    offset: Option<i64>,
}

fn read_event(text: &str, now: OffsetDateTime) -> Read {
    let wire: Wire = mapping::read_message(text)?;
    if PERSON_EVENTS.contains(&wire.event.as_str()) {
        return Ok(None);
    }
    let mut properties = wire.properties;
    let distinct_id = id_text(wire.distinct_id.as_ref())
        .or_else(|| id_text(wire.dollar_distinct_id.as_ref()))
        .or_else(|| id_text(properties.get("distinct_id")))
        .ok_or_else(|| {
            invalid(
                "distinct_id",
                "is missing: a PostHog event needs a distinct_id",
            )
        })?;
    let time = match time_of(wire.timestamp, "timestamp")? {
        Some(t) => Some(When::Client(t)),
        None => wire
            .offset
            .filter(|ms| (0..=365 * 86_400_000).contains(ms))
            .map(|ms| When::Server(now - time::Duration::milliseconds(ms))),
    };
    for secret in ["token", "$token", "api_key"] {
        properties.remove(secret);
    }
    Ok(Some(Message {
        name: wire.event,
        foreign_id: wire.uuid,
        distinct_id,
        time,
        sent_at: None,
        properties,
        context: mapping::Context::default(),
    }))
}
