//! What both formats share: a message's parts, and how they become a
//! Tally event.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;
use tally_protocol::{
    DecodedBatch, ErrorInfo, Event, Invalid, Limits, Outcome, PropertyValue, Rejection, admit,
    clock, flag_name, platform, strings,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Decoded, Target};

/// One foreign message, as far as Tally reads it.
#[derive(Debug, Default)]
pub(crate) struct Message {
    /// The event's name.
    pub name: String,
    /// The sender's id of the message (`uuid`, `messageId`), if any.
    pub foreign_id: Option<String>,
    /// Who sent it (`distinct_id`, `anonymousId`, `userId`): readers
    /// refuse a message without one.
    pub distinct_id: String,
    /// When it happened, by the client's clock.
    pub time: Option<OffsetDateTime>,
    /// When the client sent it, if the message says so itself.
    pub sent_at: Option<OffsetDateTime>,
    pub properties: Map<String, Value>,
    /// What the message says of where it ran, outside its properties.
    pub context: Context,
}

/// A client's description of its platform, outside the properties.
#[derive(Debug, Default, Clone)]
pub(crate) struct Context {
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub library: Option<String>,
}

/// How one raw message reads: a message, one ignored by design, or why not.
pub(crate) type Read = Result<Option<Message>, Invalid>;

/// Maps each of `raws` with `read`, then judges it as Tally's own events
/// are, with times shifted by the client's skew at `sent_at`.
pub(crate) fn decode_all<'a>(
    raws: impl IntoIterator<Item = &'a RawValue>,
    sent_at: Option<OffsetDateTime>,
    target: &Target,
    now: OffsetDateTime,
    limits: &Limits,
    read: impl Fn(&'a str) -> Read,
) -> Decoded {
    let mut decoded = Decoded {
        batch: DecodedBatch {
            events: Vec::new(),
            rejected: Vec::new(),
            client_timestamps: Vec::new(),
            dropped: 0,
        },
        ignored: 0,
    };
    for (index, raw) in raws.into_iter().enumerate() {
        let text = raw.get();
        let result = if text.len() > limits.max_event_bytes {
            Err(invalid(
                "",
                format!(
                    "event is {} bytes, more than the limit of {}",
                    text.len(),
                    limits.max_event_bytes
                ),
            ))
        } else {
            read(text).and_then(|message| {
                message
                    .map(|mut m| {
                        // Without a time of its own, an event happened as
                        // its client sent it, by the same (skewed) clock.
                        m.sent_at = m.sent_at.or(sent_at);
                        let shift = skew(m.sent_at, now, limits);
                        let event = to_event(m, text, target, now);
                        admit(event, target.app, now, shift, limits)
                    })
                    .transpose()
            })
        };
        match result {
            Ok(Some((event, client_timestamp))) => {
                decoded.batch.events.push(event);
                decoded.batch.client_timestamps.push(client_timestamp);
            }
            Ok(None) => decoded.ignored += 1,
            Err(e) => decoded
                .batch
                .rejected
                .push(Rejection::new(index, e.field, e.reason)),
        }
    }
    decoded
}

/// How far the client's clock is off, by the time it says it sent the
/// request: none when it does not say, or says something unbelievable.
fn skew(sent_at: Option<OffsetDateTime>, now: OffsetDateTime, limits: &Limits) -> time::Duration {
    sent_at
        .and_then(|t| clock::believable(t).ok())
        .map_or(time::Duration::ZERO, |t| {
            clock::shift(now, t, limits.skew_tolerance)
        })
}

/// One message's text as the wire type `T`, or why not (the path in the
/// message, serde's reason).
pub(crate) fn read_message<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, Invalid> {
    tally_protocol::read_json(std::marker::PhantomData, text.as_bytes()).map_err(|e| match e {
        tally_protocol::BatchError::InvalidJson { path, reason } => Invalid {
            field: path,
            reason,
        },
        other => invalid("", other.to_string()),
    })
}

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The properties an invocation's fields are read from; none of them is
/// also kept among the event's own properties.
const INVOCATION_KEYS: &[&str] = &[
    "command",
    "flags",
    "exit_code",
    "duration_ms",
    "outcome",
    "error",
    "error_kind",
    "error_message",
    "app_version",
    "$app_version",
    "version",
    "os",
    "$os",
    "os_version",
    "$os_version",
    "arch",
    "$arch",
    "ci",
    "agent",
    "tty",
    "container",
    "wsl",
    "deps",
    "distinct_id",
    "$lib",
    // Secrets, whatever sent them.
    "token",
    "api_key",
];

