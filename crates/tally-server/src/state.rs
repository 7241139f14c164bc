//! What every request handler shares, and the parts of it each takes
//! (axum's `FromRef`): a handler asks for the part it needs, not the whole.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::FromRef;
use tally_store::{App, Store, StoreError};

use crate::auth::AdminToken;
use crate::budget::Budget;
use crate::cardinality::Cardinality;
use crate::commit::{Committer, CommitterHandle};
use crate::config::Config;
use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;
use crate::rate::Limiter;

/// The state of a running server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: StoreHandle,
    admin_token: AdminToken,
    /// The dashboard's login codes and sessions.
    sessions: crate::sessions::Sessions,
    /// The public pages' answers made lately.
    public_answers: crate::public::Answers,
    /// Ingest key -> app. Apps are added through this server while it
    /// runs, so the map is complete without asking the store per request.
    keys: RwLock<HashMap<String, KeyApp>>,
    committer: CommitterHandle,
    metrics: Metrics,
    /// Woken by an unknown key: the key refresher reads the apps again.
    keys_wanted: tokio::sync::Notify,
    budget: Budget,
    /// Leave to prepare a request's events (inflate, parse, scrub, encode)
    /// on a blocking thread: a few per core, so that what requests hold
    /// while they are parsed, before their events can be counted, is
    /// bounded, and the blocking pool never grows to a thread a request.
    preparing: Arc<tokio::sync::Semaphore>,
    limiter: Limiter,
    cardinality: Cardinality,
    /// Held by the erasure that runs: one at a time, as each is a pass
    /// over an app's events.
    erasing: Arc<tokio::sync::Mutex<()>>,
    /// The outbox of each app that forwards (see `tally_forward`).
    outboxes: HashMap<String, Arc<tally_forward::Outbox>>,
    /// What passes erasures on to those apps' destinations.
    forward_erasing: tally_forward::Erasing,
}

/// The app an ingest key belongs to, as requests need it; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct KeyApp {
    /// The app's name.
    pub(crate) name: Arc<str>,
    /// The app's secret salt (see [`App::salt`]).
    pub(crate) salt: Arc<str>,
}

impl From<&App> for KeyApp {
    fn from(app: &App) -> Self {
        Self {
            name: Arc::from(app.name.as_str()),
            salt: Arc::from(app.salt.as_str()),
        }
    }
}

/// Requests prepared at once, per core.
const PREPARING_PER_CORE: usize = 2;

/// The apps are read again at most this often when unknown keys come in,
const KEYS_RELOAD_AT_MOST: Duration = Duration::from_secs(1);
/// and at least this often, for apps added through another collector.
const KEYS_RELOAD_AT_LEAST: Duration = Duration::from_secs(30);

/// The server's store, for handlers: its calls block, so they run on
/// tokio's blocking threads ([`StoreHandle::call`]).
#[derive(Clone)]
pub(crate) struct StoreHandle(Arc<dyn Store>);

impl StoreHandle {
    /// The store, for what does not block (staging events, counters).
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.0
    }

    /// Runs `call` on the store on a blocking thread; its error is the
    /// API's (see `From<StoreError> for ApiError`).
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || call(&*store))
            .await
            .map_err(|e| ApiError::Unavailable(Box::new(e)))?
            .map_err(ApiError::from)
    }

    /// Fails when the store cannot show every event it acknowledged, so
    /// that a report or export is refused rather than silently short.
    pub(crate) fn complete(&self) -> Result<(), ApiError> {
        match self.0.failure() {
            Some(failure) => Err(ApiError::Incomplete(format!(
                "answers would leave out acknowledged events: {failure}"
            ))),
            None => Ok(()),
        }
    }

    /// The store itself, for work that outlives a request's call (a
    /// streamed export, retention).
    pub(crate) fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.0)
    }
}

