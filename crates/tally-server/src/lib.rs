//! Tally's HTTP server: ingest from CLIs in the field, export and admin for
//! the maintainers, metrics for their monitoring.
//!
//! Depend on this crate to embed a Tally server (the `tally` binary does);
//! SDKs never do. [`serve`] runs a server on a listener until a shutdown
//! future resolves, then drains: it stops accepting, commits every batch it
//! acknowledged or is about to, and returns. [`app`] builds the router alone,
//! for tests that call it without a socket.
//!
//! Routes:
//! - `POST /v1/batch` (ingest key): a batch of events, see `docs/protocol.md`.
//! - `DELETE /v1/installs/{id}` (ingest key and the install's secret), and
//!   `DELETE /api/v1/installs/{id}[?app=NAME]` (admin token): erase an
//!   install, see `erase.rs`.
//! - `GET /v1/apps/{app}/schema` (open): what the app's CLI may send.
//! - `GET /public/{app}`, `GET /public/{app}/{report}.json` (open, off
//!   unless the app publishes): its public page, see `public.rs`.
//! - `GET /api/v1/apps`, `POST /api/v1/apps` (admin token): list and add apps.
//! - `GET /api/v1/apps/{app}/gateway-key`, `POST /api/v1/import?app=NAME`
//!   (admin token): what `tally import-logs` hashes users with, and the
//!   gateway's requests it sends.
//! - `GET /api/v1/export` (admin token): stored events as NDJSON.
//! - `GET /api/v1/retention` (admin token): what retention forgets of each
//!   app, and from which day.
//! - `GET /api/v1/reports/{name}` (admin token): a report as JSON.
//! - `POST /api/v1/sessions`, `DELETE /api/v1/sessions`: the dashboard's
//!   login link and logout, see `sessions.rs`.
//! - `GET /healthz`, `GET /metrics` (open): liveness and Prometheus metrics.
//! - `GET /` and `/assets/*` (open): the dashboard, which reads with the
//!   admin token the user gives it.
//!
//! Every error answers `{"error": code, "reason": ..., "field": ...}` with
//! one status per code (`error.rs`); handlers take their input through the
//! extractors in `extract.rs`, whose rejections are such errors too.
//!
//! Features (both default): `duckdb`, the embedded store, and `clickhouse`,
//! the shared one (see `tally-store`); a server built without one refuses a
//! config that names it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tally_server::{Config, serve};
//! let config = Config::new("tally-data".into());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(config, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod body;
mod budget;
mod cardinality;
mod commit;
mod compat;
mod config;
mod config_file;
mod dashboard;
mod erase;
mod error;
mod extract;
mod ingest;
mod listen;
mod metrics;
mod ops;
mod public;
mod rate;
mod reports;
mod schema;
mod sessions;
mod stall;
mod state;

pub use auth::{ADMIN_TOKEN_FILE, load_or_create_admin_token};
pub use cardinality::CardinalityLimits;
pub use compat::InvocationEvents;
pub use config::{AppRetention, Config, PUBLIC_MIN_INSTALLS, Public, RetentionStatus};
pub use config_file::{AppSettings, ConfigFile, ConfigFileError};
pub use error::ServeError;
pub use listen::ConnectionLimits;
pub use rate::{Rate, RateLimits};
pub use state::AppState;

use std::future::Future;

use axum::Router;
use axum::routing::{delete, get, post};

/// The router of a Tally server over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/batch", post(ingest::batch))
        .route("/v1/installs/{install_id}", delete(erase::by_install))
        .route("/v1/apps/{app}/schema", get(schema::published))
        .route("/public/{app}", get(public::page))
        .route("/public/{app}/{report}", get(public::json))
        .merge(compat::routes())
        .route("/api/v1/apps", get(admin::list_apps).post(admin::add_app))
        .route("/api/v1/apps/{app}/gateway-key", get(admin::gateway_key))
        .route("/api/v1/import", post(ingest::import))
        .route("/api/v1/installs/{install_id}", delete(erase::by_admin))
        .route("/api/v1/export", get(admin::export))
        .route(
            "/api/v1/sessions",
            post(sessions::open).delete(sessions::close),
        )
        .route("/api/v1/retention", get(admin::retention))
        .route("/api/v1/reports/{name}", get(reports::report))
        .merge(ops::routes())
        .merge(dashboard::routes())
        .with_state(state)
}

