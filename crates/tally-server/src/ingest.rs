//! `POST /v1/batch`: events in, exactly once, acknowledged when durable.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tally_protocol::{IngestResponse, Rejection, StoredEvent};
use tally_store::Staged;
use time::OffsetDateTime;

use crate::body::Sent;
use crate::budget::Held;
use crate::error::ApiError;
use crate::extract::Json;
use crate::listen::Peer;
use crate::state::{AppState, KeyApp};

/// `POST /v1/batch`: Tally's own batches, and Segment's, which share the
/// path. The rule (docs/compat.md): a request with a bearer token is
/// Tally's unless its body holds a `batch` array; one with Basic auth or
/// no `Authorization` at all is Segment's.
pub(crate) async fn batch(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dialect = if crate::auth::bearer(&headers).is_some() {
        Dialect::Tally
    } else {
        Dialect::Segment(None)
    };
    answer(&state, peer, &headers, body, dialect, None).await
}

/// The query of `POST /api/v1/import`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportQuery {
    app: String,
}

/// `POST /api/v1/import?app=NAME` (admin token): a batch of a gateway's
/// requests, as `tally import-logs` makes them of an access log, stored
/// as every batch is (deduped, the day's caps on distinct values applied,
/// forwarded) but not rate limited: the admin chose to send it.
pub(crate) async fn import(
    _: crate::auth::Admin,
    State(state): State<AppState>,
    crate::extract::Query(query): crate::extract::Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match state.app_named(&query.app) {
        Some(app) => answer(&state, None, &headers, body, Dialect::Import, Some(app)).await,
        None => ApiError::NotFound(format!("no app {:?}", query.app)).into_response(),
    }
}

/// Takes in a request of `dialect` (for `app` when it is an import's) and
/// answers it as that format's clients expect.
pub(crate) async fn answer(
    state: &AppState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
    dialect: Dialect,
    app: Option<KeyApp>,
) -> Response {
    let started = Instant::now();
    let result = ingest(state, peer, headers, body, dialect, app).await;
    let outcome = result.as_ref().map_or_else(ApiError::code, |_| "ok");
    state.metrics().observe_request(outcome, started.elapsed());
    match result {
        Ok(Ingested {
            dialect: Dialect::Tally | Dialect::Import,
            response,
            ..
        }) => Json(response).into_response(),
        Ok(ingested) => crate::compat::accepted(&ingested),
        Err(e) => crate::compat::refused(dialect, e),
    }
}

/// The wire format a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Tally's own (`docs/protocol.md`).
    Tally,
    /// PostHog's capture API (v0: `/batch` ...).
    PostHog,
    /// PostHog's newer capture API (`/i/v1/analytics/events`), which
    /// answers per event.
    PostHogV1,
    /// Segment's tracking API: a batch, or one message of the type named.
    Segment(Option<&'static str>),
    /// Tally's own, of a gateway's requests, sent with the admin token
    /// (`POST /api/v1/import`).
    Import,
}

/// A stored request: what Tally answers, in the format it turned out to
/// be in, and the foreign ids of its events in order (for formats that
/// answer per event).
pub(crate) struct Ingested {
    pub(crate) dialect: Dialect,
    pub(crate) response: IngestResponse,
    pub(crate) ids: Vec<Option<String>>,
}

/// Reads, checks and commits a request's events; `app` is the import's
/// (an ingest request's comes from its key).
async fn ingest(
    state: &AppState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
    dialect: Dialect,
    app: Option<KeyApp>,
) -> Result<Ingested, ApiError> {
    // A key in the headers is checked before the body is read; one in the
    // body (PostHog's `api_key`, Segment's `writeKey`) once it is parsed.
    let app = match crate::auth::ingest_key(headers) {
        _ if dialect == Dialect::Import => app,
        Some(key) => Some(
            state
                .app_of_key(&key)
                .ok_or(ApiError::Unauthorized("unknown ingest key"))?,
        ),
        None if dialect == Dialect::Tally => {
            return Err(ApiError::Unauthorized(
                "missing header Authorization: Bearer <ingest key>",
            ));
        }
        None => None,
    };
    let limiter = state.limiter();
    if dialect != Dialect::Import {
        limiter.client(limiter.client_of(peer, headers))?;
    }
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
    let preparing = state.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let prepared = prepare(&preparing, sent, dialect, app, now);
        drop(turn);
        prepared
    })
    .await
    .map_err(|e| ApiError::Unavailable(Box::new(e)))??;
    let Prepared {
        staged,
        outgoing,
        held,
        rejected,
        dropped,
        dialect,
        ids,
    } = prepared;
    // The body is gone by now; only the events wait for the commit, and
    // `held` keeps their bytes counted until it answers.
    let new = state.committer().commit(staged, outgoing).await?;
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
    Ok(Ingested {
        dialect,
        response: IngestResponse {
            accepted,
            duplicates,
            rejected,
        },
        ids,
    })
}

/// A request's events, ready to commit.
struct Prepared {
    staged: Staged,
    /// The same, encoded for the app's outbox when it forwards.
    outgoing: Option<crate::commit::Outgoing>,
    held: Held,
    rejected: Vec<Rejection>,
    dropped: u64,
    /// The format the request turned out to be in.
    dialect: Dialect,
    /// The foreign ids of the request's events, where its format answers
    /// per event.
    ids: Vec<Option<String>>,
}

