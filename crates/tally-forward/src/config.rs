//! What a server is told to forward, per app: the destinations, as the
//! config file has them (`[[apps.NAME.forward]]`).

use serde::Deserialize;

/// A destination's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// PostHog's capture API (`POST {url}/batch/`), the project token in
    /// the body.
    PostHog,
    /// Segment's tracking API (`POST {url}/v1/batch`), the write key as
    /// Basic auth; also what Segment-compatible collectors (RudderStack,
    /// Jitsu ...) take.
    Segment,
    /// A signed webhook (`POST {url}`), signed as Standard Webhooks
    /// specifies (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Webhook,
}

/// The fields of an event a destination may be sent, beside the event's
/// id, name, time and install id, which every destination gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Field {
    /// The CLI's version.
    #[serde(rename = "app_version")]
    AppVersion,
    /// The command run.
    #[serde(rename = "command")]
    Command,
    /// The flag names given.
    #[serde(rename = "flags")]
    Flags,
    /// The exit code.
    #[serde(rename = "exit_code")]
    ExitCode,
    /// How the run ended (read off the exit code when the SDK did not say).
    #[serde(rename = "outcome")]
    Outcome,
    /// How long it took.
    #[serde(rename = "duration_ms")]
    DurationMs,
    /// The OS.
    #[serde(rename = "os")]
    Os,
    /// The OS version.
    #[serde(rename = "os_version")]
    OsVersion,
    /// The CPU architecture.
    #[serde(rename = "arch")]
    Arch,
    /// The CI vendor, if any.
    #[serde(rename = "ci")]
    Ci,
    /// The AI agent that ran it, if any.
    #[serde(rename = "agent")]
    Agent,
    /// Whether it ran on a terminal.
    #[serde(rename = "tty")]
    Tty,
    /// Whether it ran in a container.
    #[serde(rename = "container")]
    Container,
    /// Whether it ran under WSL.
    #[serde(rename = "wsl")]
    Wsl,
    /// The error's kind.
    #[serde(rename = "error.kind")]
    ErrorKind,
    /// The error's message (scrubbed, and still the user's text).
    #[serde(rename = "error.message")]
    ErrorMessage,
    /// Where the error was raised.
    #[serde(rename = "error.location")]
    ErrorLocation,
    /// The versions of tools the CLI depends on.
    #[serde(rename = "deps")]
    Deps,
    /// A custom event's properties.
    #[serde(rename = "properties")]
    Properties,
    /// What saw it: `sdk`, or `gateway` for a request `tally import-logs`
    /// read in an access log.
    #[serde(rename = "source")]
    Source,
}

/// What a destination gets unless its `fields` say otherwise: what the
/// reports show, and of an error only its kind (its message and location,
/// scrubbed as they are, are still the user's text).
pub const DEFAULT_FIELDS: &[Field] = &[
    Field::AppVersion,
    Field::Command,
    Field::Flags,
    Field::ExitCode,
    Field::Outcome,
    Field::DurationMs,
    Field::Os,
    Field::OsVersion,
    Field::Arch,
    Field::Ci,
    Field::Agent,
    Field::ErrorKind,
    Field::Source,
];

fn default_fields() -> Vec<Field> {
    DEFAULT_FIELDS.to_vec()
}