/// The Tally event `message` (whose text is `raw`) stands for; `admit`
/// judges it next.
fn to_event(mut m: Message, raw: &str, target: &Target, now: OffsetDateTime) -> Event {
    let p = &m.properties;
    let text = |p: &Map<String, Value>, keys: &[&str]| {
        keys.iter().find_map(|k| match p.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let boolean = |p: &Map<String, Value>, key: &str| p.get(key).and_then(Value::as_bool);
    let app_version = text(p, &["app_version", "$app_version", "version"])
        .or(m.context.app_version.take())
        .unwrap_or_else(|| "unknown".into());
    let os = text(p, &["$os", "os"]).or(m.context.os.take());
    let os_version = text(p, &["$os_version", "os_version"]).or(m.context.os_version.take());
    // posthog-python says "12" and, apart, "Debian GNU/Linux"; posthog-rs
    // says "Debian" for the OS: one OS, "linux", and one version, as
    // Tally's SDK gives it ("Debian 12").
    let distro = text(p, &["$os_distro"]).or_else(|| {
        os.as_ref()
            .filter(|o| platform::is_linux_distribution(&o.trim().to_ascii_lowercase()))
            .cloned()
    });
    let os_version = match (distro, os_version) {
        (Some(distro), Some(version)) => Some(format!("{distro} {version}")),
        (_, version) => version,
    };
    let arch = text(p, &["arch", "$arch"]);
    let ci = match p.get("ci") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Bool(true)) => Some("unknown".into()),
        _ => None,
    };
    let flags = match p.get("flags") {
        Some(Value::Array(flags)) => flags
            .iter()
            .filter_map(Value::as_str)
            .map(|f| flag_name(f).to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let library = text(p, &["$lib"]).or(m.context.library.take());
    let invocation = m.name == target.invocation_event;
    let event = Event {
        id: event_id(target.app, m.foreign_id.as_deref(), raw),
        timestamp: m.time.or(m.sent_at).unwrap_or(now),
        app: target.app.to_owned(),
        app_version,
        install_id: install_id(target.salt, &m.distinct_id),
        name: (!invocation).then(|| m.name.clone()),
        command: text(p, &["command"]).unwrap_or_default(),
        flags,
        exit_code: p
            .get("exit_code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(0),
        outcome: p
            .get("outcome")
            .and_then(Value::as_str)
            .and_then(Outcome::parse),
        duration_ms: p
            .get("duration_ms")
            .and_then(Value::as_f64)
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map_or(0, |d| d.round() as u64),
        os: os.map_or_else(|| "unknown".into(), |o| platform::os(&o)),
        arch: arch.map_or_else(|| "unknown".into(), |a| platform::arch(&a)),
        os_version,
        ci,
        agent: text(p, &["agent"]),
        tty: boolean(p, "tty"),
        container: boolean(p, "container"),
        wsl: boolean(p, "wsl"),
        error: error_of(p),
        deps: match p.get("deps") {
            Some(Value::Object(deps)) => deps
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .take(strings::MAP_ENTRIES)
                .collect(),
            _ => BTreeMap::new(),
        },
        properties: BTreeMap::new(),
    };
    Event {
        properties: properties(&m.properties, library),
        ..event
    }
}

fn error_of(p: &Map<String, Value>) -> Option<ErrorInfo> {
    let said = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match p.get("error") {
        Some(Value::Object(e)) => Some(ErrorInfo {
            kind: said(e.get("kind")).unwrap_or_else(|| "error".into()),
            message: said(e.get("message")).unwrap_or_default(),
            location: said(e.get("location")),
        }),
        _ => {
            let kind = said(p.get("error_kind"));
            let message = said(p.get("error_message"));
            (kind.is_some() || message.is_some()).then(|| ErrorInfo {
                kind: kind.unwrap_or_else(|| "error".into()),
                message: message.unwrap_or_default(),
                location: None,
            })
        }
    }
}

/// The event's own properties: the sender's flat values, within Tally's
/// limits. A client library's `$` properties (its name, the runtime, geo
/// settings) are left out, as are nested values; a string longer than a
/// property may be is cut, and beyond the most entries an event may have,
/// the rest (in key order) are left out rather than the event refused.
fn properties(p: &Map<String, Value>, library: Option<String>) -> BTreeMap<String, PropertyValue> {
    let mut kept: BTreeMap<String, PropertyValue> = p
        .iter()
        .filter(|(k, _)| {
            !k.starts_with('$')
                && !INVOCATION_KEYS.contains(&k.as_str())
                && k.len() <= strings::MAP_KEY
        })
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => PropertyValue::String(cut(s, strings::MAP_VALUE)),
                Value::Bool(b) => PropertyValue::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => PropertyValue::Int(i),
                    None => PropertyValue::Float(n.as_f64().filter(|f| f.is_finite())?),
                },
                _ => return None,
            };
            Some((k.clone(), value))
        })
        .take(strings::MAP_ENTRIES)
        .collect();
    if let Some(library) = library
        && kept.len() < strings::MAP_ENTRIES
    {
        kept.insert(
            "lib".into(),
            PropertyValue::String(cut(&library, strings::MAP_VALUE)),
        );
    }
    kept
}

