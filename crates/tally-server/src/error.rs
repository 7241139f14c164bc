//! The errors of the HTTP surface and of starting a server.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tally_protocol::Rejection;
use tally_store::StoreError;

/// Why a server could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] tally_store::StoreError),
    /// The admin token could not be read or created.
    #[error("admin token {path}: {source}")]
    AdminToken {
        /// The token file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("listener: {0}")]
    Listen(std::io::Error),
    /// The commit thread could not be started.
    #[error("starting the commit thread: {0}")]
    Thread(std::io::Error),
    /// The settings cannot work (see [`Config::check`](crate::Config::check)).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Forwarding could not start: a destination's settings, or its state
    /// in the data dir.
    #[error(transparent)]
    Forward(#[from] tally_forward::ForwardError),
}

/// Every way a request can fail; each maps to one status and a JSON body
/// `{"error": code, "field": ..., "reason": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no credentials, or not the right kind; the client must fix its key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 400: the request as a whole is malformed; retrying it cannot help.
    #[error("{reason}")]
    BadRequest {
        /// A stable code, e.g. "invalid_json".
        code: &'static str,
        /// Where, e.g. "sent_at", or "" for the whole body.
        field: String,
        /// A sentence.
        reason: String,
        /// Per-event reasons, when every event of a batch was rejected.
        rejected: Vec<Rejection>,
    },
    /// 403: credentials of the right kind that do not give what was asked
    /// (an install secret that is not the install's).
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such thing (a report name, a page).
    #[error("{0}")]
    NotFound(String),
    /// 409: the thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// 408: the body did not arrive in time (a client that trickles it).
    #[error("{0}")]
    Timeout(String),
    /// 413: the body, compressed or not, is over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: an encoding or content type the server does not speak.
    #[error("{0}")]
    Unsupported(String),
    /// 429: the commit queue is full; the client should retry later.
    #[error("the server is busy; retry after {retry_after_s} s")]
    Busy {
        /// Seconds to wait, sent as `Retry-After`.
        retry_after_s: u32,
    },
    /// 429: this ingest key or this client sent more than its rate allows.
    #[error("{what} is over its rate limit; retry after {retry_after_s} s")]
    RateLimited {
        /// Whose rate: "this ingest key" or "this client".
        what: &'static str,
        /// Seconds until the limit lets the request through.
        retry_after_s: u32,
    },
    /// 503: the store holds acknowledged events it cannot show now, so an
    /// answer would leave them out; the reason says why.
    #[error("{0}")]
    Incomplete(String),
    /// 503: the store failed; nothing of the request was stored, so a retry
    /// is safe. The source is logged, not sent.
    #[error("storage is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 507: the store's disk is full; nothing of the request was stored.
    /// Its own status, not 503, so that an operator's monitoring tells it
    /// apart from a store that is down: it needs room, not a restart. It
    /// passes by itself once there is room, so clients retry it, after
    /// `Retry-After`. The source (file names) is logged, not sent.
    #[error("the server's disk is full; nothing of the request was stored, retry later")]
    DiskFull(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a client told the disk is full waits before it tries again, in
/// seconds: room comes back when an operator makes it, not in a second.
const DISK_FULL_RETRY_AFTER_S: u32 = 60;

impl ApiError {
    /// A 400 about one field.
    pub fn bad(code: &'static str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            field: field.into(),
            reason: reason.into(),
            rejected: Vec::new(),
        }
    }

    /// The label this error is counted under in metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::BadRequest { code, .. } => code,
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Timeout(_) => "timeout",
            Self::TooLarge(_) => "too_large",
            Self::Unsupported(_) => "unsupported",
            Self::Busy { .. } => "busy",
            Self::RateLimited { .. } => "rate_limited",
            Self::Incomplete(_) => "incomplete",
            Self::Unavailable(_) => "unavailable",
            Self::DiskFull(_) => "disk_full",
        }
    }
}

/// A store error as the client sees it: what it asked wrong is its to fix
/// (4xx); anything else is the store's trouble, and nothing was stored (503).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AppExists(_) => Self::Conflict(e.to_string()),
            StoreError::InvalidAppName(reason) => Self::bad("invalid_name", "name", reason),
            StoreError::Invalid(reason) => Self::bad("invalid_query", "", reason),
            StoreError::DiskFull(_) => Self::DiskFull(Box::new(e)),
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl ApiError {
    /// A failed commit: whatever the store said, nothing of the request was
    /// stored and a retry is safe (503, or 507 on a full disk). Shared,
    /// because one failed group commit answers every request in it.
    pub(crate) fn commit_failed(e: Arc<StoreError>) -> Self {
        if e.is_disk_full() {
            Self::DiskFull(Box::new(SharedStoreError(e)))
        } else {
            Self::Unavailable(Box::new(SharedStoreError(e)))
        }
    }
}

/// A store error, as the source of a 503 or 507 (logged, never sent).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct SharedStoreError(Arc<StoreError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Busy { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Incomplete(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        };
        match &self {
            Self::Unavailable(source) | Self::DiskFull(source) => {
                tracing::error!(%source, "Request failed in the store.")
            }
            _ => tracing::debug!(code = self.code(), reason = %self, "Request refused."),
        }
        let mut body = json!({"error": self.code(), "reason": self.to_string()});
        if let Self::BadRequest {
            field, rejected, ..
        } = &self
        {
            body["field"] = json!(field);
            if !rejected.is_empty() {
                body["rejected"] = json!(rejected);
            }
        }
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Busy { retry_after_s } | Self::RateLimited { retry_after_s, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            Self::DiskFull(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(DISK_FULL_RETRY_AFTER_S),
                );
            }
            // Answered before the body is read (or read in full): the rest
            // of it is still on the connection, which cannot carry another
            // request. Saying so keeps clients from reusing it and failing.
            Self::Unauthorized(_) | Self::Timeout(_) | Self::TooLarge(_) | Self::Unsupported(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a failed commit mapped through the request-path
    /// mapping answered 400 for `StoreError::Invalid`, which tells an SDK
    /// not to retry events that were never stored.
    #[test]
    fn a_failed_commit_is_503_whatever_the_store_said() {
        for e in [
            StoreError::Invalid("batch too large for one journal record".into()),
            StoreError::Unavailable("connection refused".into()),
        ] {
            let response = ApiError::commit_failed(Arc::new(e)).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    /// A full disk is 507 with a reason that names no file, and a delay.
    #[tokio::test]
    async fn a_full_disk_is_507_disk_full_with_retry_after() {
        let full = || {
            let enospc = std::io::Error::from_raw_os_error(28);
            StoreError::io("journal writing /srv/tally/journal/1.journal", enospc)
        };
        for error in [
            ApiError::commit_failed(Arc::new(full())),
            ApiError::from(full()),
        ] {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "60");
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .expect("body");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(body["error"], "disk_full");
            let reason = body["reason"].as_str().expect("reason");
            assert!(
                reason.contains("disk is full") && !reason.contains("/srv"),
                "{reason}"
            );
        }
    }
}
