//! Whether telemetry is on, and which source said so.
//!
//! One order, checked top to bottom, first match wins: `DO_NOT_TRACK`, then
//! `<APP>_TELEMETRY_DISABLED`, then the config file the user controls with
//! `telemetry enable|disable`. Without a config file the run is a first run:
//! the notice is shown and nothing is recorded.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tally_protocol::InstallSecret;
use uuid::Uuid;

/// Why telemetry is on or off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `DO_NOT_TRACK` holds a value other than empty, "0" or "false".
    DoNotTrack(String),
    /// The app's own switch, e.g. `MYCLI_TELEMETRY_DISABLED=1`.
    AppVariable {
        /// The variable's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// The config file written by `telemetry enable|disable` or the first run.
    ConfigFile(PathBuf),
    /// The config file exists but cannot be read or parsed: off, to be safe.
    BadConfigFile(PathBuf),
    /// No config dir could be found (no home directory): off.
    NoConfigDir,
    /// The program itself turned telemetry off (`Builder::enabled(false)`).
    Program,
    /// No config file yet: the next recorded run shows the notice instead.
    FirstRun(PathBuf),
}

/// The consent decision for this process.
///
/// ```
/// let status = tally::Consent { enabled: false, source: tally::Source::DoNotTrack("1".into()) };
/// assert_eq!(status.to_string(), "Telemetry is off: DO_NOT_TRACK=1 is set, which overrides every other setting.");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Whether runs are recorded and sent.
    pub enabled: bool,
    /// What decided it.
    pub source: Source,
}

impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.enabled { "on" } else { "off" };
        match &self.source {
            Source::DoNotTrack(v) => write!(
                f,
                "Telemetry is off: DO_NOT_TRACK={v} is set, which overrides every other setting."
            ),
            Source::AppVariable { name, value } => {
                write!(f, "Telemetry is off: {name}={value} is set.")
            }
            Source::ConfigFile(path) => write!(
                f,
                "Telemetry is {state}, as set in {} (change it with `telemetry enable` or `telemetry disable`).",
                path.display()
            ),
            Source::BadConfigFile(path) => write!(
                f,
                "Telemetry is off: {} cannot be read; `telemetry enable` or `telemetry disable` rewrites it.",
                path.display()
            ),
            Source::Program => write!(f, "Telemetry is off in this build of the program."),
            Source::NoConfigDir => write!(
                f,
                "Telemetry is off: there is no config directory to keep the setting in."
            ),
            Source::FirstRun(path) => write!(
                f,
                "Telemetry is not set up yet: the next run shows a notice and records nothing; after that it is on unless disabled ({} will hold the setting).",
                path.display()
            ),
        }
    }
}

/// What the config file holds.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub enabled: bool,
    /// Made once, of `secret`; the only identity an event carries.
    pub install_id: Uuid,
    /// What the install id is made of (see [`InstallSecret`]), which proves
    /// to the server that an erasure is asked by this install. Files
    /// written before erasure existed have none (and a random id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl fmt::Debug for Settings {
    /// Never the secret: it could end in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("enabled", &self.enabled)
            .field("install_id", &self.install_id)
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .finish()
    }
}

impl Settings {
    /// A new install: a new secret, and the id it makes.
    pub(crate) fn new_install(enabled: bool) -> Self {
        let secret = InstallSecret::new();
        Self {
            enabled,
            install_id: secret.install_id(),
            secret: Some(secret.as_str().to_owned()),
        }
    }

    /// The secret, if this install has one that makes its id.
    pub(crate) fn secret(&self) -> Option<InstallSecret> {
        self.secret
            .as_deref()
            .and_then(InstallSecret::parse)
            .filter(|s| s.install_id() == self.install_id)
    }
}

/// A variable that says "yes": set, and not empty, "0" or "false".
pub(crate) fn truthy(value: &str) -> bool {
    let v = value.trim();
    !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
}

/// Decides consent from the environment and the config file, without
/// writing anything.
pub(crate) fn decide(prefix: &str, config: Option<&Path>) -> (Consent, Option<Settings>) {
    let off = |source| {
        (
            Consent {
                enabled: false,
                source,
            },
            None,
        )
    };
    if let Some(v) = std::env::var("DO_NOT_TRACK").ok().filter(|v| truthy(v)) {
        return off(Source::DoNotTrack(v));
    }
    let name = format!("{prefix}_TELEMETRY_DISABLED");
    if let Some(value) = std::env::var(&name).ok().filter(|v| truthy(v)) {
        return off(Source::AppVariable { name, value });
    }
    let Some(path) = config else {
        return off(Source::NoConfigDir);
    };
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Settings>(&bytes) {
            Ok(settings) => (
                Consent {
                    enabled: settings.enabled,
                    source: Source::ConfigFile(path.to_owned()),
                },
                Some(settings),
            ),
            Err(_) => off(Source::BadConfigFile(path.to_owned())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => off(Source::FirstRun(path.to_owned())),
        Err(_) => off(Source::BadConfigFile(path.to_owned())),
    }
}

/// Writes the config file (atomically: a reader never sees half of it;
/// readable by the user alone, as it holds the install's secret).
pub(crate) fn save(path: &Path, settings: &Settings) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(settings).map_err(io::Error::other)?;
    crate::fsutil::write_private(path, &json)
}
