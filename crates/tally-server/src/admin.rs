//! The admin API: apps and export. Every handler takes [`Admin`], so none
//! runs without the admin token.

use std::ops::ControlFlow;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tally_store::{App, ExportFilter};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{Json, Query};
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
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = store.shared();
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK);
        let result = store.export(&filter, &mut |event| {
            if serde_json::to_writer(&mut chunk, &event).is_err() {
                return ControlFlow::Break(());
            }
            chunk.push(b'\n');
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if tx.blocking_send(Ok(full.into())).is_err() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        let last = match result {
            Ok(_) => Ok(chunk.into()),
            Err(e) => {
                tracing::error!(error = %e, "Export failed midway; the response is cut off.");
                Err(std::io::Error::other(e.to_string()))
            }
        };
        let _ = tx.blocking_send(last);
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

const CHUNK: usize = 64 * 1024;
