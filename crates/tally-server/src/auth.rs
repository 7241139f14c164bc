//! Who may do what: ingest keys (public, per app) and the admin token
//! (secret, one per data dir).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::{ApiError, ServeError};

/// The admin token's file name inside the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Reads the admin token of `data_dir`, creating it (readable by its owner
/// only) on first start.
pub fn load_or_create_admin_token(data_dir: &Path) -> Result<String, ServeError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let err = |source| ServeError::AdminToken {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    tally_store::owner_only::create_dir(data_dir).map_err(err)?;
    let token = format!(
        "ta_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = tally_store::owner_only::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(err)?;
    file.write_all(token.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(token)
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The ingest key a request's headers carry: a bearer token, or Basic
/// auth's user name (Segment's clients send the write key as
/// `writeKey:` with an empty password).
pub(crate) fn ingest_key(headers: &axum::http::HeaderMap) -> Option<String> {
    use base64::Engine;
    if let Some(key) = bearer(headers) {
        return Some(key.to_owned());
    }
    let basic = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    (!user.is_empty()).then(|| user.to_owned())
}

/// The admin token of a running server: the one real secret; and the
/// dashboard's sessions, which stand for it until they expire.
#[derive(Clone)]
pub(crate) struct AdminToken(Arc<str>, crate::sessions::Sessions);

impl AdminToken {
    pub(crate) fn new(token: &str, sessions: crate::sessions::Sessions) -> Self {
        Self(Arc::from(token), sessions)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `token` is this token (compared in constant time) or an
    /// open session.
    pub(crate) fn is(&self, token: &str) -> bool {
        same(token, &self.0) || self.1.valid(token)
    }
}

/// Whether two secrets are the same, compared in constant time.
pub(crate) fn same(given: &str, wanted: &str) -> bool {
    let (a, b) = (given.as_bytes(), wanted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Proof that a request carries the admin token; add it to a handler's
/// arguments to require the token.
pub(crate) struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AdminToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            Some(token) if AdminToken::from_ref(state).is(token) => Ok(Admin),
            Some(_) => Err(ApiError::Unauthorized(
                "this endpoint needs the admin token (an ingest key cannot read)",
            )),
            None => Err(ApiError::Unauthorized(
                "missing header Authorization: Bearer <admin token>",
            )),
        }
    }
}
