//! The extractors handlers use, whose rejections are the API's errors: a
//! body or query string that cannot be read answers `{"error": ...}` like
//! every other error, never axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A JSON request body, or a JSON response.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The query string, deserialized.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub(crate) T);

/// Parameters from the path.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub(crate) T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (reason, status) = (rejection.body_text(), rejection.status());
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::Unsupported("send the body as Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(_) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(reason)
            }
            _ => ApiError::bad("invalid_json", field_in(&reason), reason),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let reason = rejection.body_text();
        ApiError::bad("invalid_query", field_in(&reason), reason)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad("invalid_path", "", rejection.body_text())
    }
}

/// The field serde names in a message such as "missing field `name`" or
/// "unknown field `colour`, expected ...", or "" for the whole input.
fn field_in(message: &str) -> String {
    message
        .split_once("field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map_or_else(String::new, |(field, _)| field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::field_in;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_in("Failed to deserialize: missing field `name` at line 1"),
            "name"
        );
        assert_eq!(
            field_in("unknown field `colour`, expected one of `app`"),
            "colour"
        );
        assert_eq!(field_in("expected value at line 1 column 2"), "");
    }
}
