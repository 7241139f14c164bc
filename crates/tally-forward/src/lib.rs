//! Forwarding: the events a Tally server stores, passed on to the tools a
//! team already uses (PostHog, Segment and the collectors that speak its
//! API, and signed webhooks), once each per destination.
//!
//! The CLIs send to the endpoint their maintainers own; what goes on from
//! there, and which fields of it, is the maintainers' choice, made in the
//! server's config file. Each app has an [`Outbox`] in the data dir, which
//! the server appends every stored event to before it acknowledges it;
//! each destination has a thread that reads the outbox from its own
//! cursor, sends batches with retries and backoff, saves its cursor after
//! each delivered batch, and keeps the events a destination refuses as
//! dead letters for `tally forward replay`.
//!
//! Once per destination means: every stored event is sent until the
//! destination took it, and a delivered batch is not sent again, except
//! when the server dies between the destination's answer and the saving of
//! the cursor. Then that one batch is sent again, with the same event ids
//! (PostHog's `uuid`, Segment's `messageId`, the webhook events' `id`),
//! which those destinations deduplicate on.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use tally_forward::{AppForwarding, Forwarder, Options};
//! let destination = toml::from_str(r#"
//!     name = "hooks"
//!     kind = "webhook"
//!     url = "https://hooks.example.com/tally"
//!     secret_env = "TALLY_HOOK_SECRET"
//! "#)?;
//! let apps = BTreeMap::from([("mycli".to_owned(), AppForwarding {
//!     destinations: vec![destination],
//!     invocation_event: "invocation".into(),
//! })]);
//! let forwarder = Forwarder::start("tally-data".as_ref(), apps, Options::default())?;
//! // The server appends each committed group to forwarder.outbox("mycli") ...
//! forwarder.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

mod config;
mod encode;
mod erasure;
mod outbox;
mod sender;
mod state;

pub use config::{DEFAULT_FIELDS, Destination, Field, Kind};
pub use outbox::{Cursor, Outbox, Outgoing};
pub use sender::{Backoff, Stats};
pub use state::{DeadLetter, State, Status, dead_letters, forward_dir, replay, status};

/// Why forwarding cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A file of the forwarding state could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file of the forwarding state holds what Tally never writes.
    #[error("{}: not a file Tally wrote (damaged?)", .0.display())]
    Corrupt(PathBuf),
    /// A destination in the config cannot be used.
    #[error("forwarding for app {app}: {reason}")]
    Config {
        /// The app.
        app: String,
        /// What is wrong.
        reason: String,
    },
    /// `tally forward` was given a destination that never forwarded.
    #[error("app {app} has no destination {destination} in this data dir")]
    NoSuchDestination {
        /// The app.
        app: String,
        /// The destination.
        destination: String,
    },
    /// `tally forward replay` while an earlier replay is still being sent.
    #[error(
        "{destination}: an earlier replay is still being sent; try again once `tally forward status` no longer shows it"
    )]
    ReplayInProgress {
        /// The destination.
        destination: String,
    },
}

impl ForwardError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What one app forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppForwarding {
    /// Where its events go.
    pub destinations: Vec<Destination>,
    /// The name an invocation is sent under to PostHog and Segment (an
    /// event with a name of its own keeps it).
    pub invocation_event: String,
}

/// How forwarding behaves, beyond what the config file says.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The waits between attempts.
    pub backoff: Backoff,
    /// How many ids each outbox remembers (see [`Outbox::open`]).
    pub memory: usize,
    /// How long one request to a destination may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            memory: tally_store::RecentIds::DEFAULT_CAPACITY,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Checks an app's destinations as [`Forwarder::start`] will: names,
/// URLs, secrets (which must be set, in the file or the environment).
pub fn check(app: &str, destinations: &[Destination]) -> Result<(), ForwardError> {
    secrets(app, destinations).map(drop)
}

/// Each destination's secret, once all are checked (see [`check`]).
fn secrets(app: &str, destinations: &[Destination]) -> Result<Vec<config::Secret>, ForwardError> {
    let config = |reason| ForwardError::Config {
        app: app.into(),
        reason,
    };
    destinations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if destinations[..i].iter().any(|other| other.name == d.name) {
                return Err(config(format!("two destinations are named {}", d.name)));
            }
            d.secret().map_err(config)
        })
        .collect()
}

