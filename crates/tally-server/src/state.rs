//! What every request handler shares, and the parts of it each takes
//! (axum's `FromRef`): a handler asks for the part it needs, not the whole.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::FromRef;
use tally_store::{App, Store, StoreError};

use crate::auth::AdminToken;
use crate::commit::{Committer, CommitterHandle};
use crate::config::Config;
use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;

/// The state of a running server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: StoreHandle,
    admin_token: AdminToken,
    /// Ingest key -> app name. Apps are added through this server while it
    /// runs, so the map is complete without asking the store per request.
    keys: RwLock<HashMap<String, Arc<str>>>,
    committer: CommitterHandle,
    metrics: Metrics,
    /// When an unknown key last made the server read the apps.
    apps_reloaded: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Unknown keys reread the apps at most this often.
const APPS_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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

    /// The store itself, for work that outlives a request's call (a
    /// streamed export, retention).
    pub(crate) fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.0)
    }
}

impl AppState {
    /// Opens the configured store and starts the commit thread. The
    /// [`Committer`] must be finished after the last request is answered.
    pub(crate) fn open(config: Config) -> Result<(Self, Committer), ServeError> {
        let admin_token = crate::auth::load_or_create_admin_token(&config.data_dir)?;
        let store: Arc<dyn Store> = Arc::from(config.store.open()?);
        let metrics = Metrics::default();
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
            .map(|app| (app.ingest_key, Arc::from(app.name)))
            .collect();
        let state = Self {
            inner: Arc::new(Inner {
                config,
                store: StoreHandle(store),
                admin_token: AdminToken::new(&admin_token),
                keys: RwLock::new(keys),
                committer: committer.handle(),
                metrics,
                apps_reloaded: std::sync::Mutex::new(None),
            }),
        };
        Ok((state, committer))
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

    pub(crate) fn admin_token(&self) -> &str {
        self.inner.admin_token.as_str()
    }

    /// The app of an ingest key. An unknown key makes the server read the
    /// apps again (at most once a second), since with a shared store an app
    /// may have been added through another collector or directly.
    pub(crate) fn app_of_key(&self, key: &str) -> Option<Arc<str>> {
        {
            let keys = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
            if let Some(app) = keys.get(key) {
                return Some(Arc::clone(app));
            }
        }
        let mut reloaded = self
            .inner
            .apps_reloaded
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if reloaded.is_some_and(|at| at.elapsed() < APPS_RELOAD_EVERY) {
            return None;
        }
        *reloaded = Some(std::time::Instant::now());
        let apps = match self.inner.store.store().apps() {
            Ok(apps) => apps,
            Err(e) => {
                tracing::warn!(error = %e, "reading the apps failed");
                return None;
            }
        };
        for app in &apps {
            self.register(app);
        }
        apps.into_iter()
            .find(|a| a.ingest_key == key)
            .map(|a| Arc::from(a.name))
    }

    pub(crate) fn register(&self, app: &App) {
        let mut keys = self.inner.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.insert(app.ingest_key.clone(), Arc::from(app.name.as_str()));
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
