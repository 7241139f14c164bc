//! A batch of events as each destination's request: the URL, the headers
//! and the body, with only the fields the destination may be sent.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tally_protocol::{Event, StoredEvent};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::config::{Field, Kind, Secret};

/// One HTTP request to a destination.
#[derive(Debug)]
pub(crate) struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What encoding needs of a destination.
pub(crate) struct Target<'a> {
    pub kind: Kind,
    pub url: &'a str,
    pub secret: &'a Secret,
    pub fields: &'a [Field],
    /// The event name an invocation is sent as (the app's invocation
    /// event, as the compatible ingest reads it).
    pub invocation_event: &'a str,
}

/// Namespace of webhook message ids (a UUIDv5 namespace of Tally's own).
const WEBHOOK_IDS: Uuid = Uuid::from_u128(0x5b1e_0c3f_9a7d_4e21_8f60_2d4b_91c7_e803);

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The request carrying `events` to `target`, sent at `now`.
pub(crate) fn request(target: &Target, events: &[StoredEvent], now: OffsetDateTime) -> Request {
    let base = target.url.trim_end_matches('/');
    match (target.kind, target.secret) {
        (Kind::PostHog, Secret::Key(key)) => posthog(target, base, key, events, now),
        (Kind::Segment, Secret::Key(key)) => segment(target, base, key, events, now),
        (Kind::Webhook, Secret::Signing(key)) => webhook(target, key, events, now),
        (kind, _) => unreachable!("a {kind:?} destination's secret is checked at start"),
    }
}

/// The name an event is sent under to PostHog and Segment: its own, or
/// the app's invocation event.
fn name(target: &Target, e: &Event) -> String {
    e.name
        .clone()
        .unwrap_or_else(|| target.invocation_event.to_owned())
}

fn posthog(
    target: &Target,
    base: &str,
    key: &str,
    events: &[StoredEvent],
    now: OffsetDateTime,
) -> Request {
    let batch: Vec<Value> = events
        .iter()
        .map(|s| {
            let mut properties = fields(&s.event, target.fields);
            properties.insert("$lib".into(), json!("tally"));
            // The request comes from the server, not the user: its address
            // says nothing of where the user is.
            properties.insert("$geoip_disable".into(), json!(true));
            // PostHog gives `$` names meanings of its own (`$identify`
            // merges people, `$exception` files errors): a client's custom
            // event must not take them on.
            let name = name(target, &s.event);
            let name = match name.strip_prefix('$') {
                Some(rest) => format!("_{rest}"),
                None => name,
            };
            json!({
                "event": name,
                "distinct_id": s.event.install_id,
                "uuid": s.event.id,
                "timestamp": rfc3339(s.event.timestamp),
                "properties": properties,
            })
        })
        .collect();
    Request {
        url: format!("{base}/batch/"),
        headers: vec![("Content-Type", "application/json".into())],
        body: json!({"api_key": key, "batch": batch, "sent_at": rfc3339(now)})
            .to_string()
            .into_bytes(),
    }
}

fn segment(
    target: &Target,
    base: &str,
    key: &str,
    events: &[StoredEvent],
    now: OffsetDateTime,
) -> Request {
    let batch: Vec<Value> = events
        .iter()
        .map(|s| {
            json!({
                "type": "track",
                "event": name(target, &s.event),
                "anonymousId": s.event.install_id,
                // Segment erases and suppresses by user id only: the
                // install's id is both.
                "userId": s.event.install_id,
                "messageId": s.event.id,
                "timestamp": rfc3339(s.event.timestamp),
                "properties": fields(&s.event, target.fields),
                "context": {"library": {"name": "tally", "version": env!("CARGO_PKG_VERSION")}},
            })
        })
        .collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    Request {
        url: format!("{base}/v1/batch"),
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("Authorization", format!("Basic {basic}")),
        ],
        body: json!({"batch": batch, "sentAt": rfc3339(now)})
            .to_string()
            .into_bytes(),
    }
}

fn webhook(target: &Target, key: &[u8], events: &[StoredEvent], now: OffsetDateTime) -> Request {
    let data: Vec<Value> = events
        .iter()
        .map(|s| {
            let mut event = fields(&s.event, target.fields);
            event.insert("id".into(), json!(s.event.id));
            event.insert("app".into(), json!(s.event.app));
            event.insert("name".into(), json!(s.event.name));
            event.insert("install_id".into(), json!(s.event.install_id));
            event.insert("timestamp".into(), json!(rfc3339(s.event.timestamp)));
            Value::Object(event)
        })
        .collect();
    let body = json!({"type": "events", "timestamp": rfc3339(now), "data": data})
        .to_string()
        .into_bytes();
    // The same batch has the same id on every attempt, so that a receiver
    // can drop a delivery it has had.
    let ids: Vec<u8> = events
        .iter()
        .flat_map(|s| s.event.id.into_bytes())
        .collect();
    let id = format!("msg_{}", Uuid::new_v5(&WEBHOOK_IDS, &ids).simple());
    signed(target.url, key, &id, now, body)
}

/// A Standard Webhooks request: `webhook-signature` is `v1,` and the
/// base64 of the HMAC-SHA256, keyed with the secret, of
/// `{id}.{timestamp}.{body}`.
pub(crate) fn signed(
    url: &str,
    key: &[u8],
    id: &str,
    now: OffsetDateTime,
    body: Vec<u8>,
) -> Request {
    let timestamp = now.unix_timestamp().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Request {
        url: url.to_owned(),
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", format!("v1,{signature}")),
        ],
        body,
    }
}

/// The fields of `e` that `allowed` lists, by their export names.
fn fields(e: &Event, allowed: &[Field]) -> Map<String, Value> {
    let mut out = Map::new();
    for field in allowed {
        let (name, value) = match field {
            Field::AppVersion => ("app_version", json!(e.app_version)),
            Field::Command => ("command", json!(e.command)),
            Field::Flags => ("flags", json!(e.flags)),
            Field::ExitCode => ("exit_code", json!(e.exit_code)),
            Field::Outcome => ("outcome", json!(tally_rollup::outcome_of(e).as_str())),
            Field::DurationMs => ("duration_ms", json!(e.duration_ms)),
            Field::Os => ("os", json!(e.os)),
            Field::OsVersion => ("os_version", json!(e.os_version)),
            Field::Arch => ("arch", json!(e.arch)),
            Field::Ci => ("ci", json!(e.ci)),
            Field::Agent => ("agent", json!(e.agent)),
            Field::Tty => ("tty", json!(e.tty)),
            Field::Container => ("container", json!(e.container)),
            Field::Wsl => ("wsl", json!(e.wsl)),
            Field::ErrorKind => ("error_kind", json!(e.error.as_ref().map(|x| &x.kind))),
            Field::ErrorMessage => ("error_message", json!(e.error.as_ref().map(|x| &x.message))),
            Field::ErrorLocation => (
                "error_location",
                json!(e.error.as_ref().and_then(|x| x.location.as_ref())),
            ),
            Field::Deps => ("deps", json!(e.deps)),
            Field::Properties => ("properties", json!(e.properties)),
            Field::Source => ("source", json!(e.source.as_str())),
        };
        if !value.is_null() {
            out.insert(name.into(), value);
        }
    }
    out
}
