//! The paths of PostHog's capture API and Segment's tracking API, so that
//! CLIs already calling either send to Tally by changing a host name. Each
//! request goes through the same ingest as `/v1/batch` (limits, rate
//! limits, dedupe, durability); only reading its body and the answer's
//! shape differ. The mapping is `tally_compat`'s, documented in
//! docs/compat.md.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tally_compat::{Target, posthog, segment};
use tally_protocol::{BatchError, DecodedBatch, decode_batch};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::Path;
use crate::ingest::{Dialect, Ingested, answer};
use crate::listen::Peer;
use crate::state::{AppState, KeyApp};

/// Which PostHog or Segment event name stands for an invocation of an
/// app's CLI: its properties fill the invocation's fields (command, exit
/// code, duration, flags ...), so the reports count such CLIs as they
/// count Tally's own. Other event names are stored as custom events.
///
/// ```
/// let mut events = tally_server::InvocationEvents::default();
/// events.per_app.insert("mycli".into(), "command_run".into());
/// assert_eq!(events.of("mycli"), "command_run");
/// assert_eq!(events.of("othercli"), "invocation");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationEvents {
    /// The name for apps not in `per_app`.
    pub default: String,
    /// App name -> its invocation event's name.
    pub per_app: BTreeMap<String, String>,
}

impl Default for InvocationEvents {
    fn default() -> Self {
        Self {
            default: "invocation".into(),
            per_app: BTreeMap::new(),
        }
    }
}

impl InvocationEvents {
    /// The invocation event of `app`.
    pub fn of(&self, app: &str) -> &str {
        self.per_app.get(app).unwrap_or(&self.default)
    }
}

/// PostHog's capture paths, each with and without a trailing slash.
const POSTHOG_PATHS: &[&str] = &["/batch", "/capture", "/e", "/i/v0/e", "/track"];

pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/v1/{kind}", post(segment_message))
        .route("/i/v1/analytics/events", post(posthog_v1));
    for path in POSTHOG_PATHS {
        router = router
            .route(path, post(posthog_batch))
            .route(&format!("{path}/"), post(posthog_batch));
    }
    router
}

async fn posthog_batch(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(&state, peer, &headers, body, Dialect::PostHog, None).await
}

/// `POST /i/v1/analytics/events`: PostHog's newer capture, keyed by a
/// bearer token, answered per event.
async fn posthog_v1(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(&state, peer, &headers, body, Dialect::PostHogV1, None).await
}

/// `POST /v1/track`, `/v1/page` ... : one Segment message of that type.
async fn segment_message(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match segment::TYPES.iter().find(|t| **t == kind) {
        Some(kind) => {
            answer(
                &state,
                peer,
                &headers,
                body,
                Dialect::Segment(Some(kind)),
                None,
            )
            .await
        }
        None => ApiError::NotFound(format!(
            "no such path: /v1/{} (Segment's are /v1/batch and /v1/{})",
            kind.chars().take(64).collect::<String>(),
            segment::TYPES.join(", /v1/")
        ))
        .into_response(),
    }
}

/// A request's body, read.
pub(crate) struct Read {
    /// The app its events are for.
    pub(crate) app: KeyApp,
    pub(crate) batch: DecodedBatch,
    /// The dialect the body turned out to be in: a bearer request to
    /// `/v1/batch` whose body holds a `batch` is Segment's.
    pub(crate) dialect: Dialect,
    /// The foreign ids of its events, in order, where the dialect answers
    /// per event (PostHog's v1); empty otherwise.
    pub(crate) ids: Vec<Option<String>>,
    /// Messages accepted and not stored by design.
    pub(crate) ignored: usize,
}

