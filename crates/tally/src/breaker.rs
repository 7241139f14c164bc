//! The circuit breaker, kept on disk in `breaker.json`: how often sending
//! failed in a row, why it failed last, and when to try again. While it is
//! open no run starts a flusher, so a down endpoint costs a run one small
//! file read. It is kept per endpoint: pointing the CLI somewhere else
//! starts afresh.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// Backoff after the first failure, doubled per failure up to the cap.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_CAP: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Breaker {
    endpoint: String,
    failures: u32,
    /// Milliseconds since the Unix epoch.
    retry_at_ms: u64,
    /// Why the last send failed, for debug mode (absent in older files).
    #[serde(default)]
    last_failure: String,
}

/// An open breaker: why sending waits, as debug mode says it.
#[derive(Debug)]
pub(crate) struct Open {
    wait: Duration,
    failures: u32,
    last_failure: String,
}

impl fmt::Display for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} send(s) in a row failed, the last with: {}; the next try is in {} s",
            self.failures,
            self.last_failure,
            self.wait.as_millis().div_ceil(1000).max(1)
        )
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn path(cache: &Path) -> PathBuf {
    cache.join("breaker.json")
}

fn load(cache: &Path, endpoint: &str) -> Breaker {
    std::fs::read(path(cache))
        .ok()
        .and_then(|b| serde_json::from_slice::<Breaker>(&b).ok())
        .filter(|b| b.endpoint == endpoint)
        .unwrap_or_else(|| Breaker {
            endpoint: endpoint.to_owned(),
            ..Breaker::default()
        })
}

fn save(cache: &Path, breaker: &Breaker) {
    if let Ok(json) = serde_json::to_vec(breaker) {
        let _ = write_atomic(&path(cache), &json);
    }
}

/// The open breaker, or `None` when a flush may happen now.
pub(crate) fn open(cache: &Path, endpoint: &str) -> Option<Open> {
    let breaker = load(cache, endpoint);
    let wait = breaker.retry_at_ms.checked_sub(now_ms())?;
    (wait > 0).then(|| Open {
        wait: Duration::from_millis(wait),
        failures: breaker.failures,
        last_failure: breaker.last_failure,
    })
}

/// Whether the breaker lets a flush happen now.
pub(crate) fn may_send(cache: &Path, endpoint: &str) -> bool {
    open(cache, endpoint).is_none()
}

/// Opens the breaker for the backoff of one more failure in a row, or for
/// the server's `Retry-After`.
pub(crate) fn record_failure(
    cache: &Path,
    endpoint: &str,
    retry_after: Option<Duration>,
    why: &dyn fmt::Display,
) {
    let mut breaker = load(cache, endpoint);
    breaker.failures = breaker.failures.saturating_add(1);
    let backoff = BACKOFF_BASE
        .saturating_mul(1 << breaker.failures.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let wait = retry_after.map_or(backoff, |r| r.min(BACKOFF_CAP));
    breaker.retry_at_ms = now_ms() + wait.as_millis() as u64;
    breaker.last_failure = why.to_string();
    save(cache, &breaker);
}

/// Closes the breaker.
pub(crate) fn record_success(cache: &Path, endpoint: &str) {
    let breaker = load(cache, endpoint);
    if breaker.failures > 0 || breaker.retry_at_ms > 0 {
        save(
            cache,
            &Breaker {
                endpoint: endpoint.to_owned(),
                ..Breaker::default()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_breaker_says_why_and_for_how_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let endpoint = "http://127.0.0.1:9";
        assert!(may_send(dir.path(), endpoint));
        record_failure(dir.path(), endpoint, None, &"the server answered 503");
        let open = open(dir.path(), endpoint).expect("open");
        assert_eq!(
            open.to_string(),
            "1 send(s) in a row failed, the last with: the server answered 503; \
             the next try is in 5 s"
        );
        assert!(may_send(dir.path(), "http://elsewhere"));
        record_success(dir.path(), endpoint);
        assert!(may_send(dir.path(), endpoint));
    }
}
