//! `POST /v1/batch`: events in, exactly once, acknowledged when durable.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use tally_protocol::{BatchError, IngestResponse, StoredEvent, decode_batch};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

pub(crate) async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    let started = Instant::now();
    let result = ingest(&state, &headers, body).await;
    let outcome = result.as_ref().map_or_else(ApiError::code, |_| "ok");
    state.metrics().observe_request(outcome, started.elapsed());
    result.map(Json)
}

async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<IngestResponse, ApiError> {
    let key = crate::auth::bearer(headers).ok_or(ApiError::Unauthorized(
        "missing header Authorization: Bearer <ingest key>",
    ))?;
    let app = state
        .app_of_key(key)
        .ok_or(ApiError::Unauthorized("unknown ingest key"))?;
    let limits = &state.config().limits;
    let raw = crate::body::read(body, headers, limits).await?;

    let now = OffsetDateTime::now_utc();
    let decoded = decode_batch(&raw, &app, now, limits).map_err(|e| match e {
        BatchError::InvalidJson { ref path, .. } => {
            ApiError::bad("invalid_json", path.clone(), e.to_string())
        }
        BatchError::TooManyEvents { .. } => ApiError::TooLarge(e.to_string()),
    })?;
    for rejection in &decoded.rejected {
        state.metrics().count_rejected(&rejection.field);
    }
    if decoded.events.is_empty() && !decoded.rejected.is_empty() {
        return Err(ApiError::BadRequest {
            code: "invalid_events",
            field: "events".into(),
            reason: "no event of the batch is valid".into(),
            rejected: decoded.rejected,
        });
    }

    let dropped = decoded.dropped;
    let events: Vec<StoredEvent> = decoded
        .events
        .into_iter()
        .zip(decoded.client_timestamps)
        .map(|(mut event, client_timestamp)| {
            scrub(&mut event);
            StoredEvent {
                event,
                client_timestamp,
                received_at: now,
            }
        })
        .collect();
    let new = state
        .committer()
        .commit(state.store().store().stage(events))
        .await?;
    let accepted = new.iter().filter(|&&n| n).count();
    let duplicates = new.len() - accepted;
    state.metrics().count_events(accepted, duplicates);
    if accepted > 0 {
        // A retry (all duplicates) already had its drops counted.
        state.metrics().count_client_dropped(dropped);
    }
    Ok(IngestResponse {
        accepted,
        duplicates,
        rejected: decoded.rejected,
    })
}

/// The server's own pass over free text, for SDKs that scrub less than
/// Tally's (or not at all): e-mails, credentials, tokens, IPs and the names
/// in other people's home dirs never reach the store.
fn scrub(event: &mut tally_protocol::Event) {
    static SCRUBBER: std::sync::LazyLock<tally_scrub::Scrubber> =
        std::sync::LazyLock::new(|| tally_scrub::Scrubber::new(tally_scrub::Identity::default()));
    if let Some(error) = &mut event.error {
        error.message = SCRUBBER.scrub(&error.message);
        if let Some(location) = &mut error.location {
            *location = SCRUBBER.scrub(location);
        }
    }
}
