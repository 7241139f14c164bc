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
    /// When it happened, if it says.
    pub time: Option<When>,
    /// When the client sent it, if the message says so itself.
    pub sent_at: Option<OffsetDateTime>,
    pub properties: Map<String, Value>,
    /// What the message says of where it ran, outside its properties.
    pub context: Context,
}

/// When a message happened, and by whose clock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum When {
    /// By the client's clock, which may be off: corrected by the skew its
    /// `sent_at` shows.
    Client(OffsetDateTime),
    /// Already on the server's clock (PostHog's `offset`, counted back from
    /// the request's arrival).
    Server(OffsetDateTime),
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
/// are, with client times shifted by the client's skew at `sent_at` (a
/// believable time, as [`sent_at_of`] reads it).
///
/// A message's time is its own; failing that, the time in its id when that
/// is a UUIDv7 (PostHog's clients make those); failing that, its arrival.
/// Only the first two are the same on every retry, which dedupe needs once
/// the first attempt's id has left memory (docs/compat.md says so).
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
            positions: Vec::new(),
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
                    .map(|m| {
                        let time = m.time.or_else(|| id_time(m.foreign_id.as_deref()));
                        let (timestamp, shift) = match time {
                            Some(When::Client(t)) => {
                                let sent_at = m.sent_at.or(sent_at);
                                (t, skew(sent_at, now, limits))
                            }
                            Some(When::Server(t)) => (t, time::Duration::ZERO),
                            None => (now, time::Duration::ZERO),
                        };
                        let event = to_event(m, timestamp, text, target);
                        admit(event, target.app, now, shift, limits)
                    })
                    .transpose()
            })
        };
        match result {
            Ok(Some((event, client_timestamp))) => {
                decoded.batch.events.push(event);
                decoded.batch.positions.push(index);
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
/// request: none when it does not say.
fn skew(sent_at: Option<OffsetDateTime>, now: OffsetDateTime, limits: &Limits) -> time::Duration {
    sent_at.map_or(time::Duration::ZERO, |t| {
        clock::shift(now, t, limits.skew_tolerance)
    })
}

/// The time in a UUIDv7 id (its first 48 bits, in milliseconds), by the
/// clock of the client that made it.
fn id_time(foreign_id: Option<&str>) -> Option<When> {
    let id = Uuid::try_parse(foreign_id?).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    let t = OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?).ok()?;
    Some(When::Client(t + time::Duration::nanoseconds(nanos.into())))
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

/// The Tally event `message` (whose text is `raw`) stands for, at
/// `timestamp`; `admit` judges it next.
///
/// Every value is the sender's, and whoever instrumented the CLI chose
/// what to put where: values are fitted to Tally's limits (cut, NULs
/// dropped) and odd ones left out, so that one stray property never costs
/// the whole event. Only what makes the event itself (its name, times and
/// size) can refuse it.
fn to_event(mut m: Message, timestamp: OffsetDateTime, raw: &str, target: &Target) -> Event {
    let p = &m.properties;
    let said = |keys: &[&str]| {
        keys.iter().find_map(|k| match p.get(*k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let boolean = |key: &str| p.get(key).and_then(Value::as_bool);
    let app_version = fitted(
        said(&["app_version", "$app_version", "version"]).or(m.context.app_version.take()),
        strings::VERSION,
    )
    .unwrap_or_else(|| "unknown".into());
    let os = said(&["$os", "os"]).or(m.context.os.take());
    let os_version = said(&["$os_version", "os_version"]).or(m.context.os_version.take());
    // posthog-python says "12" and, apart, "Debian GNU/Linux"; posthog-rs
    // says "Debian" for the OS: one OS, "linux", and one version, as
    // Tally's SDK gives it ("Debian 12").
    let distro = said(&["$os_distro"]).or_else(|| {
        os.as_ref()
            .filter(|o| platform::is_linux_distribution(&o.trim().to_ascii_lowercase()))
            .cloned()
    });
    let os_version = match (distro, os_version) {
        (Some(distro), Some(version)) => Some(format!("{distro} {version}")),
        (_, version) => version,
    };
    let ci = match p.get("ci") {
        Some(Value::String(s)) => fitted(Some(s.clone()), strings::PLATFORM),
        Some(Value::Bool(true)) => Some("unknown".into()),
        _ => None,
    };
    let (exit_code, unreadable) = exit_code(p.get("exit_code"));
    let library = said(&["$lib"]).or(m.context.library.take());
    let invocation = m.name == target.invocation_event;
    let event = Event {
        id: event_id(target.app, m.foreign_id.as_deref(), raw),
        timestamp,
        app: target.app.to_owned(),
        app_version,
        install_id: install_id(target.salt, &m.distinct_id),
        name: (!invocation).then(|| m.name.clone()),
        command: fitted(said(&["command"]), strings::COMMAND).unwrap_or_default(),
        flags: flags(p.get("flags")),
        exit_code,
        outcome: p
            .get("outcome")
            .and_then(Value::as_str)
            .and_then(Outcome::parse)
            .or(unreadable.then_some(Outcome::Failure)),
        duration_ms: p
            .get("duration_ms")
            .and_then(Value::as_f64)
            .filter(|d| d.is_finite() && (0.0..i64::MAX as f64).contains(d))
            .map_or(0, |d| d.round() as u64),
        os: platform_of(os, platform::os),
        arch: platform_of(said(&["arch", "$arch"]), platform::arch),
        os_version: fitted(os_version, strings::PLATFORM),
        ci,
        agent: fitted(said(&["agent"]), strings::PLATFORM),
        tty: boolean("tty"),
        container: boolean("container"),
        wsl: boolean("wsl"),
        error: error_of(p),
        deps: match p.get("deps") {
            Some(Value::Object(deps)) => entries(
                deps.iter()
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned()))),
            ),
            _ => BTreeMap::new(),
        },
        properties: BTreeMap::new(),
        source: tally_protocol::Source::Sdk,
    };
    Event {
        properties: properties(&m.properties, library),
        ..event
    }
}

/// An exit code as sent (a number, or a number in text), and whether one
/// was sent that is none: a run that reports an exit code it cannot say
/// did not succeed.
fn exit_code(value: Option<&Value>) -> (i32, bool) {
    let code = match value {
        None | Some(Value::Null) => return (0, false),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(v) => v.as_i64(),
    };
    match code.and_then(|c| i32::try_from(c).ok()) {
        Some(code) => (code, false),
        None => (1, true),
    }
}

/// The flag names among a `flags` property's entries: those that are
/// flags (`-v`, `--force`), without a value typed after `=`. Anything
/// else in the list (a flag's value, a file name) is an argument, and
/// arguments are the user's, not usage.
fn flags(value: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(flags)) = value else {
        return Vec::new();
    };
    flags
        .iter()
        .filter_map(Value::as_str)
        .filter(|f| f.starts_with('-') && !f.chars().any(|c| c.is_whitespace() || c == '\0'))
        .filter_map(|f| fitted(Some(flag_name(f).to_owned()), strings::FLAG))
        .take(strings::FLAGS)
        .collect()
}

/// A platform value normalised by `normal`, fitted, or "unknown".
fn platform_of(value: Option<String>, normal: fn(&str) -> String) -> String {
    fitted(value.map(|v| normal(&v)), strings::PLATFORM).unwrap_or_else(|| "unknown".into())
}

fn error_of(p: &Map<String, Value>) -> Option<ErrorInfo> {
    let said = |v: Option<&Value>, max| fitted(v.and_then(Value::as_str).map(str::to_owned), max);
    let info = |kind, message, location| ErrorInfo {
        kind: said(kind, strings::ERROR_KIND).unwrap_or_else(|| "error".into()),
        message: said(message, strings::ERROR_MESSAGE).unwrap_or_default(),
        location: said(location, strings::ERROR_LOCATION),
    };
    match p.get("error") {
        Some(Value::Object(e)) => Some(info(e.get("kind"), e.get("message"), e.get("location"))),
        _ => {
            let (kind, message) = (p.get("error_kind"), p.get("error_message"));
            (kind.is_some() || message.is_some()).then(|| info(kind, message, None))
        }
    }
}

/// The event's own properties: the sender's flat values, within Tally's
/// limits. A client library's `$` properties (its name, the runtime, geo
/// settings) are left out, as are nested values; a string longer than a
/// property may be is cut, and beyond the most entries an event may have,
/// the rest (in key order) are left out rather than the event refused.
fn properties(p: &Map<String, Value>, library: Option<String>) -> BTreeMap<String, PropertyValue> {
    let mut kept = entries(
        p.iter()
            .filter(|(k, _)| !k.starts_with('$') && !INVOCATION_KEYS.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let value = match v {
                    Value::String(s) => PropertyValue::String(s.clone()),
                    Value::Bool(b) => PropertyValue::Bool(*b),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => PropertyValue::Int(i),
                        None => PropertyValue::Float(n.as_f64().filter(|f| f.is_finite())?),
                    },
                    _ => return None,
                };
                Some((k, value))
            }),
    );
    if let Some(library) = fitted(library, strings::MAP_VALUE)
        && kept.len() < strings::MAP_ENTRIES
    {
        kept.insert("lib".into(), PropertyValue::String(library));
    }
    kept
}

