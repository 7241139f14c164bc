//! The Tally SDK: report each run of your CLI to your own Tally server.
//!
//! Every run becomes one event: the command path, the names of the flags the
//! user typed (never their values), exit code, outcome, duration, version,
//! OS, CI vendor, AI agent. The SDK is built around three promises:
//!
//! - **It never slows the CLI.** The finished event is written to a spool in
//!   the user's cache dir (a small file, no network); a detached flusher,
//!   capped by a hard wall-clock limit and one per spool, sends it. Failures
//!   open a circuit breaker kept on disk.
//! - **Nothing is lost or counted twice.** Unsent events stay in the spool
//!   for a later run; each has an id the server deduplicates on. Panics,
//!   Ctrl-C and even `kill -9` (seen by the next run) still produce an event.
//! - **Nothing private leaves the machine.** Free text is scrubbed (home dirs,
//!   user and host names, e-mails, IPs, tokens); consent follows
//!   `DO_NOT_TRACK`, `<APP>_TELEMETRY_DISABLED` and a config file, and the
//!   first run only shows a notice.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! fn main() -> ExitCode {
//!     // First thing in main: this is also where the flusher starts.
//!     let telemetry = tally::Tally::builder("mycli", env!("CARGO_PKG_VERSION"))
//!         .endpoint("https://tally.example.com")
//!         .ingest_key("tk_0123456789abcdef")
//!         .build();
//!     let run = telemetry.start("deploy", &["--force"]);
//!     match deploy() {
//!         Ok(()) => {
//!             run.finish(0);
//!             ExitCode::SUCCESS
//!         }
//!         Err(e) => {
//!             eprintln!("error: {e}");
//!             run.fail(1, "deploy", &e.to_string());
//!             ExitCode::FAILURE
//!         }
//!     }
//! }
//! # fn deploy() -> Result<(), std::io::Error> { Ok(()) }
//! ```
//!
//! Environment variables, for `mycli` (the prefix is the app name in upper
//! case, `-` as `_`): `MYCLI_TELEMETRY_DISABLED=1` turns it off,
//! `MYCLI_TELEMETRY_DEBUG=1` prints each event to stderr and, from the
//! flusher, one line for each send that failed and why (connection refused,
//! the status the server answered, an https endpoint without the `tls`
//! feature ...), `MYCLI_TELEMETRY_ENDPOINT` and `MYCLI_TELEMETRY_KEY` override
//! the endpoint and key (self-hosters, tests). `DO_NOT_TRACK=1` wins over
//! everything.
//!
//! Features: `tls` (on by default) sends to `https://` endpoints, through
//! rustls with the webpki roots; turn it off with `default-features = false`
//! when the endpoint is plain HTTP (an internal network, tests). `clap` reads
//! the command path and the typed flag names from clap's `ArgMatches`.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tally_scrub::{Identity, Scrubber};

mod breaker;
#[cfg(feature = "clap")]
mod clap_support;
mod consent;
mod context;
mod deliver;
mod forget;
mod fsutil;
mod run;
mod send;
mod spool;
#[cfg(test)]
mod testing;
mod tools;

#[cfg(feature = "clap")]
pub use clap_support::describe;
pub use consent::{Consent, Source};
pub use context::Context;
pub use run::Run;
pub use spool::SpoolLimits;
pub use tally_protocol::{Outcome, PropertyValue, UserAgent};

/// The default notice, shown once on stderr on the first run; `{app}` and
/// `{prefix}` are filled in.
const NOTICE: &str = "\
{app} collects anonymous usage data: the command and flag names you use \
(never their values or your arguments), exit codes, durations, {app}'s \
version, OS and CI or agent environment. Nothing was recorded for this run. \
Turn it off with `{app} telemetry disable`, {prefix}_TELEMETRY_DISABLED=1 or \
DO_NOT_TRACK=1.";

/// Configures a [`Tally`]; see the [crate docs](crate) for an example.
#[must_use]
pub struct Builder {
    app: String,
    version: String,
    endpoint: Option<String>,
    key: Option<String>,
    notice: Option<String>,
    value_flags: Vec<String>,
    catch_interrupts: bool,
    spool_limits: SpoolLimits,
    flush_limit: Duration,
    enabled: bool,
}