/// The events of a request's (inflated) `body` in `dialect`, and the app
/// they are for: `app` when the headers named it, else the key in the
/// body.
pub(crate) fn decode(
    state: &AppState,
    body: &[u8],
    dialect: Dialect,
    app: Option<KeyApp>,
    now: OffsetDateTime,
) -> Result<Read, ApiError> {
    let limits = &state.config().limits;
    let (app, decoded, ids) = match dialect {
        Dialect::Tally => {
            let app = app.ok_or(ApiError::Unauthorized(
                "missing header Authorization: Bearer <ingest key>",
            ))?;
            return match decode_batch(body, &app.name, now, limits) {
                Ok(batch) => Ok(Read {
                    app,
                    batch,
                    dialect,
                    ids: Vec::new(),
                    ignored: 0,
                }),
                // Segment's clients may send the write key as a bearer
                // token: their body, whatever its first field, is no
                // Tally batch.
                Err(BatchError::InvalidJson { .. }) if segment::has_batch(body) => {
                    decode(state, body, Dialect::Segment(None), Some(app), now)
                }
                Err(e) => Err(refusal(e)),
            };
        }
        Dialect::Import => {
            let app = app.ok_or(ApiError::Unauthorized("an import names its app"))?;
            let batch =
                tally_protocol::decode_import(body, &app.name, now, limits).map_err(refusal)?;
            return Ok(Read {
                app,
                batch,
                dialect,
                ids: Vec::new(),
                ignored: 0,
            });
        }
        Dialect::PostHog | Dialect::PostHogV1 => {
            let request = posthog::read(body, limits).map_err(refusal)?;
            let app = owner(
                state,
                app,
                request.key(),
                "missing the project token: send api_key in the body, or Authorization: Bearer",
            )?;
            let ids = if dialect == Dialect::PostHogV1 {
                request.uuids()
            } else {
                Vec::new()
            };
            let decoded = request.decode(&target(state, &app), now, limits);
            (app, decoded, ids)
        }
        Dialect::Segment(kind) => {
            if body.len() > segment::MAX_BATCH_BYTES {
                return Err(ApiError::TooLarge(format!(
                    "the body is {} bytes, over Segment's limit of {} bytes a batch",
                    body.len(),
                    segment::MAX_BATCH_BYTES
                )));
            }
            let request = segment::read(body, kind, limits).map_err(refusal)?;
            let app = owner(
                state,
                app,
                request.key(),
                "missing the write key: send it as Basic auth (writeKey:) or as the body's writeKey",
            )?;
            let decoded = request.decode(&target(state, &app), now, limits);
            (app, decoded, Vec::new())
        }
    };
    state.metrics().count_ignored(decoded.ignored);
    Ok(Read {
        app,
        batch: decoded.batch,
        dialect,
        ids,
        ignored: decoded.ignored,
    })
}

fn target<'a>(state: &'a AppState, app: &'a KeyApp) -> Target<'a> {
    Target {
        app: &app.name,
        salt: &app.salt,
        invocation_event: state.config().invocation_events.of(&app.name),
    }
}

/// The app of the request: the one its headers named, else the one its
/// body's key belongs to.
fn owner(
    state: &AppState,
    app: Option<KeyApp>,
    key: Option<&str>,
    missing: &'static str,
) -> Result<KeyApp, ApiError> {
    match (app, key) {
        (Some(app), _) => Ok(app),
        (None, Some(key)) => state
            .app_of_key(key)
            .ok_or(ApiError::Unauthorized("unknown ingest key")),
        (None, None) => Err(ApiError::Unauthorized(missing)),
    }
}

/// A body refused as a whole.
pub(crate) fn refusal(e: BatchError) -> ApiError {
    match e {
        BatchError::InvalidJson { ref path, .. } => {
            ApiError::bad("invalid_json", path.clone(), e.to_string())
        }
        BatchError::TooManyEvents { .. } => ApiError::TooLarge(e.to_string()),
    }
}

/// The answer to a stored request of a foreign dialect: what its clients
/// take for success (posthog-python takes anything but a 200 for failure).
/// PostHog's v1 answers per event uuid: `ok` for each stored (or stored
/// before), `drop` with the reason for each refused, which its clients do
/// not send again.
pub(crate) fn accepted(ingested: &Ingested) -> Response {
    let body = match ingested.dialect {
        Dialect::PostHog => json!({"status": 1}),
        Dialect::PostHogV1 => {
            let mut results = serde_json::Map::new();
            for id in ingested.ids.iter().flatten() {
                results.insert(id.clone(), json!({"result": "ok"}));
            }
            for rejection in &ingested.response.rejected {
                if let Some(Some(id)) = ingested.ids.get(rejection.index) {
                    let details = format!("{}: {}", rejection.field, rejection.reason);
                    results.insert(id.clone(), json!({"result": "drop", "details": details}));
                }
            }
            json!({ "results": results })
        }
        Dialect::Tally | Dialect::Import | Dialect::Segment(_) => json!({"success": true}),
    };
    axum::Json(body).into_response()
}

/// The answer to a refused request: Tally's error, with the fields
/// PostHog's clients read the reason from (`type`, `code`, `detail`,
/// `attr`) on PostHog's paths.
pub(crate) fn refused(dialect: Dialect, e: ApiError) -> Response {
    if !matches!(dialect, Dialect::PostHog | Dialect::PostHogV1) {
        return e.into_response();
    }
    let (code, detail) = (e.code(), e.to_string());
    let (attr, rejected) = match &e {
        ApiError::BadRequest {
            field, rejected, ..
        } => (
            (!field.is_empty()).then(|| json!(field)),
            (!rejected.is_empty()).then(|| json!(rejected)),
        ),
        _ => (None, None),
    };
    let response = e.into_response();
    let kind = match response.status().as_u16() {
        401 => "authentication_error",
        400 | 413 | 415 => "validation_error",
        429 => "throttled",
        _ => "server_error",
    };
    let (mut parts, _) = response.into_parts();
    let mut body = json!({
        "type": kind,
        "code": code,
        "detail": detail,
        "attr": attr,
        "error": code,
        "reason": detail,
    });
    if let Some(rejected) = rejected {
        body["rejected"] = rejected;
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}
