//! Who may do what: ingest keys (public, per app) and the admin token
//! (secret, one per data dir).

use std::io::Write;
use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::{ApiError, ServeError};
use crate::state::AppState;

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
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let token = format!(
        "ta_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(err)?;
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

/// Proof that a request carries the admin token; add it to a handler's
/// arguments to require the token.
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            Some(token) if state.is_admin_token(token) => Ok(Admin),
            Some(_) => Err(ApiError::Unauthorized(
                "this endpoint needs the admin token (an ingest key cannot read)",
            )),
            None => Err(ApiError::Unauthorized(
                "missing header Authorization: Bearer <admin token>",
            )),
        }
    }
}
