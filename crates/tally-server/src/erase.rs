//! Erasing one install: asked by the install itself (`DELETE
//! /v1/installs/{id}`, with the app's ingest key and the install's secret,
//! see [`tally_protocol::InstallSecret`]) or by an admin (`DELETE
//! /api/v1/installs/{id}`).
//!
//! A secret that is not the install's is refused before anything is looked
//! up, with the same answer whether the install exists or not, so no one
//! else can erase an install or learn that it ran. The log says which app
//! lost an install, never which. The erasure is then passed on to the
//! app's forwarding destinations that can delete (see `tally_forward`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::listen::Peer;
use crate::state::AppState;

/// The header an install's secret comes in.
pub(crate) const SECRET_HEADER: &str = "tally-install-secret";

/// What an erasure answers.
#[derive(Debug, Serialize)]
pub(crate) struct Erased {
    /// Raw events erased (the rollups were corrected too).
    erased_events: u64,
}

/// `DELETE /v1/installs/{install_id}`: an install erases itself.
pub(crate) async fn by_install(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(install): Path<String>,
) -> Result<Json<Erased>, ApiError> {
    let limiter = state.limiter();
    limiter.client(limiter.client_of(peer, &headers))?;
    let key = crate::auth::ingest_key(&headers).ok_or(ApiError::Unauthorized(
        "missing header Authorization: Bearer <ingest key>",
    ))?;
    let app = state
        .app_of_key(&key)
        .ok_or(ApiError::Unauthorized("unknown ingest key"))?;
    let install = install_id(&install)?;
    let secret = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !tally_protocol::owns(install, secret) {
        return Err(ApiError::Forbidden(
            "the header Tally-Install-Secret is missing or is not this install's secret",
        ));
    }
    limiter.erasure(&app.name)?;
    let erased_events = erase(&state, app.name, install).await?;
    Ok(Json(Erased { erased_events }))
}

/// The query of `DELETE /api/v1/installs/{install_id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminErasure {
    /// Only this app's install; every app's when absent.
    app: Option<String>,
}

/// `DELETE /api/v1/installs/{install_id}[?app=NAME]`: an admin erases an
/// install (of one app, or of every app), as asked by its user.
pub(crate) async fn by_admin(
    _: Admin,
    State(state): State<AppState>,
    Path(install): Path<String>,
    Query(query): Query<AdminErasure>,
) -> Result<Json<Erased>, ApiError> {
    let install = install_id(&install)?;
    let apps: Vec<Arc<str>> = match query.app {
        Some(name) => vec![
            state
                .app_named(&name)
                .ok_or_else(|| ApiError::NotFound(format!("no app {name:?}")))?
                .name,
        ],
        None => {
            let apps = state.store().call(|store| store.apps()).await?;
            apps.into_iter().map(|a| Arc::from(a.name)).collect()
        }
    };
    let mut erased_events = 0;
    for app in apps {
        erased_events += erase(&state, app, install).await?;
    }
    Ok(Json(Erased { erased_events }))
}

fn install_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad(
            "invalid_path",
            "install_id",
            format!("{text:?} is not an install id (a UUID)"),
        )
    })
}

/// Erases `install` of `app`, one erasure at a time; returns the raw events
/// erased.
async fn erase(state: &AppState, app: Arc<str>, install: Uuid) -> Result<u64, ApiError> {
    let _one = state.erasing().lock().await;
    let name = Arc::clone(&app);
    let erased = state
        .store()
        .call(move |store| store.forget_install(&name, install))
        .await?;
    state.metrics().count_erasure(&app);
    tracing::info!(app = %app, events = erased, "An install was erased.");
    let forwarding = state.forward_erasing().clone();
    let untold = tokio::task::spawn_blocking(move || forwarding.erase(&app, install))
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    for destination in untold {
        tracing::warn!(%destination, "A destination that got the erased install's events cannot be told to delete them (it has no erasure key): delete them there by hand.");
    }
    Ok(erased)
}