impl Builder {
    /// Lets the program turn telemetry off itself (its own tests, an
    /// air-gapped build); `false` wins over every other setting.
    ///
    /// ```
    /// let telemetry = tally::Tally::builder("mycli", "1.0.0").enabled(false).build();
    /// assert!(!telemetry.consent().enabled);
    /// ```
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// The base URL of the Tally server, e.g. `https://tally.example.com`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The app's ingest key (`tally app add` prints it). It is a public
    /// identifier, fine to compile into the binary.
    pub fn ingest_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Replaces the first-run notice; `{app}` and `{prefix}` are filled in.
    pub fn notice(mut self, text: impl Into<String>) -> Self {
        self.notice = Some(text.into());
        self
    }

    /// Flags whose value may be sent, e.g. `["--format"]`: only when the flag
    /// takes its value from a fixed set (a clap `ValueEnum` or possible
    /// values) and the value is one of them. It goes into the event's
    /// properties under the flag's name.
    pub fn send_values_of<I, S>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.value_flags.extend(flags.into_iter().map(Into::into));
        self
    }

    /// Record Ctrl-C and SIGTERM as an interrupted run, then end the process
    /// the way the signal would have. Leave off (the default) when the CLI
    /// handles these signals itself; call [`Run::interrupted`] from its
    /// handler instead.
    pub fn catch_interrupts(mut self, on: bool) -> Self {
        self.catch_interrupts = on;
        self
    }

    /// Caps of the local spool (default 1000 events, 1 MiB).
    pub fn spool_limits(mut self, limits: SpoolLimits) -> Self {
        self.spool_limits = limits;
        self
    }

    /// The hard wall-clock limit of a background flush (default 15 s).
    pub fn flush_limit(mut self, limit: Duration) -> Self {
        self.flush_limit = limit;
        self
    }

    /// Reads consent and settings. When the process was started as the
    /// SDK's flusher, sends the spool and exits here instead of returning.
    pub fn build(self) -> Tally {
        let prefix = tally_protocol::env_prefix(&self.app);
        let var = |suffix: &str| {
            std::env::var(format!("{prefix}_TELEMETRY_{suffix}"))
                .ok()
                .filter(|v| !v.trim().is_empty())
        };
        let dirs = match (dirs::config_dir(), dirs::cache_dir()) {
            (Some(config), Some(cache)) => Some(Dirs {
                config_file: config.join(&self.app).join("telemetry.json"),
                cache: cache.join(&self.app).join("telemetry"),
            }),
            _ => None,
        };
        let (consent, settings) = if self.enabled {
            consent::decide(&prefix, dirs.as_ref().map(|d| d.config_file.as_path()))
        } else {
            let off = Consent {
                enabled: false,
                source: Source::Program,
            };
            (off, None)
        };
        let notice = self
            .notice
            .unwrap_or_else(|| NOTICE.to_owned())
            .replace("{app}", &self.app)
            .replace("{prefix}", &prefix);
        let shared = Shared {
            endpoint: var("ENDPOINT").or(self.endpoint),
            key: var("KEY").or(self.key),
            debug: var("DEBUG").is_some_and(|v| consent::truthy(&v)),
            app: self.app,
            version: self.version,
            prefix,
            dirs,
            consent,
            settings,
            notice,
            value_flags: self.value_flags,
            catch_interrupts: self.catch_interrupts,
            spool_limits: self.spool_limits,
            flush_limit: self.flush_limit,
            context: OnceLock::new(),
            scrubber: OnceLock::new(),
        };
        let mut args = std::env::args_os().skip(1);
        let flush_mode = args.next().is_some_and(|a| a == deliver::FLUSH_ARG)
            && std::env::var_os(deliver::FLUSH_ENV).is_some_and(|v| *v == *shared.app);
        if flush_mode {
            deliver::run_flusher(&shared);
        }
        Tally {
            shared: Arc::new(shared),
        }
    }
}