/// A map's entries as an event may hold them: keys that fit as they are
/// (a key cut short would be another key), string values fitted, at most
/// [`strings::MAP_ENTRIES`] of them.
fn entries<V: Fitted>(from: impl Iterator<Item = (impl AsRef<str>, V)>) -> BTreeMap<String, V> {
    from.filter(|(k, _)| {
        let k = k.as_ref();
        !k.is_empty() && k.len() <= strings::MAP_KEY && !k.contains('\0')
    })
    .map(|(k, v)| (k.as_ref().to_owned(), v.fitted()))
    .take(strings::MAP_ENTRIES)
    .collect()
}

/// A map value fitted to [`strings::MAP_VALUE`].
trait Fitted {
    fn fitted(self) -> Self;
}

impl Fitted for String {
    fn fitted(self) -> Self {
        fit(self, strings::MAP_VALUE)
    }
}

impl Fitted for PropertyValue {
    fn fitted(self) -> Self {
        match self {
            Self::String(s) => Self::String(s.fitted()),
            other => other,
        }
    }
}

/// `s` as a field of at most `max` bytes may hold it: without NUL
/// characters, cut at a character.
fn fit(mut s: String, max: usize) -> String {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// A value [`fit`] for a field of `max` bytes, `None` when nothing is left.
fn fitted(value: Option<String>, max: usize) -> Option<String> {
    value.map(|s| fit(s, max)).filter(|s| !s.is_empty())
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
/// (taken as UTC, as Python's `isoformat()` of a naive time needs). Read
/// from the raw value, so a field that holds anything else costs no more
/// than the look at its first byte.
pub(crate) fn time_of(
    value: Option<&RawValue>,
    field: &str,
) -> Result<Option<OffsetDateTime>, Invalid> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text: Option<std::borrow::Cow<'_, str>> = serde_json::from_str(value.get())
        .map_err(|_| invalid(field, "must be a time as RFC 3339 text"))?;
    let Some(text) = text else {
        return Ok(None);
    };
    use time::format_description::well_known::{Iso8601, Rfc3339};
    OffsetDateTime::parse(&text, &Rfc3339)
        .or_else(|_| {
            time::PrimitiveDateTime::parse(&text, &Iso8601::DEFAULT).map(|t| t.assume_utc())
        })
        .map(Some)
        .map_err(|_| {
            invalid(
                field,
                "is not a time in RFC 3339 (e.g. 2026-11-25T12:00:00Z)",
            )
        })
}

/// When a client says it sent a request or message, as [`time_of`] reads
/// it, and believable: the skew of every time it sent is measured from it.
pub(crate) fn sent_at_of(
    value: Option<&RawValue>,
    field: &str,
) -> Result<Option<OffsetDateTime>, Invalid> {
    time_of(value, field)?
        .map(|t| clock::believable(t).map_err(|reason| invalid(field, reason)))
        .transpose()
}
