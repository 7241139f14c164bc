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
    // An install never stored has nothing to pass on: destinations only
    // ever had what the store had.
    let erased_events = erase(&state, vec![app.name], install, Forward::IfStored).await?;
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
    // The admin asked: destinations are told even when the store has
    // nothing left (its retention may have gone first).
    let erased_events = erase(&state, apps, install, Forward::Always).await?;
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

/// When an erasure is passed on to the forwarding destinations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forward {
    /// Only if the store held the install.
    IfStored,
    Always,
}

/// How long a client asked to wait while another erasure runs.
const BUSY_RETRY_S: u32 = 30;

/// Erases `install` of `apps` and passes it on, one erasure at a time
/// (a second meanwhile is told to come back); returns the raw events
/// erased. It runs to its end on a task of its own, even if the client
/// goes away meanwhile: half an erasure is never left behind.
async fn erase(
    state: &AppState,
    apps: Vec<Arc<str>>,
    install: Uuid,
    forward: Forward,
) -> Result<u64, ApiError> {
    let one = Arc::clone(state.erasing())
        .try_lock_owned()
        .map_err(|_| ApiError::Busy {
            retry_after_s: BUSY_RETRY_S,
        })?;
    let state = state.clone();
    tokio::spawn(async move {
        let _one = one;
        let names: Vec<String> = apps.iter().map(|a| a.to_string()).collect();
        let erased = state
            .store()
            .call(move |store| {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                store.forget_install(&names, install)
            })
            .await?;
        for app in &apps {
            state.metrics().count_erasure(app);
            tracing::info!(app = %app, events = erased.unwrap_or(0), "An install was erased.");
        }
        if erased.is_none() && forward == Forward::IfStored {
            return Ok(0);
        }
        let forwarding = state.forward_erasing().clone();
        let untold = tokio::task::spawn_blocking(move || {
            let mut untold = Vec::new();
            for app in &apps {
                untold.extend(forwarding.erase(app, install)?);
            }
            Ok::<_, tally_forward::ForwardError>(untold)
        })
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
        for destination in untold {
            tracing::warn!(%destination, "A destination that got the erased install's events cannot be told to delete them (it has no erasure key): delete them there by hand.");
        }
        Ok(erased.unwrap_or(0))
    })
    .await
    .map_err(|e| ApiError::Unavailable(Box::new(e)))?
}
