//! What operators poll: `GET /healthz` and `GET /metrics`. Neither needs a
//! token, and neither touches the store beyond a counter.

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::commit::CommitterHandle;
use crate::extract::Json;
use crate::metrics::Metrics;
use crate::state::{AppState, StoreHandle};

/// The routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
}

async fn metrics(
    State(metrics): State<Metrics>,
    State(committer): State<CommitterHandle>,
    State(store): State<StoreHandle>,
) -> impl IntoResponse {
    let text = metrics.encode(committer.queued_events(), store.store().unloaded_events());
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}
