//! What every request handler shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tally_store::{App, ClickHouseStore, DuckDbStore, Store};

use crate::commit::{Committer, CommitterHandle};
use crate::config::Config;
use crate::error::ServeError;
use crate::metrics::Metrics;

/// The state of a running server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    admin_token: String,
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

impl AppState {
    /// Opens the data dir's store and starts the commit thread. The
    /// [`Committer`] must be finished after the last request is answered.
    pub(crate) fn open(config: Config) -> Result<(Self, Committer), ServeError> {
        let admin_token = crate::auth::load_or_create_admin_token(&config.data_dir)?;
        let store: Arc<dyn Store> = match &config.store {
            Some(url) => Arc::new(ClickHouseStore::open(url)?),
            None => Arc::new(DuckDbStore::open_with(&config.data_dir, config.recent_ids)?),
        };
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
                store,
                admin_token,
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

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn committer(&self) -> &CommitterHandle {
        &self.inner.committer
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn admin_token(&self) -> &str {
        &self.inner.admin_token
    }

    pub(crate) fn is_admin_token(&self, token: &str) -> bool {
        // Constant-time: the admin token is the one real secret.
        let (a, b) = (token.as_bytes(), self.inner.admin_token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        let apps = match self.inner.store.apps() {
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
