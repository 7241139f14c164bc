//! What operators poll: `GET /healthz` (liveness: the process answers, and
//! says whether its store is failing), `GET /readyz` (for a load balancer:
//! 503 while the store cannot take or show events) and `GET /metrics`.
//! None touches the store beyond a counter. Health and readiness need no
//! token; metrics need none either unless a metrics token is configured,
//! since they name the apps and their volumes.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

/// The routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store().store().failure() {
        None => Json(json!({"status": "ok"})),
        Some(failure) => Json(json!({"status": "failing", "store": failure})),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store().store().failure() {
        None => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Some(failure) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "not_ready", "reason": failure})),
        ),
    }
}

async fn metrics(_: MetricsReader, State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics().encode(&crate::metrics::Gauges {
        queue_depth: state.committer().queued_events(),
        unloaded: state.store().store().unloaded_events(),
        installs_in_memory: state.store().store().installs_in_memory(),
        in_flight_bytes: state.budget().in_use(),
        clients_remembered: state.limiter().clients_remembered(),
    });
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// Proof that a request may read the metrics: anyone, unless a metrics
/// token is configured; then that token or the admin token.
struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(wanted) = &state.config().metrics_token else {
            return Ok(Self);
        };
        let given = bearer(&parts.headers).unwrap_or_default();
        if crate::auth::same(given, wanted) || state.is_admin(given) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized(
                "the metrics need the metrics token: Authorization: Bearer <metrics token>",
            ))
        }
    }
}
