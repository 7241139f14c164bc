//! Getting spooled events to the server, out of the CLI's way.
//!
//! The run that finished never waits for the network: it starts a detached
//! copy of its own executable in flush mode and exits. The flusher holds a
//! lock (one flusher per spool, however many runs start one), sends batches
//! until the spool is empty, and exits; a watchdog ends it at a hard
//! wall-clock limit whatever the network does. Failures open a circuit
//! breaker kept on disk, so later runs do not even start a flusher until the
//! backoff (or the server's `Retry-After`) has passed.
//!
//! A batch the server finds too large (413) is split in halves, each sent
//! the same way, down to single events; one still too large is dropped and
//! counted in the spool's drop count, which the next batch reports.

use std::path::Path;
use std::time::Duration;

use tally_protocol::Batch;

use crate::Shared;
use crate::breaker::{self, may_send, record_failure, record_success};
use crate::send::{Sent, failure_line, send};
use crate::spool::{Spooled, remove_all};

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

/// Starts a detached flusher if there is an endpoint and the breaker allows.
/// Costs one process spawn; never waits for it.
pub(crate) fn start_flusher(shared: &Shared) {
    let (Some(endpoint), Some(_), Some(dirs)) = (&shared.endpoint, &shared.key, &shared.dirs)
    else {
        return;
    };
    if let Some(open) = breaker::open(&dirs.cache, endpoint) {
        shared.debug(format_args!("not sending to {endpoint} yet: {open}"));
        return;
    }
    if flusher_at_work(&dirs.cache) {
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
        // In debug mode it says on the run's stderr why a send failed: the
        // lines may come after the run has exited.
        .stderr(if shared.debug {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        });
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
        while may_send(self.cache, self.endpoint) {
            let Ok(batch) = self.spool.oldest(BATCH_EVENTS, BATCH_BYTES) else {
                return false;
            };
            if batch.is_empty() {
                return true;
            }
            if !self.send_batch(&batch) {
                return false;
            }
        }
        false
    }

    /// Sends `batch` with the drop count. A batch the server finds too large
    /// (413) is sent again as two halves, each the same way, so what the
    /// server can take arrives; a single event still too large is dropped
    /// and counted. False when sending must stop for now.
    fn send_batch(&self, batch: &[Spooled]) -> bool {
        let Some(left) = self
            .deadline
            .checked_duration_since(std::time::Instant::now())
        else {
            return false;
        };
        let dropped = self
            .spool
            .dropped()
            .min(tally_protocol::MAX_REPORTED_DROPPED);
        let body = Batch {
            sent_at: time::OffsetDateTime::now_utc(),
            events: batch.iter().map(|s| s.event.clone()).collect(),
            dropped,
        };
        let timeout = left
            .saturating_sub(Duration::from_millis(500))
            .min(REQUEST_TIMEOUT);
        let shared = self.shared;
        match send(self.url, self.key, &shared.user_agent(), &body, timeout) {
            Sent::Stored => {
                record_success(self.cache, self.endpoint);
                remove_all(batch.iter().map(|s| s.path.as_path()));
                if let Err(e) = self.spool.reported_dropped(dropped) {
                    shared.debug(format_args!("could not reset the drop count: {e}"));
                }
                true
            }
            Sent::TooLarge if batch.len() > 1 => {
                let (first, second) = batch.split_at(batch.len() / 2);
                self.send_batch(first) && self.send_batch(second)
            }
            Sent::TooLarge => {
                shared.debug(format_args!(
                    "the server refused an event as too large (413); dropping it"
                ));
                remove_all(batch.iter().map(|s| s.path.as_path()));
                if let Err(e) = self.spool.count_dropped(1) {
                    shared.debug(format_args!("could not count the dropped event: {e}"));
                }
                true
            }
            Sent::Refused(status) => {
                // The server will never take this batch as it is (a malformed
                // request is our bug, not a reason to resend forever).
                shared.debug(format_args!(
                    "the server refused a batch with {status}; dropping it"
                ));
                remove_all(batch.iter().map(|s| s.path.as_path()));
                true
            }
            Sent::Later { retry_after, why } => {
                shared.debug(format_args!("{}", failure_line(self.url, &why)));
                record_failure(self.cache, self.endpoint, retry_after, &why);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::SpoolLimits;
    use crate::testing::{Endpoint, Received, closed_port, event};

    fn commands(batch: &Batch) -> Vec<String> {
        batch.events.iter().map(|e| e.command.clone()).collect()
    }

    /// Regression: a 413 deleted the whole batch, uncounted.
    #[test]
    fn a_batch_too_large_is_split_and_a_single_event_too_large_is_counted() {
        let endpoint = Endpoint::start(|batch| {
            let huge = batch.events.iter().any(|e| e.command == "huge");
            if huge || batch.events.len() > 3 {
                413
            } else {
                200
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = Shared::for_test(&endpoint.url, dir.path(), SpoolLimits::default());
        let spool = shared.spool();
        for n in 0..10 {
            let mut e = event(n);
            if n == 6 {
                e.command = "huge".into();
            }
            spool.append(&e).expect("append");
        }
        flush(&shared, Duration::from_secs(30));

        let received = endpoint.received();
        assert_eq!(received[0].batch.events.len(), 10);
        assert_eq!(received[0].status, 413);
        let stored: Vec<&Received> = received.iter().filter(|r| r.status == 200).collect();
        assert!(stored.iter().all(|r| r.batch.events.len() <= 3));
        let mut delivered: Vec<String> = stored.iter().flat_map(|r| commands(&r.batch)).collect();
        delivered.sort();
        assert_eq!(
            delivered,
            ["c0", "c1", "c2", "c3", "c4", "c5", "c7", "c8", "c9"]
        );
        assert!(spool.is_empty());
        // The batch after the drop reports it; once that is stored, the count is reset.
        let reported: Vec<u64> = stored.iter().map(|r| r.batch.dropped).collect();
        assert_eq!(reported, [0, 0, 0, 1]);
        assert_eq!(spool.dropped(), 0);
    }

    #[test]
    fn drops_while_the_endpoint_is_down_are_one_count_reported_when_it_is_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = SpoolLimits {
            events: 5,
            bytes: 1 << 20,
        };
        let down = Shared::for_test(&closed_port(), dir.path(), limits);
        for n in 0..50 {
            down.spool().append(&event(n)).expect("append");
            flush(&down, Duration::from_secs(30));
        }
        let spool_dir = dir.path().join("spool");
        let files = std::fs::read_dir(&spool_dir).expect("spool").count();
        assert_eq!(files, 5 + 2, "five events, the counter and its lock");
        assert_eq!(down.spool().dropped(), 45);

        let endpoint = Endpoint::start(|_| 200);
        let up = Shared::for_test(&endpoint.url, dir.path(), limits);
        flush(&up, Duration::from_secs(30));
        let received = endpoint.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].batch.events.len(), 5);
        assert_eq!(received[0].batch.dropped, 45);
        assert_eq!(up.spool().dropped(), 0);
        assert!(!spool_dir.join("dropped").exists());
    }
}
