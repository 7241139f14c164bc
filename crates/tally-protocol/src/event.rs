//! One CLI invocation, as it travels on the wire.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One invocation of a CLI (or a custom event), as sent by an SDK.
///
/// Field names are the wire names; `docs/protocol.md` describes each.
///
/// ```
/// let json = r#"{"id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01",
///     "timestamp": "2026-11-25T11:59:58Z", "app": "mycli", "app_version": "1.4.2",
///     "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff", "command": "build",
///     "flags": [], "exit_code": 1, "duration_ms": 5, "os": "macos", "arch": "aarch64",
///     "error": {"kind": "io", "message": "file not found"}}"#;
/// let event: tally_protocol::Event = serde_json::from_str(json)?;
/// assert_eq!(event.error.unwrap().kind, "io");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Made by the client once per event and kept across retries: the
    /// deduplication key.
    pub id: Uuid,
    /// When the invocation started, by the client's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The CLI's name; must match the app of the ingest key.
    pub app: String,
    /// The CLI's version, e.g. "1.4.2".
    pub app_version: String,
    /// A random id made once per installation; never derived from the user.
    pub install_id: Uuid,
    /// A custom event's name, e.g. "cache.hit"; absent for the event that
    /// describes the invocation itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The command path, e.g. "deploy create"; empty for the root command.
    pub command: String,
    /// The names of the flags the user typed, e.g. `["--force"]`; never values.
    /// Each is read up to its first `=` ([`flag_name`]): whatever sent
    /// `--token=abc`, only `--token` is ever decoded, so never stored.
    #[serde(deserialize_with = "flag_names")]
    pub flags: Vec<String>,
    /// The process exit code.
    pub exit_code: i32,
    /// How the run ended, when the SDK knows more than the exit code says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Wall time of the invocation in milliseconds.
    pub duration_ms: u64,
    /// Operating system family, e.g. "linux", "macos", "windows".
    pub os: String,
    /// CPU architecture, e.g. "x86_64", "aarch64".
    pub arch: String,
    /// Operating system version, e.g. "14.4" or "Ubuntu 24.04".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// CI vendor, e.g. "github-actions"; absent when not in CI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<String>,
    /// AI coding agent driving the CLI, e.g. "claude-code"; absent for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Whether stdout was a terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Whether the CLI ran inside a container (Docker, Podman, Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<bool>,
    /// Whether the CLI ran under the Windows Subsystem for Linux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wsl: Option<bool>,
    /// What went wrong, scrubbed of private data by the SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Versions of tools the CLI depends on, e.g. `{"git": "2.43.0"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deps: BTreeMap<String, String>,
    /// A small flat map of custom values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, PropertyValue>,
    /// What the event was seen by: an SDK (the default, never sent), or
    /// the gateway whose logs `tally import-logs` read. Servers refuse a
    /// gateway event from an ingest key: only an import makes one.
    #[serde(default, skip_serializing_if = "Source::is_sdk")]
    pub source: Source,
}

/// The name in a flag as typed: what comes before its first `=`, so that a
/// value given as `--token=abc` is never taken for part of the name.
///
/// ```
/// assert_eq!(tally_protocol::flag_name("--token=abc"), "--token");
/// assert_eq!(tally_protocol::flag_name("--force"), "--force");
/// ```
pub fn flag_name(typed: &str) -> &str {
    typed.split_once('=').map_or(typed, |(name, _)| name)
}

fn flag_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let mut flags = Vec::<String>::deserialize(deserializer)?;
    for flag in &mut flags {
        let name = flag_name(flag).len();
        if name < flag.len() {
            // Its value's room would stay allocated, uncounted.
            flag.truncate(name);
            flag.shrink_to_fit();
        }
    }
    Ok(flags)
}

/// How an invocation ended.
///
/// ```
/// let o: tally_protocol::Outcome = serde_json::from_str("\"interrupted\"")?;
/// assert_eq!(o, tally_protocol::Outcome::Interrupted);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Exited with code 0.
    Success,
    /// Exited with a non-zero code through the CLI's own error handling.
    Failure,
    /// Panicked or crashed.
    Crash,
    /// Stopped by the user (Ctrl-C, SIGINT, SIGTERM).
    Interrupted,
    /// Died without a trace (SIGKILL, OOM), seen by a later run.
    Killed,
}

