//! Getting spooled events to the server, out of the CLI's way.
//!
//! The run that finished never waits for the network: it starts a detached
//! copy of its own executable in flush mode and exits. The flusher holds a
//! lock (one flusher per spool, however many runs start one), sends batches
//! until the spool is empty, and exits; a watchdog ends it at a hard
//! wall-clock limit whatever the network does. Failures open a circuit
//! breaker kept on disk, so later runs do not even start a flusher until the
//! backoff (or the server's `Retry-After`) has passed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tally_protocol::{Batch, IngestResponse};

use crate::Shared;
use crate::fsutil::write_atomic;
use crate::spool::remove_all;

/// The argument and variable that start an executable in flush mode.
pub(crate) const FLUSH_ARG: &str = "__tally_flush";
pub(crate) const FLUSH_ENV: &str = "TALLY_FLUSH_FOR";

/// The file a flusher holds locked while it sends the spool.
const FLUSH_LOCK: &str = "flush.lock";

/// Events per request; far under the server's limits.
const BATCH_EVENTS: usize = 200;
const BATCH_BYTES: usize = 512 * 1024;
/// Longest wait for one request, kept under the flusher's hard limit so a
/// black-holed endpoint ends in a recorded failure, not the watchdog.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff after the first failure, doubled per failure up to the cap.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_CAP: Duration = Duration::from_secs(6 * 3600);

/// Persisted circuit-breaker state: how often sending failed in a row and
/// when to try again. Kept per endpoint, so pointing the CLI somewhere else
/// starts afresh.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Breaker {
    endpoint: String,
    failures: u32,
    /// Milliseconds since the Unix epoch.
    retry_at_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn breaker_path(cache: &Path) -> PathBuf {
    cache.join("breaker.json")
}

fn load_breaker(cache: &Path, endpoint: &str) -> Breaker {
    std::fs::read(breaker_path(cache))
        .ok()
        .and_then(|b| serde_json::from_slice::<Breaker>(&b).ok())
        .filter(|b| b.endpoint == endpoint)
        .unwrap_or_else(|| Breaker {
            endpoint: endpoint.to_owned(),
            ..Breaker::default()
        })
}

/// Whether the breaker lets a flush happen now.
pub(crate) fn may_send(cache: &Path, endpoint: &str) -> bool {
    load_breaker(cache, endpoint).retry_at_ms <= now_ms()
}

fn record_failure(cache: &Path, endpoint: &str, retry_after: Option<Duration>) {
    let mut breaker = load_breaker(cache, endpoint);
    breaker.failures = breaker.failures.saturating_add(1);
    let backoff = BACKOFF_BASE
        .saturating_mul(1 << breaker.failures.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let wait = retry_after.map_or(backoff, |r| r.min(BACKOFF_CAP));
    breaker.retry_at_ms = now_ms() + wait.as_millis() as u64;
    save_breaker(cache, &breaker);
}

fn record_success(cache: &Path, endpoint: &str) {
    let breaker = load_breaker(cache, endpoint);
    if breaker.failures > 0 || breaker.retry_at_ms > 0 {
        save_breaker(
            cache,
            &Breaker {
                endpoint: endpoint.to_owned(),
                ..Breaker::default()
            },
        );
    }
}

fn save_breaker(cache: &Path, breaker: &Breaker) {
    if let Ok(json) = serde_json::to_vec(breaker) {
        let _ = write_atomic(&breaker_path(cache), &json);
    }
}

/// Starts a detached flusher if there is an endpoint and the breaker allows.
/// Costs one process spawn; never waits for it.
pub(crate) fn start_flusher(shared: &Shared) {
    let (Some(endpoint), Some(_), Some(dirs)) = (&shared.endpoint, &shared.key, &shared.dirs)
    else {
        return;
    };
    if !may_send(&dirs.cache, endpoint) || flusher_at_work(&dirs.cache) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command
        .arg(FLUSH_ARG)
        .env(FLUSH_ENV, &shared.app)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Its own process group: a Ctrl-C meant for the user's next command in
    // this terminal does not reach it, and it does not hold the terminal.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    if let Err(e) = command.spawn() {
        shared.debug(format_args!("could not start the flusher: {e}"));
    }
}

/// Whether a flusher holds the spool's lock. It looks at the spool again
/// after letting go of the lock, so it takes the event this run just
/// spooled, and this run saves the cost of starting another.
fn flusher_at_work(cache: &Path) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(cache.join(FLUSH_LOCK))
        .is_ok_and(|file| matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// Flush mode: send the spool and exit. Never returns.
pub(crate) fn run_flusher(shared: &Shared) -> ! {
    // Consent may have changed since the run that started this flusher.
    if !shared.consent.enabled {
        std::process::exit(0);
    }
    let limit = shared.flush_limit;
    // The watchdog: nothing below may keep this process alive past the limit.
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        std::process::exit(0);
    });
    flush(shared, limit);
    std::process::exit(0)
}