/// Where the SDK keeps its files.
pub(crate) struct Dirs {
    /// `<config dir>/<app>/telemetry.json`: consent and install id.
    config_file: PathBuf,
    /// `<cache dir>/<app>/telemetry`: spool, running markers, breaker.
    cache: PathBuf,
}

/// What every part of the SDK reads; built once per process.
pub(crate) struct Shared {
    app: String,
    version: String,
    prefix: String,
    endpoint: Option<String>,
    key: Option<String>,
    dirs: Option<Dirs>,
    consent: Consent,
    settings: Option<consent::Settings>,
    debug: bool,
    notice: String,
    value_flags: Vec<String>,
    catch_interrupts: bool,
    spool_limits: SpoolLimits,
    flush_limit: Duration,
    context: OnceLock<Context>,
    scrubber: OnceLock<Scrubber>,
}

impl Shared {
    fn spool(&self) -> spool::Spool {
        let dir = self
            .dirs
            .as_ref()
            .map(|d| d.cache.join("spool"))
            .unwrap_or_default();
        spool::Spool::new(dir, self.spool_limits)
    }

    fn context(&self) -> &Context {
        self.context.get_or_init(Context::detect)
    }

    fn scrubber(&self) -> &Scrubber {
        self.scrubber
            .get_or_init(|| Scrubber::new(Identity::current()))
    }

    fn user_agent(&self) -> String {
        let c = self.context();
        UserAgent {
            app: self.app.clone(),
            version: self.version.clone(),
            os: Some(c.os.clone()),
            arch: Some(c.arch.clone()),
            ci: c.ci.clone(),
            agent: c.agent.clone(),
            container: c.container,
            wsl: c.wsl,
        }
        .to_string()
    }

    /// Puts a finished event in the spool (and on stderr in debug mode).
    fn record(&self, event: &tally_protocol::Event) {
        if self.debug
            && let Ok(json) = serde_json::to_string(event)
        {
            self.debug(format_args!("{json}"));
        }
        if let Err(e) = self.spool().append(event) {
            self.debug(format_args!("could not spool the event: {e}"));
        }
    }

    /// Settings for a test: telemetry on, `cache` as the cache dir, no
    /// config file, nothing read from the environment.
    #[cfg(test)]
    fn for_test(endpoint: &str, cache: &std::path::Path, spool_limits: SpoolLimits) -> Self {
        Shared {
            app: "t".to_owned(),
            version: "1".to_owned(),
            prefix: "T".to_owned(),
            endpoint: Some(endpoint.to_owned()),
            key: Some("tk_test".to_owned()),
            dirs: Some(Dirs {
                config_file: cache.join("telemetry.json"),
                cache: cache.to_owned(),
            }),
            consent: Consent {
                enabled: true,
                source: Source::Program,
            },
            settings: None,
            debug: false,
            notice: String::new(),
            value_flags: Vec::new(),
            catch_interrupts: false,
            spool_limits,
            flush_limit: Duration::from_secs(15),
            context: OnceLock::new(),
            scrubber: OnceLock::new(),
        }
    }

    /// A line on stderr in debug mode; silence otherwise.
    fn debug(&self, args: fmt::Arguments<'_>) {
        if self.debug {
            eprintln!("[{} telemetry] {args}", self.app);
        }
    }
}

/// The SDK's handle: consent, settings and the way to record runs. Build it
/// first thing in `main` with [`Tally::builder`].
pub struct Tally {
    shared: Arc<Shared>,
}

/// A `telemetry` subcommand a CLI mounts for its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Says whether telemetry is on and which setting decided; changes nothing.
    Status,
    /// Turns telemetry on in the config file.
    Enable,
    /// Turns telemetry off in the config file and deletes the spool.
    Disable,
    /// Prints the events waiting in the spool.
    Show,
    /// Deletes the spool.
    Purge,
    /// Asks the server to erase every event of this install, deletes the
    /// spool, and starts a new install id.
    Forget,
}

