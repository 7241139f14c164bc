//! `GET /v1/apps/{app}/schema` (open): what an app's CLI may send, as its
//! maintainers declared it, so its users can see for themselves. An app
//! without a schema, and a name that is no app, answer alike (`"schema":
//! null`): the route tells no one which apps a server has.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::extract::{Json, Path};
use crate::state::AppState;

pub(crate) async fn published(State(state): State<AppState>, Path(app): Path<String>) -> Response {
    let schema = state.config().schemas.get(&app);
    let body = serde_json::json!({
        "app": app,
        "schema": schema,
        "note": match schema {
            Some(_) => "Events and properties not listed here are refused by the server.",
            None => "No schema is declared: the server takes any well-formed event (docs/protocol.md).",
        },
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
}