/// Decodes, checks, scrubs and stages the events of `sent`, sent in
/// `dialect` for `app` (when the headers named it). Blocking.
fn prepare(
    state: &AppState,
    mut sent: Sent,
    dialect: Dialect,
    app: Option<KeyApp>,
    now: OffsetDateTime,
) -> Result<Prepared, ApiError> {
    let limits = &state.config().limits;
    let body = sent.decode(limits)?;
    let crate::compat::Read {
        app,
        batch: decoded,
        dialect,
        ids,
        ignored,
    } = crate::compat::decode(state, &body, dialect, app, now)?;
    let app = &app.name;
    // Invalid and ignored messages count too: a key sending only those
    // costs the server their parsing and an answer.
    if dialect != Dialect::Import {
        state
            .limiter()
            .app(app, decoded.events.len() + decoded.rejected.len() + ignored)?;
    }
    let mut decoded = decoded;
    if dialect != Dialect::Import
        && let Some(schema) = state.config().schemas.get(&**app)
    {
        apply_schema(state, app, schema, &mut decoded);
    }
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
    let mut hits = std::collections::BTreeMap::<&'static str, u64>::new();
    let mut events: Vec<StoredEvent> = decoded
        .events
        .into_iter()
        .zip(decoded.client_timestamps)
        .map(|(mut event, client_timestamp)| {
            scrub(&mut event, dialect, &mut |rule| {
                *hits.entry(rule).or_default() += 1;
            });
            StoredEvent {
                event,
                client_timestamp,
                received_at: now,
            }
        })
        .collect();
    for (rule, n) in hits {
        state.metrics().count_scrubbed(app, rule, n);
    }
    // Every value is the client's to choose: beyond the day's cap on a
    // field's distinct values, new ones are stored as "(other)". An
    // import's were capped by the importer, and must not use up the day's
    // room of the SDK's (a backfill of a month of logs would).
    let folded = if dialect == Dialect::Import {
        Default::default()
    } else {
        state.cardinality().fold(app, now.date(), &mut events)
    };
    for (dimension, n) in folded.iter() {
        state.metrics().count_folded(dimension, n);
    }
    let outgoing = state.outbox(app).map(|outbox| {
        let lines: Vec<_> = events.iter().map(tally_forward::Outgoing::of).collect();
        (Arc::clone(outbox), lines)
    });
    let outgoing_bytes: usize = outgoing.as_ref().map_or(0, |(_, lines)| {
        lines.iter().map(tally_forward::Outgoing::bytes).sum()
    });
    let mut held = sent.held;
    let staged_bytes = crate::budget::staged_bytes(&events) + outgoing_bytes;
    held.resize(held.bytes() + staged_bytes)?;
    drop((body, sent.bytes));
    held.resize(staged_bytes)?;
    Ok(Prepared {
        staged: state.store().store().stage(events),
        outgoing,
        held,
        rejected: decoded.rejected,
        dropped: decoded.dropped,
        dialect,
        ids,
    })
}

/// Holds `decoded`'s events to `app`'s schema: what it refuses joins the
/// batch's rejections (with its place in the request), what it drops is
/// left out and counted.
fn apply_schema(
    state: &AppState,
    app: &str,
    schema: &tally_protocol::schema::Schema,
    decoded: &mut tally_protocol::DecodedBatch,
) {
    use tally_protocol::schema::Checked;
    let events = std::mem::take(&mut decoded.events);
    let positions = std::mem::take(&mut decoded.positions);
    let stamps = std::mem::take(&mut decoded.client_timestamps);
    for ((mut event, position), stamp) in events.into_iter().zip(positions).zip(stamps) {
        match schema.check(&mut event) {
            Checked::Kept(dropped) => {
                for _ in &dropped {
                    state.metrics().count_schema_dropped(app, "property");
                }
                decoded.events.push(event);
                decoded.positions.push(position);
                decoded.client_timestamps.push(stamp);
            }
            Checked::Dropped(_) => state.metrics().count_schema_dropped(app, "event"),
            Checked::Rejected(violation) => {
                decoded
                    .rejected
                    .push(Rejection::new(position, violation.field, violation.reason))
            }
        }
    }
    decoded.rejected.sort_by_key(|r| r.index);
}

/// The server's own pass over free text, the SDK's scrubber run again,
/// for SDKs that scrub less than Tally's (old ones, or none at all):
/// e-mails, credentials, tokens, IPs, phone numbers and the names in other
/// people's home dirs never reach the store. A foreign client's `command`
/// is free text too: whoever instrumented the CLI chose what went into
/// it. `hit` hears each rule that changed a field.
fn scrub(event: &mut tally_protocol::Event, dialect: Dialect, hit: &mut dyn FnMut(&'static str)) {
    static SCRUBBER: std::sync::LazyLock<tally_scrub::Scrubber> =
        std::sync::LazyLock::new(|| tally_scrub::Scrubber::new(tally_scrub::Identity::default()));
    let mut scrub = |text: &mut String| *text = SCRUBBER.scrub_noting(text, hit);
    if let Some(error) = &mut event.error {
        scrub(&mut error.message);
        if let Some(location) = &mut error.location {
            scrub(location);
        }
    }
    for value in event.properties.values_mut() {
        if let tally_protocol::PropertyValue::String(s) = value {
            scrub(s);
        }
    }
    if !matches!(dialect, Dialect::Tally | Dialect::Import) {
        scrub(&mut event.command);
    }
}
