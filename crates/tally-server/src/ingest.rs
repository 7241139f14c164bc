//! `POST /v1/batch`: events in, exactly once, acknowledged when durable.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use tally_protocol::{BatchError, IngestResponse, Rejection, StoredEvent, decode_batch};
use tally_store::Staged;
use time::OffsetDateTime;

use crate::body::Sent;
use crate::budget::Held;
use crate::error::ApiError;
use crate::extract::Json;
use crate::listen::Peer;
use crate::state::AppState;

pub(crate) async fn batch(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    let started = Instant::now();
    let result = ingest(&state, peer, &headers, body).await;
    let outcome = result.as_ref().map_or_else(ApiError::code, |_| "ok");
    state.metrics().observe_request(outcome, started.elapsed());
    result.map(Json)
}

async fn ingest(
    state: &AppState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<IngestResponse, ApiError> {
    let key = crate::auth::bearer(headers).ok_or(ApiError::Unauthorized(
        "missing header Authorization: Bearer <ingest key>",
    ))?;
    let app = state
        .app_of_key(key)
        .ok_or(ApiError::Unauthorized("unknown ingest key"))?;
    let limiter = state.limiter();
    limiter.client(limiter.client_of(peer, headers))?;
    let config = state.config();
    let sent = crate::body::read(
        body,
        headers,
        &config.limits,
        state.budget(),
        &config.connections,
    )
    .await?;

    // Inflating, parsing, scrubbing and encoding take CPU in proportion to
    // the body: off the async workers, so health checks, metrics and other
    // requests keep being answered whatever comes in.
    let turn = state.preparing().await?;
    let now = OffsetDateTime::now_utc();
    let (preparing, owner) = (state.clone(), Arc::clone(&app));
    let prepared = tokio::task::spawn_blocking(move || {
        let prepared = prepare(&preparing, sent, &owner, now);
        drop(turn);
        prepared
    })
    .await
    .map_err(|e| ApiError::Unavailable(Box::new(e)))??;
    let Prepared {
        staged,
        held,
        rejected,
        dropped,
    } = prepared;
    // The body is gone by now; only the events wait for the commit, and
    // `held` keeps their bytes counted until it answers.
    let new = state.committer().commit(staged).await?;
    drop(held);
    let accepted = new.iter().filter(|&&n| n).count();
    let duplicates = new.len() - accepted;
    state.metrics().count_events(accepted, duplicates);
    if accepted > 0 {
        // A retry (all duplicates) already had its drops counted.
        state
            .metrics()
            .count_client_dropped(dropped.min(tally_protocol::MAX_REPORTED_DROPPED));
    }
    Ok(IngestResponse {
        accepted,
        duplicates,
        rejected,
    })
}

/// A request's events, ready to commit.
struct Prepared {
    staged: Staged,
    held: Held,
    rejected: Vec<Rejection>,
    dropped: u64,
}

/// Decodes, checks, scrubs and stages the events of `sent`. Blocking.
fn prepare(
    state: &AppState,
    mut sent: Sent,
    app: &Arc<str>,
    now: OffsetDateTime,
) -> Result<Prepared, ApiError> {
    let limits = &state.config().limits;
    let body = sent.decode(limits)?;
    let decoded = decode_batch(&body, app, now, limits).map_err(|e| match e {
        BatchError::InvalidJson { ref path, .. } => {
            ApiError::bad("invalid_json", path.clone(), e.to_string())
        }
        BatchError::TooManyEvents { .. } => ApiError::TooLarge(e.to_string()),
    })?;
    // Invalid events count too: a key sending only those costs the server
    // their parsing and an answer listing them.
    state
        .limiter()
        .app(app, decoded.events.len() + decoded.rejected.len())?;
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
    let mut events: Vec<StoredEvent> = decoded
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
    // Every value is the client's to choose: beyond the day's cap on a
    // field's distinct values, new ones are stored as "(other)".
    let folded = state.cardinality().fold(app, now.date(), &mut events);
    for (dimension, n) in folded.iter() {
        state.metrics().count_folded(dimension, n);
    }
    let mut held = sent.held;
    let staged_bytes = crate::budget::staged_bytes(&events);
    held.resize(held.bytes() + staged_bytes)?;
    drop((body, sent.bytes));
    held.resize(staged_bytes)?;
    Ok(Prepared {
        staged: state.store().store().stage(events),
        held,
        rejected: decoded.rejected,
        dropped: decoded.dropped,
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