/// Sends spooled events until the spool is empty, sending fails, another
/// flusher holds the lock, or `budget` is spent.
pub(crate) fn flush(shared: &Shared, budget: Duration) {
    let (Some(endpoint), Some(key), Some(dirs)) = (&shared.endpoint, &shared.key, &shared.dirs)
    else {
        return;
    };
    let started = std::time::Instant::now();
    let Ok(lock) = std::fs::create_dir_all(&dirs.cache)
        .and_then(|()| std::fs::File::create(dirs.cache.join(FLUSH_LOCK)))
    else {
        return;
    };
    let spool = shared.spool();
    let url = format!("{}/v1/batch", endpoint.trim_end_matches('/'));
    loop {
        if lock.try_lock().is_err() {
            return; // another flusher is at work on this spool
        }
        let flush = Flush {
            shared,
            spool: &spool,
            url: &url,
            key,
            endpoint,
            cache: &dirs.cache,
            deadline: started + budget,
        };
        if !flush.send_spool() {
            return;
        }
        // A run may have spooled an event after the last look and seen the
        // lock taken; look again once it is free, so no event waits for the
        // next run just because of the timing.
        let _ = lock.unlock();
        if spool.is_empty() {
            return;
        }
    }
}

/// One flusher's view of where and what to send.
#[derive(Clone, Copy)]
struct Flush<'a> {
    shared: &'a Shared,
    spool: &'a crate::spool::Spool,
    url: &'a str,
    key: &'a str,
    endpoint: &'a str,
    cache: &'a Path,
    deadline: std::time::Instant,
}

impl Flush<'_> {
    /// Sends batches until the spool is empty (true) or sending must stop for
    /// now (false).
    fn send_spool(&self) -> bool {
        let Flush {
            shared,
            spool,
            url,
            key,
            endpoint,
            cache,
            deadline,
        } = *self;
        while may_send(cache, endpoint) {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                return false;
            };
            let Ok(batch) = spool.oldest(BATCH_EVENTS, BATCH_BYTES) else {
                return false;
            };
            if batch.is_empty() {
                return true;
            }
            let (dropped, markers) = spool.dropped();
            let body = Batch {
                sent_at: time::OffsetDateTime::now_utc(),
                events: batch.iter().map(|s| s.event.clone()).collect(),
                dropped,
            };
            let timeout = left
                .saturating_sub(Duration::from_millis(500))
                .min(REQUEST_TIMEOUT);
            match send(url, key, &shared.user_agent(), &body, timeout) {
                Sent::Stored => {
                    record_success(cache, endpoint);
                    remove_all(batch.iter().map(|s| s.path.as_path()));
                    remove_all(markers.iter().map(PathBuf::as_path));
                }
                Sent::Refused(status) => {
                    // The server will never take this batch as it is (a malformed
                    // request is our bug, not a reason to resend forever).
                    shared.debug(format_args!(
                        "the server refused a batch with {status}; dropping it"
                    ));
                    remove_all(batch.iter().map(|s| s.path.as_path()));
                }
                Sent::Later(retry_after) => {
                    record_failure(cache, endpoint, retry_after);
                    return false;
                }
            }
        }
        false
    }
}

enum Sent {
    Stored,
    Refused(u16),
    Later(Option<Duration>),
}

fn send(url: &str, key: &str, user_agent: &str, batch: &Batch, budget: Duration) -> Sent {
    let Ok(json) = serde_json::to_vec(batch) else {
        return Sent::Refused(0);
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gz.write_all(&json).is_err() {
        return Sent::Refused(0);
    }
    let Ok(body) = gz.finish() else {
        return Sent::Refused(0);
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(budget))
        .timeout_connect(Some(budget.min(Duration::from_secs(3))))
        .max_redirects(0)
        .build()
        .into();
    let response = agent
        .post(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .header("User-Agent", user_agent)
        .send(&body[..]);
    let mut response = match response {
        Ok(r) => r,
        Err(_) => return Sent::Later(None),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 => {
            // The body is checked so a proxy's 200 page does not count as stored.
            let mut text = String::new();
            let parsed = response
                .body_mut()
                .as_reader()
                .take(1 << 20)
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| serde_json::from_str::<IngestResponse>(&text).ok());
            if parsed.is_some() {
                Sent::Stored
            } else {
                Sent::Later(None)
            }
        }
        400 | 413 | 415 => Sent::Refused(status),
        _ => Sent::Later(retry_after),
    }
}