/// How long a request waits for its turn to be prepared, at most.
const PREPARE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl AppState {
    /// Opens the configured store, starts the commit thread and the
    /// forwarding. The [`Committer`] must be finished after the last
    /// request is answered, and the forwarder stopped after it.
    pub(crate) fn open(
        config: Config,
    ) -> Result<(Self, Committer, tally_forward::Forwarder), ServeError> {
        config.check()?;
        let admin_token = crate::auth::load_or_create_admin_token(&config.data_dir)?;
        let store: Arc<dyn Store> = Arc::from(config.store.open()?);
        let metrics = Metrics::default();
        let forwarding = config
            .forward
            .iter()
            .map(|(app, destinations)| {
                let forwarding = tally_forward::AppForwarding {
                    destinations: destinations.clone(),
                    invocation_event: config.invocation_events.of(app).to_owned(),
                };
                (app.clone(), forwarding)
            })
            .collect();
        let forwarder =
            tally_forward::Forwarder::start(&config.data_dir, forwarding, config.forward_options)?;
        metrics.register_forwarding(forwarder.stats());
        let outboxes = config
            .forward
            .keys()
            .filter_map(|app| Some((app.clone(), Arc::clone(forwarder.outbox(app)?))))
            .collect();
        let erasing = forwarder.erasing();
        let committer = Committer::start(
            store.writer()?,
            config.queue_events,
            config.max_group_events,
            metrics.clone(),
        )
        .map_err(ServeError::Thread)?;
        let keys = store
            .apps()?
            .into_iter()
            .map(|app| (app.ingest_key.clone(), KeyApp::from(&app)))
            .collect();
        let budget = Budget::new(config.max_in_flight_bytes);
        let sessions = crate::sessions::Sessions::default();
        let limiter = Limiter::new(&config.rate_limits, config.limits.max_events_per_batch);
        let cardinality = Cardinality::new(config.cardinality.clone());
        let state = Self {
            inner: Arc::new(Inner {
                cardinality,
                budget,
                preparing: Arc::new(tokio::sync::Semaphore::new(
                    PREPARING_PER_CORE
                        * std::thread::available_parallelism().map_or(1, usize::from),
                )),
                limiter,
                erasing: Arc::new(tokio::sync::Mutex::new(())),
                outboxes,
                forward_erasing: erasing,
                config,
                store: StoreHandle(store),
                admin_token: AdminToken::new(&admin_token, sessions.clone()),
                sessions,
                public_answers: crate::public::Answers::default(),
                keys: RwLock::new(keys),
                committer: committer.handle(),
                metrics,
                keys_wanted: tokio::sync::Notify::new(),
            }),
        };
        Ok((state, committer, forwarder))
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &StoreHandle {
        &self.inner.store
    }

    pub(crate) fn committer(&self) -> &CommitterHandle {
        &self.inner.committer
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn public_answers(&self) -> &crate::public::Answers {
        &self.inner.public_answers
    }

    pub(crate) fn sessions(&self) -> &crate::sessions::Sessions {
        &self.inner.sessions
    }

    pub(crate) fn admin_token(&self) -> &str {
        self.inner.admin_token.as_str()
    }

    /// Whether `token` is the admin token (compared in constant time).
    pub(crate) fn is_admin(&self, token: &str) -> bool {
        self.inner.admin_token.is(token)
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// Leave to prepare one request's events; waits for a turn, for
    /// [`PREPARE_WAIT`] at most (then 429): a request waiting holds its
    /// body in the memory budget, and its client would rather try again
    /// than wait behind a flood.
    pub(crate) async fn preparing(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let turn = Arc::clone(&self.inner.preparing).acquire_owned();
        match tokio::time::timeout(PREPARE_WAIT, turn).await {
            Ok(Ok(permit)) => Ok(permit),
            // Never closed: the error cannot come, and is a 503 if it did.
            Ok(Err(e)) => Err(ApiError::Unavailable(Box::new(e))),
            Err(_) => Err(ApiError::Busy { retry_after_s: 1 }),
        }
    }

    pub(crate) fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// Leave to erase: held while an erasure runs.
    pub(crate) fn erasing(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.inner.erasing
    }

    pub(crate) fn cardinality(&self) -> &Cardinality {
        &self.inner.cardinality
    }

    /// What passes erasures on to the destinations.
    pub(crate) fn forward_erasing(&self) -> &tally_forward::Erasing {
        &self.inner.forward_erasing
    }

    /// The outbox of `app`, if it forwards.
    pub(crate) fn outbox(&self, app: &str) -> Option<&Arc<tally_forward::Outbox>> {
        self.inner.outboxes.get(app)
    }

    /// The app of an ingest key, from memory: never a call to the store on
    /// the request's path, so unknown keys are answered at once. An unknown
    /// key wakes the key refresher (see [`AppState::refresh_keys`]), since
    /// with a shared store an app may have been added through another
    /// collector; the client's retry then finds it.
    pub(crate) fn app_of_key(&self, key: &str) -> Option<KeyApp> {
        let keys = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
        let app = keys.get(key).cloned();
        if app.is_none() {
            self.inner.keys_wanted.notify_one();
        }
        app
    }

    /// The app called `name`, from memory (as [`AppState::app_of_key`]).
    pub(crate) fn app_named(&self, name: &str) -> Option<KeyApp> {
        let keys = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
        let app = keys.values().find(|app| &*app.name == name).cloned();
        if app.is_none() {
            self.inner.keys_wanted.notify_one();
        }
        app
    }

    /// Reads the apps again whenever an unknown key asks for it (at most
    /// once a second) and every 30 seconds in any case; forgets idle rate
    /// limit buckets on the way. Runs until aborted.
    pub(crate) async fn refresh_keys(self) {
        loop {
            tokio::select! {
                () = self.inner.keys_wanted.notified() => {}
                () = tokio::time::sleep(KEYS_RELOAD_AT_LEAST) => {}
            }
            match self.store().call(|store| store.apps()).await {
                Ok(apps) => apps.iter().for_each(|app| self.register(app)),
                Err(e) => tracing::warn!(error = %e, "Reading the apps failed."),
            }
            self.inner.limiter.forget_idle();
            tokio::time::sleep(KEYS_RELOAD_AT_MOST).await;
        }
    }

    pub(crate) fn register(&self, app: &App) {
        let mut keys = self.inner.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.insert(app.ingest_key.clone(), KeyApp::from(app));
    }
}

impl FromRef<AppState> for AdminToken {
    fn from_ref(state: &AppState) -> Self {
        state.inner.admin_token.clone()
    }
}

impl FromRef<AppState> for StoreHandle {
    fn from_ref(state: &AppState) -> Self {
        state.inner.store.clone()
    }
}

impl FromRef<AppState> for Metrics {
    fn from_ref(state: &AppState) -> Self {
        state.inner.metrics.clone()
    }
}

impl FromRef<AppState> for CommitterHandle {
    fn from_ref(state: &AppState) -> Self {
        state.inner.committer.clone()
    }
}