/// The running forwarding of a server: an outbox per app that forwards,
/// and a thread per destination.
pub struct Forwarder {
    outboxes: BTreeMap<String, Arc<Outbox>>,
    erasing: Erasing,
    stats: Vec<(String, String, Arc<Stats>)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("apps", &self.outboxes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Forwarder {
    /// Opens the outboxes under `data_dir/forward` and starts a thread per
    /// destination, each going on from where it was.
    pub fn start(
        data_dir: &Path,
        apps: BTreeMap<String, AppForwarding>,
        options: Options,
    ) -> Result<Self, ForwardError> {
        let stop = Arc::new(AtomicBool::new(false));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(options.timeout))
            .build()
            .new_agent();
        let now_us = tally_rollup::micros(time::OffsetDateTime::now_utc());
        let mut forwarder = Self {
            outboxes: BTreeMap::new(),
            erasing: Erasing::default(),
            stats: Vec::new(),
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        for (app, forwarding) in apps {
            if forwarding.destinations.is_empty() {
                continue;
            }
            let secrets = secrets(&app, &forwarding.destinations)?;
            let app_dir = forward_dir(data_dir).join(&app);
            let outbox = Arc::new(Outbox::open(
                &app_dir.join(state::OUTBOX_DIR),
                options.memory,
                now_us,
            )?);
            let mut told = AppErasing {
                outbox: Arc::clone(&outbox),
                queues: Vec::new(),
                untold: Vec::new(),
            };
            for (destination, secret) in forwarding.destinations.into_iter().zip(secrets) {
                let dir = app_dir.join(&destination.name);
                std::fs::create_dir_all(&dir).map_err(|e| ForwardError::io(&dir, e))?;
                let signing = match &secret {
                    config::Secret::Signing(key) => Some(key.as_slice()),
                    config::Secret::Key(_) => None,
                };
                let deleter = erasure::Deleter::of(&destination, signing).map_err(|reason| {
                    ForwardError::Config {
                        app: app.clone(),
                        reason,
                    }
                })?;
                let erasing = match deleter {
                    Some(deleter) => {
                        let queue = Arc::new(erasure::Erasures::new(&dir));
                        told.queues.push(Arc::clone(&queue));
                        Some((queue, deleter))
                    }
                    None => {
                        told.untold.push(destination.name.clone());
                        None
                    }
                };
                // Before any thread runs: no segment is pruned that a
                // destination still has to read.
                let reader = outbox.register(State::load(&dir)?.cursor);
                let stats = Arc::new(Stats::of(&outbox));
                forwarder
                    .stats
                    .push((app.clone(), destination.name.clone(), Arc::clone(&stats)));
                let sender = sender::Sender {
                    dir,
                    secret,
                    destination,
                    reader,
                    invocation_event: forwarding.invocation_event.clone(),
                    outbox: Arc::clone(&outbox),
                    stats,
                    backoff: options.backoff,
                    stop: Arc::clone(&stop),
                    agent: agent.clone(),
                    erasing,
                    app: app.clone(),
                };
                let name = format!("tally-forward-{}", sender.destination.name);
                let thread = std::thread::Builder::new()
                    .name(name)
                    .spawn(move || sender.run())
                    .map_err(|e| ForwardError::io(data_dir, e))?;
                forwarder.threads.push(thread);
            }
            Arc::make_mut(&mut forwarder.erasing.apps).insert(app.clone(), told);
            forwarder.outboxes.insert(app, outbox);
        }
        Ok(forwarder)
    }

    /// What passes erasures on to the destinations.
    pub fn erasing(&self) -> Erasing {
        self.erasing.clone()
    }

    /// The outbox of `app`, if it forwards.
    pub fn outbox(&self, app: &str) -> Option<&Arc<Outbox>> {
        self.outboxes.get(app)
    }

    /// Each destination's counts, as they go on changing.
    pub fn stats(&self) -> Vec<DestinationStats> {
        self.stats
            .iter()
            .map(|(app, destination, stats)| DestinationStats {
                app: app.clone(),
                destination: destination.clone(),
                stats: Arc::clone(stats),
            })
            .collect()
    }

    /// Stops every destination's thread (a request under way is given its
    /// timeout) and waits for them; what is not delivered yet is sent by
    /// the next start. Dropping the forwarder does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for outbox in self.outboxes.values() {
            outbox.close();
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("A forwarding thread panicked.");
            }
        }
    }
}

/// Passes erasures on to each app's destinations (see
/// [`Forwarder::erasing`]); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Erasing {
    apps: Arc<BTreeMap<String, AppErasing>>,
}

#[derive(Debug, Clone)]
struct AppErasing {
    outbox: Arc<Outbox>,
    /// The erasures of each destination that can delete installs ...
    queues: Vec<Arc<erasure::Erasures>>,
    /// ... and the names of those that cannot (PostHog and Segment
    /// without an erasure key).
    untold: Vec<String>,
}

impl Erasing {
    /// Queues the erasure of `install` of `app` for each destination that
    /// can delete it, to go after the events the outbox holds now; returns
    /// the names of the destinations that cannot be told.
    ///
    /// ```
    /// let erasing = tally_forward::Erasing::default();
    /// let untold = erasing.erase("mycli", uuid::Uuid::nil())?;
    /// assert!(untold.is_empty(), "an app that forwards nowhere");
    /// # Ok::<(), tally_forward::ForwardError>(())
    /// ```
    pub fn erase(&self, app: &str, install: uuid::Uuid) -> Result<Vec<String>, ForwardError> {
        let Some(told) = self.apps.get(app) else {
            return Ok(Vec::new());
        };
        let erasure = erasure::Erasure {
            install_id: install,
            after: told.outbox.end(),
            at: time::OffsetDateTime::now_utc(),
        };
        for queue in &told.queues {
            queue.add(&erasure)?;
        }
        Ok(told.untold.clone())
    }
}

/// One destination's counts (see [`Forwarder::stats`]).
#[derive(Debug, Clone)]
pub struct DestinationStats {
    /// The app whose events it gets.
    pub app: String,
    /// Its name.
    pub destination: String,
    /// Its counts.
    pub stats: Arc<Stats>,
}