/// What saw an event happen: the CLI itself, through an SDK, or the API
/// gateway that served the CLI's request.
///
/// ```
/// use tally_protocol::Source;
/// assert_eq!(Source::parse("gateway"), Some(Source::Gateway));
/// assert_eq!(Source::default().as_str(), "sdk");
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An SDK inside the CLI (or a PostHog or Segment client).
    #[default]
    Sdk,
    /// A request in an API gateway's or web server's access log.
    Gateway,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 2] = [Source::Sdk, Source::Gateway];

    /// The wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sdk => "sdk",
            Source::Gateway => "gateway",
        }
    }

    /// The source called `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn is_sdk(&self) -> bool {
        *self == Source::Sdk
    }
}

impl Outcome {
    /// The wire name, e.g. "success".
    ///
    /// ```
    /// assert_eq!(tally_protocol::Outcome::Crash.as_str(), "crash");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Crash => "crash",
            Self::Interrupted => "interrupted",
            Self::Killed => "killed",
        }
    }

    /// Parses a wire name.
    ///
    /// ```
    /// use tally_protocol::Outcome;
    /// assert_eq!(Outcome::parse("killed"), Some(Outcome::Killed));
    /// assert_eq!(Outcome::parse("exploded"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Success,
            Self::Failure,
            Self::Crash,
            Self::Interrupted,
            Self::Killed,
        ]
        .into_iter()
        .find(|o| o.as_str() == name)
    }
}

/// An error or crash, with private data already scrubbed by the client.
///
/// ```
/// let e = tally_protocol::ErrorInfo { kind: "panic".into(), message: "index out of bounds".into(),
///     location: Some("src/main.rs:10:5".into()) };
/// assert_eq!(e.location.as_deref(), Some("src/main.rs:10:5"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// A stable kind for grouping, e.g. "io", "panic", "http.timeout".
    pub kind: String,
    /// The scrubbed message.
    #[serde(default)]
    pub message: String,
    /// Where it happened, e.g. "src/deploy.rs:42:9".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A value in an event's flat `properties` map.
///
/// ```
/// use tally_protocol::PropertyValue;
/// let v: PropertyValue = serde_json::from_str("3")?;
/// assert_eq!(v, PropertyValue::Int(3));
/// assert!(serde_json::from_str::<PropertyValue>(r#"{"nested": 1}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// A string.
    String(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

macro_rules! property_from {
    ($($t:ty => $variant:ident($conv:expr)),* $(,)?) => {$(
        impl From<$t> for PropertyValue {
            fn from(v: $t) -> Self {
                PropertyValue::$variant($conv(v))
            }
        }
    )*};
}

property_from! {
    String => String(|v| v),
    &str => String(str::to_owned),
    bool => Bool(|v| v),
    i64 => Int(|v| v),
    i32 => Int(i64::from),
    u32 => Int(i64::from),
    f64 => Float(|v| v),
}

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PropertyVisitor)
    }
}

struct PropertyVisitor;

impl<'de> serde::de::Visitor<'de> for PropertyVisitor {
    type Value = PropertyValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean (properties are flat)")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PropertyValue::String(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(PropertyValue::String(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(PropertyValue::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(PropertyValue::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PropertyValue::Float(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PropertyValue::Bool(v))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use crate::{Limits, decode_batch};

    fn decode_flags(flags: serde_json::Value) -> crate::DecodedBatch {
        let now = OffsetDateTime::now_utc();
        let body = json!({
            "sent_at": now.format(&time::format_description::well_known::Rfc3339).expect("format"),
            "events": [{
                "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01",
                "timestamp": now.format(&time::format_description::well_known::Rfc3339).expect("format"),
                "app": "mycli", "app_version": "1.0.0",
                "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
                "command": "login", "flags": flags, "exit_code": 0, "duration_ms": 5,
                "os": "linux", "arch": "x86_64",
            }],
        });
        decode_batch(
            body.to_string().as_bytes(),
            "mycli",
            now,
            &Limits::default(),
        )
        .expect("the batch decodes")
    }

    #[test]
    fn a_value_typed_after_equals_is_never_decoded() {
        let decoded = decode_flags(json!([
            "--token=abc",
            "--force",
            "-o=a=b",
            "--name=with space"
        ]));
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        assert_eq!(
            decoded.events[0].flags,
            ["--token", "--force", "-o", "--name"]
        );
    }

    #[test]
    fn a_flag_that_is_only_a_value_is_rejected() {
        let decoded = decode_flags(json!(["=abc"]));
        assert!(decoded.events.is_empty());
        assert_eq!(decoded.rejected[0].field, "flags.0");
        assert_eq!(decoded.rejected[0].reason, "must not be empty");
    }
}