/// One destination of an app's events.
///
/// ```
/// let d: tally_forward::Destination = toml::from_str(r#"
///     name = "posthog"
///     kind = "posthog"
///     url = "https://eu.i.posthog.com"
///     key_env = "POSTHOG_TOKEN"
///     fields = ["command", "exit_code", "error.kind"]
/// "#)?;
/// assert_eq!(d.kind, tally_forward::Kind::PostHog);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// The destination's name, unique within its app: its state's folder,
    /// its metrics' label, what `tally forward` takes.
    pub name: String,
    /// Its protocol.
    pub kind: Kind,
    /// PostHog's or Segment's host (`https://us.i.posthog.com`,
    /// `https://api.segment.io`), or the webhook's URL.
    pub url: String,
    /// The PostHog project token or Segment write key; better
    /// [`key_env`](Self::key_env), which keeps it out of the file.
    pub key: Option<String>,
    /// The environment variable holding the key.
    pub key_env: Option<String>,
    /// The webhook's signing secret (`whsec_` and base64), or
    /// [`secret_env`](Self::secret_env).
    pub secret: Option<String>,
    /// The environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// The fields it may be sent (see [`DEFAULT_FIELDS`]).
    #[serde(default = "default_fields")]
    pub fields: Vec<Field>,
    /// The most events one request carries (default 100; Segment's limit
    /// of 500 KB a batch is kept whatever this says).
    pub batch_events: Option<usize>,
    /// Where erasures go, when not the usual place: PostHog's app host for
    /// its private API (`https://eu.posthog.com`, where `url` may be the
    /// ingest host `https://eu.i.posthog.com`), or Segment's Public API
    /// (`https://api.segmentapis.com`, the default). Webhooks get them at
    /// `url`.
    pub erasure_url: Option<String>,
    /// What deletes people: a PostHog personal API key (with the person
    /// write scope) or a Segment Public API token (with the regulations
    /// scope); better [`erasure_key_env`](Self::erasure_key_env). Without
    /// either, a PostHog or Segment destination is not told of erasures.
    pub erasure_key: Option<String>,
    /// The environment variable holding the erasure key.
    pub erasure_key_env: Option<String>,
    /// The PostHog project's id, for erasures.
    pub project_id: Option<String>,
    /// Attempts a batch gets when it keeps failing with errors that may
    /// pass (5xx, timeouts, 429 ...) before its events become dead letters
    /// (for `tally forward replay`); unset, it is tried until it goes
    /// through.
    pub max_attempts: Option<u32>,
}

/// A destination's secret, read from the config or the environment.
#[derive(Clone)]
pub(crate) enum Secret {
    /// A project token or write key.
    Key(String),
    /// A webhook's signing key (decoded).
    Signing(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Destination {
    /// Checks the destination and reads its secret: the first reason it
    /// cannot be used, as a sentence.
    pub(crate) fn secret(&self) -> Result<Secret, String> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || self.name == crate::state::OUTBOX_DIR
        {
            return Err(format!(
                "destination name {:?}: use 1 to 64 letters, digits, - and _ (and not \"outbox\")",
                self.name
            ));
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(format!(
                "{}: url must start with https:// or http://",
                self.name
            ));
        }
        if self.batch_events == Some(0) {
            return Err(format!("{}: batch_events must be at least 1", self.name));
        }
        let read = |value: &Option<String>, env: &Option<String>, what: &str| match (value, env) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!(
                    "{}: the environment variable {var} ({what}) is not set",
                    self.name
                )
            }),
            (None, None) => Err(format!(
                "{}: a {} destination needs {what}",
                self.name,
                self.kind_name()
            )),
        };
        match self.kind {
            Kind::PostHog | Kind::Segment => {
                read(&self.key, &self.key_env, "a key (key or key_env)").map(Secret::Key)
            }
            Kind::Webhook => {
                let secret = read(
                    &self.secret,
                    &self.secret_env,
                    "a secret (secret or secret_env)",
                )?;
                let encoded = secret.strip_prefix("whsec_").unwrap_or(&secret);
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
                    .filter(|key| key.len() >= 24)
                    .map(Secret::Signing)
                    .ok_or_else(|| {
                        format!(
                            "{}: the secret must be whsec_ and the base64 of at least 24 random bytes",
                            self.name
                        )
                    })
            }
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::PostHog => "posthog",
            Kind::Segment => "segment",
            Kind::Webhook => "webhook",
        }
    }

    /// The largest request body the destination takes, if it says:
    /// Segment refuses batches over 500 KB.
    pub(crate) fn max_request_bytes(&self) -> Option<usize> {
        (self.kind == Kind::Segment).then_some(500 * 1000)
    }

    /// The most events one request carries.
    pub(crate) fn batch_events(&self) -> usize {
        self.batch_events.unwrap_or(100).min(1000)
    }
}