/// Runs a server on `listener` until `shutdown` resolves, then drains.
///
/// Opens the store `config.store` names (creating the admin token in
/// `config.data_dir` on first start) and returns once every accepted batch
/// is committed.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::open(config)?.run(listener, shutdown).await
}

/// A server whose store is open, not yet listening: open it first to learn
/// that the data dir is usable, then [`Server::run`] it.
pub struct Server {
    state: AppState,
    committer: commit::Committer,
    forwarder: tally_forward::Forwarder,
}

impl Server {
    /// Opens the store (refusing a data dir another process holds) and
    /// starts the commit thread.
    pub fn open(config: Config) -> Result<Self, ServeError> {
        let (state, committer, forwarder) = AppState::open(config)?;
        Ok(Self {
            state,
            committer,
            forwarder,
        })
    }

    /// The router over this server's state, for tests that call it without
    /// a socket (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        app(self.state.clone())
    }

    /// The admin token of the data dir.
    pub fn admin_token(&self) -> &str {
        self.state.admin_token()
    }

    /// A new one-time code for the dashboard's login link
    /// (`/#login=CODE`), good for 15 minutes.
    pub fn login_code(&self) -> String {
        self.state.sessions().code()
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting,
    /// gives open requests the drain timeout to finish, and commits
    /// everything accepted before returning.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = listener.local_addr().map_err(ServeError::Listen)?;
        tracing::info!(%addr, "Tally is listening.");
        let mut background = tokio::task::JoinSet::new();
        if self.state.config().retains() {
            background.spawn(retention(
                self.state.store().shared(),
                self.state.config().clone(),
            ));
        }
        background.spawn(self.state.clone().refresh_keys());
        let config = self.state.config();
        let limits = config.connections.clone();
        // Behind a proxy every connection comes from it.
        let per_client = config.rate_limits.client_header.is_none();
        let metrics = self.state.metrics().clone();
        listen::serve(
            listener,
            app(self.state),
            &limits,
            per_client,
            &metrics,
            shutdown,
        )
        .await;
        background.shutdown().await;
        tracing::info!("Draining: committing what was accepted.");
        self.committer.finish();
        // After the last commit: everything acknowledged is in the outbox.
        self.forwarder.stop();
        tracing::info!("Stopped.");
        Ok(())
    }
}

/// Forgets what the config keeps no longer: every app alike when no app
/// has days of its own (whole partitions, where the store has them), else
/// app by app.
fn retain(store: &dyn tally_store::Store, config: &Config) -> Result<(), tally_store::StoreError> {
    if config.app_retention.is_empty() {
        return config
            .retention_days
            .map_or(Ok(()), |days| store.retain_days(days));
    }
    // One app's failure is said, and the others are retained still.
    let mut failed = None;
    for app in store.apps()? {
        let keep = config.retention_of(&app.name);
        if (keep.events_days.is_some() || keep.rollups_days.is_some())
            && let Err(e) = store.retain_app(&app.name, keep.events_days, keep.rollups_days)
        {
            tracing::warn!(app = %app.name, error = %e, "retention of an app failed");
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Forgets what the config keeps no longer, now and every hour.
async fn retention(store: std::sync::Arc<dyn tally_store::Store>, config: Config) {
    let config = std::sync::Arc::new(config);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let (store, config) = (store.clone(), config.clone());
        match tokio::task::spawn_blocking(move || retain(&*store, &config)).await {
            Ok(Ok(())) => tracing::debug!("retention applied"),
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed; trying again in an hour"),
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}