impl Tally {
    /// Starts configuring the SDK for `app` at `version`.
    pub fn builder(app: impl Into<String>, version: impl Into<String>) -> Builder {
        Builder {
            app: app.into(),
            version: version.into(),
            endpoint: None,
            key: None,
            notice: None,
            value_flags: Vec::new(),
            catch_interrupts: false,
            spool_limits: SpoolLimits::default(),
            flush_limit: Duration::from_secs(15),
            enabled: true,
        }
    }

    /// The consent decision of this process.
    pub fn consent(&self) -> &Consent {
        &self.shared.consent
    }

    /// The detected environment.
    pub fn context(&self) -> &Context {
        self.shared.context()
    }

    /// A User-Agent for the CLI's own HTTP requests, e.g.
    /// `mycli/1.4.2 (linux; x86_64; ci=github-actions)`; the grammar is in
    /// [`UserAgent`]. Tally's gateway-log import reads it back.
    pub fn user_agent(&self) -> String {
        self.shared.user_agent()
    }

    /// Starts recording a run of `command` (e.g. "deploy create") with the
    /// names of the flags the user typed. For clap, see `start_clap`.
    pub fn start(&self, command: &str, flags: &[&str]) -> Run {
        run::Run::start(
            &self.shared,
            command,
            flags.iter().map(|f| (*f).to_owned()).collect(),
            Default::default(),
        )
    }

    /// Runs a `telemetry` subcommand, writing what it has to say to `out`.
    ///
    /// ```
    /// # let telemetry = tally::Tally::builder("doc-example", "1.0.0").enabled(false).build();
    /// let mut out = Vec::new();
    /// telemetry.telemetry_command(tally::Action::Status, &mut out)?;
    /// assert!(String::from_utf8_lossy(&out).contains("Telemetry is"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn telemetry_command(&self, action: Action, out: &mut dyn Write) -> io::Result<()> {
        let shared = &self.shared;
        let no_dir = || io::Error::other("no config directory (is HOME set?)");
        match action {
            Action::Status => {
                writeln!(out, "{}", shared.consent)?;
                if shared.debug {
                    writeln!(
                        out,
                        "Debug mode ({}_TELEMETRY_DEBUG): events are printed as they are recorded, and a failed send says why.",
                        shared.prefix
                    )?;
                }
                if let Some(endpoint) = &shared.endpoint {
                    writeln!(out, "Endpoint: {endpoint}")?;
                }
                if let Some(settings) = &shared.settings {
                    writeln!(
                        out,
                        "Install id: {} (`telemetry forget` erases what it sent)",
                        settings.install_id
                    )?;
                }
                if let Some(dirs) = &shared.dirs {
                    let waiting = shared.spool().all().map(|e| e.len()).unwrap_or(0);
                    writeln!(
                        out,
                        "Waiting to be sent: {waiting} event(s) in {}",
                        dirs.cache.join("spool").display()
                    )?;
                }
                Ok(())
            }
            Action::Enable | Action::Disable => {
                let dirs = shared.dirs.as_ref().ok_or_else(no_dir)?;
                let enabled = action == Action::Enable;
                let settings = match &shared.settings {
                    Some(settings) => consent::Settings {
                        enabled,
                        ..settings.clone()
                    },
                    None => consent::Settings::new_install(enabled),
                };
                consent::save(&dirs.config_file, &settings)?;
                if enabled {
                    writeln!(out, "Telemetry enabled for {}.", shared.app)?;
                } else {
                    let purged = shared.spool().purge()?;
                    writeln!(
                        out,
                        "Telemetry disabled for {}; deleted {purged} unsent event(s).",
                        shared.app
                    )?;
                }
                if let Source::DoNotTrack(_) | Source::AppVariable { .. } = shared.consent.source {
                    writeln!(out, "Note: {}", shared.consent)?;
                }
                Ok(())
            }
            Action::Show => {
                let events = shared.spool().all()?;
                if events.is_empty() {
                    writeln!(out, "No events waiting to be sent.")?;
                }
                for event in events {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&event).map_err(io::Error::other)?
                    )?;
                }
                Ok(())
            }
            Action::Purge => {
                let purged = shared.spool().purge()?;
                writeln!(out, "Deleted {purged} unsent event(s).")
            }
            Action::Forget => forget::forget(shared, out),
        }
    }
}
