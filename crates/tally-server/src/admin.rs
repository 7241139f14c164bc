//! The admin API: apps and export. Every handler takes [`Admin`], so none
//! runs without the admin token.

use std::ops::ControlFlow;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tally_protocol::StoredEvent;
use tally_store::{App, ExportFilter};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::{AppState, StoreHandle};

pub(crate) async fn list_apps(
    _: Admin,
    State(store): State<StoreHandle>,
) -> Result<Json<Vec<App>>, ApiError> {
    Ok(Json(store.call(|store| store.apps()).await?))
}

#[derive(Deserialize)]
pub(crate) struct NewApp {
    name: String,
}

pub(crate) async fn add_app(
    _: Admin,
    State(state): State<AppState>,
    Json(new): Json<NewApp>,
) -> Result<(StatusCode, Json<App>), ApiError> {
    let app = state
        .store()
        .call(move |store| store.add_app(&new.name))
        .await?;
    state.register(&app);
    tracing::info!(app = %app.name, "App added.");
    Ok((StatusCode::CREATED, Json(app)))
}

/// `GET /api/v1/retention`: what retention forgets of each app.
pub(crate) async fn retention(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<crate::RetentionStatus>>, ApiError> {
    let apps = state.store().call(|store| store.apps()).await?;
    let names = apps.iter().map(|a| a.name.as_str());
    Ok(Json(state.config().retention_status(names)))
}

/// What `tally import-logs` needs of an app to import through its server.
#[derive(serde::Serialize)]
pub(crate) struct GatewayKey {
    /// [`tally_gateway::event::user_key`] of the app's salt, in hex.
    user_key: String,
}

/// `GET /api/v1/apps/{app}/gateway-key`: the secret gateway users are
/// hashed with, for an import that sends its events to the server. The
/// salt itself never leaves the server.
pub(crate) async fn gateway_key(
    _: Admin,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<GatewayKey>, ApiError> {
    let app = state
        .app_named(&app)
        .ok_or_else(|| ApiError::NotFound(format!("no app {app:?}")))?;
    let key = tally_gateway::event::user_key(&app.salt);
    Ok(Json(GatewayKey {
        user_key: key.iter().map(|b| format!("{b:02x}")).collect(),
    }))
}

/// The query of `GET /api/v1/export`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    app: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn time_param(field: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| OffsetDateTime::parse(v, &Rfc3339))
        .transpose()
        .map_err(|e| {
            ApiError::bad(
                "invalid_query",
                field,
                format!("{field} is not an RFC 3339 time: {e}"),
            )
        })
}

/// Streams the selected events as NDJSON, read on a blocking thread and
/// sent in chunks; a client that goes away stops the read.
///
/// The status is sent before the first row is read, so an export that fails
/// midway (the store fails, or an event cannot be written) cannot change it
/// to an error: instead the body ends with an error, which cuts the chunked
/// transfer off before its last chunk. The client sees an incomplete
/// response, never one that looks whole, and never half a line.
pub(crate) async fn export(
    _: Admin,
    State(store): State<StoreHandle>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let filter = ExportFilter {
        app: query.app,
        since: time_param("since", query.since.as_deref())?,
        until: time_param("until", query.until.as_deref())?,
    };
    store.complete()?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = store.shared();
    tokio::task::spawn_blocking(move || {
        let mut lines = Lines {
            tx,
            chunk: Vec::with_capacity(CHUNK),
            failure: None,
        };
        let result = store.export(&filter, &mut |event| lines.push(&event));
        lines.finish(result.err().map(|e| e.to_string()));
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

const CHUNK: usize = 64 * 1024;

/// An export's NDJSON lines, sent in chunks of about [`CHUNK`] bytes.
struct Lines {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunk: Vec<u8>,
    /// Why the export stopped before the store's last row, unless the
    /// client left.
    failure: Option<String>,
}

impl Lines {
    fn push(&mut self, event: &StoredEvent) -> ControlFlow<()> {
        let start = self.chunk.len();
        if let Err(e) = serde_json::to_writer(&mut self.chunk, event) {
            self.chunk.truncate(start);
            self.failure = Some(format!("event {} cannot be written: {e}", event.event.id));
            return ControlFlow::Break(());
        }
        self.chunk.push(b'\n');
        if self.chunk.len() >= CHUNK {
            let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            if self.tx.blocking_send(Ok(full.into())).is_err() {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Sends the lines still held, then the failure if there is one: the
    /// store's (`store_failure`) or the one that stopped [`push`](Self::push).
    fn finish(self, store_failure: Option<String>) {
        let _ = self.tx.blocking_send(Ok(self.chunk.into()));
        if let Some(failure) = store_failure.or(self.failure) {
            tracing::error!(%failure, "Export failed midway; the response is cut off.");
            let _ = self.tx.blocking_send(Err(std::io::Error::other(failure)));
        }
    }
}