/// `s` cut to at most `max` bytes, at a character.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The namespace of the ids [`event_id`] makes (a UUIDv5 namespace of
/// Tally's own).
const NAMESPACE: Uuid = Uuid::from_u128(0xfe2d_6c6b_21f1_4024_ab80_88e7_003f_1071);

/// The Tally event id of a foreign message: its own id when that is a
/// UUID (PostHog's `uuid`, most `messageId`s), else a UUIDv5 of the app and
/// that id, else (no id at all) a UUIDv5 of the app and the message's
/// text. The same message sent again gets the same id, so a retried batch
/// is stored once.
///
/// ```
/// let id = "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01";
/// assert_eq!(tally_compat::event_id("mycli", Some(id), "{}").to_string(), id);
/// let a = tally_compat::event_id("mycli", Some("ajs-next-1f2e"), "{}");
/// assert_eq!(a, tally_compat::event_id("mycli", Some("ajs-next-1f2e"), "{\"other\":1}"));
/// assert_ne!(a, tally_compat::event_id("othercli", Some("ajs-next-1f2e"), "{}"));
/// ```
pub fn event_id(app: &str, foreign_id: Option<&str>, text: &str) -> Uuid {
    if let Some(id) = foreign_id.and_then(|id| Uuid::try_parse(id).ok()) {
        return id;
    }
    let app = Uuid::new_v5(&NAMESPACE, app.as_bytes());
    match foreign_id {
        Some(id) => Uuid::new_v5(&app, format!("id:{id}").as_bytes()),
        None => Uuid::new_v5(&app, format!("text:{text}").as_bytes()),
    }
}

/// The install id of a foreign user id: the id itself when it is a UUID
/// (PostHog's anonymous ids are), else the first 16 bytes of its
/// HMAC-SHA256 keyed with the app's `salt`, as a UUIDv8. A user id that is
/// an e-mail or an account name is never stored, and without the salt no
/// one can tell which id a hash stands for.
///
/// ```
/// let hashed = tally_compat::install_id("s3cret", "ada@example.com");
/// assert_eq!(hashed.get_version_num(), 8);
/// assert_eq!(hashed, tally_compat::install_id("s3cret", "ada@example.com"));
/// assert_ne!(hashed, tally_compat::install_id("other", "ada@example.com"));
/// let id = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff";
/// assert_eq!(tally_compat::install_id("s3cret", id).to_string(), id);
/// let md5 = "5d41402abc4b2a76b9719d911017c592";
/// assert_eq!(tally_compat::install_id("s3cret", md5).get_version_num(), 8);
/// ```
pub fn install_id(salt: &str, distinct_id: &str) -> Uuid {
    // Only the hyphenated form: 32 bare hex digits are as often an md5 of
    // an e-mail as a UUID, and an md5 is reversed with a dictionary.
    if distinct_id.len() == 36
        && let Ok(id) = Uuid::try_parse(distinct_id)
    {
        return id;
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(distinct_id.as_bytes());
    let hash = mac.finalize().into_bytes();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&hash[..16]);
    Uuid::new_v8(bytes)
}

/// A message's user id: a string, or a number sent as one.
pub(crate) fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A time as clients write it: RFC 3339, or ISO 8601 without an offset
/// (taken as UTC, as Python's `isoformat()` of a naive time needs).
pub(crate) fn time_of(
    value: Option<&Value>,
    field: &str,
) -> Result<Option<OffsetDateTime>, Invalid> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Some(text) = value.as_str() else {
        return if value.is_null() {
            Ok(None)
        } else {
            Err(invalid(field, "must be a time as RFC 3339 text"))
        };
    };
    use time::format_description::well_known::{Iso8601, Rfc3339};
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| {
            time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|t| t.assume_utc())
        })
        .map(Some)
        .map_err(|_| {
            invalid(
                field,
                "is not a time in RFC 3339 (e.g. 2026-11-25T12:00:00Z)",
            )
        })
}
