//! Logging in to the dashboard without copying the admin token out of a
//! file: `tally serve` prints a link whose fragment holds a one-time code
//! (a fragment never reaches a server's log or another site's referrer);
//! the dashboard trades it for a session, a bearer that expires.
//!
//! - `POST /api/v1/sessions` `{"code": ...}`: a code not used yet and not
//!   expired gives `201 {"token", "expires_in_s"}` once; any other code,
//!   used, expired or made up, the same `403`.
//! - `DELETE /api/v1/sessions` with a session as the bearer: logs it out.
//!
//! Sessions and codes live in memory only: a restart logs everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

/// How long a login link works.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long a session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 1000;

/// The login codes not used yet and the sessions open; shared.
#[derive(Default, Clone)]
pub(crate) struct Sessions(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    codes: HashMap<String, Instant>,
    sessions: HashMap<String, Instant>,
}

/// A random secret, as hex.
fn secret(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new login code, good once for [`CODE_LIFETIME`].
    pub(crate) fn code(&self) -> String {
        let code = secret("");
        let now = Instant::now();
        let mut inner = self.lock();
        inner.codes.retain(|_, until| *until > now);
        inner.codes.insert(code.clone(), now + CODE_LIFETIME);
        code
    }

    /// Trades `code` for a session token, if it is good; it is then used.
    fn open(&self, code: &str) -> Option<String> {
        let now = Instant::now();
        let mut inner = self.lock();
        let until = inner.codes.remove(code)?;
        if until <= now {
            return None;
        }
        inner.sessions.retain(|_, until| *until > now);
        if inner.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = inner
                .sessions
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(t, _)| t.clone())
        {
            inner.sessions.remove(&oldest);
        }
        let token = secret("ts_");
        inner.sessions.insert(token.clone(), now + SESSION_LIFETIME);
        Some(token)
    }

    /// Whether `token` is a session that has not expired.
    pub(crate) fn valid(&self, token: &str) -> bool {
        // Sessions look like this; the admin token never reaches the map.
        token.starts_with("ts_")
            && self
                .lock()
                .sessions
                .get(token)
                .is_some_and(|until| *until > Instant::now())
    }

    fn close(&self, token: &str) {
        self.lock().sessions.remove(token);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    code: String,
}

#[derive(Serialize)]
pub(crate) struct Opened {
    token: String,
    expires_in_s: u64,
}

/// `POST /api/v1/sessions`: a login code for a session.
pub(crate) async fn open(
    State(state): State<AppState>,
    Json(login): Json<Login>,
) -> Result<(StatusCode, Json<Opened>), ApiError> {
    let token = state
        .sessions()
        .open(&login.code)
        .ok_or(ApiError::Forbidden(
            "that login link was used already, has expired, or is not one: ask `tally serve` for a new one",
        ))?;
    Ok((
        StatusCode::CREATED,
        Json(Opened {
            token,
            expires_in_s: SESSION_LIFETIME.as_secs(),
        }),
    ))
}

/// `DELETE /api/v1/sessions`: logs the bearer's session out.
pub(crate) async fn close(State(state): State<AppState>, headers: HeaderMap) -> StatusCode {
    if let Some(token) = crate::auth::bearer(&headers) {
        state.sessions().close(token);
    }
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_opens_one_session_once() {
        let sessions = Sessions::default();
        let code = sessions.code();
        let token = sessions.open(&code).expect("a session");
        assert!(sessions.valid(&token));
        assert!(sessions.open(&code).is_none(), "used");
        assert!(sessions.open("made-up").is_none());
        sessions.close(&token);
        assert!(!sessions.valid(&token), "logged out");
    }
}
