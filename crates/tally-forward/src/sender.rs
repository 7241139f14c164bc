//! One thread per destination: reads the app's outbox from the
//! destination's cursor, sends a batch, and moves the cursor only once the
//! destination took the batch (or refused it for good, which makes its
//! events dead letters). Everything else is tried again, after a backoff
//! with jitter, or after what the destination's `Retry-After` asks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tally_protocol::StoredEvent;
use time::OffsetDateTime;

use crate::ForwardError;
use crate::config::{Destination, Secret};
use crate::encode::{self, Target};
use crate::outbox::{Cursor, Outbox};
use crate::state::{self, DeadLetter, State};

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// After the first failure (then doubled each time, with jitter).
    pub first: Duration,
    /// The longest wait, whatever a destination's `Retry-After` says.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after `failures` failures in a row: the doubled wait,
    /// between half of it and all of it (so that many servers retrying
    /// the same destination spread out), or what the destination asked.
    fn wait(&self, failures: u32, asked: Option<Duration>) -> Duration {
        if let Some(asked) = asked {
            return asked.min(self.max);
        }
        let full = self
            .first
            .saturating_mul(1 << failures.saturating_sub(1).min(20))
            .min(self.max);
        let half = full / 2;
        half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
    }
}

/// A destination's counts, shared with the server's metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events delivered.
    pub sent: AtomicU64,
    /// Events dead-lettered.
    pub dead: AtomicU64,
    /// Failed attempts.
    pub retries: AtomicU64,
    /// When a batch was last delivered, in seconds since the epoch (0:
    /// never since the start).
    pub last_delivered: AtomicU64,
}

/// What one attempt came to.
enum Sent {
    Delivered,
    /// Try again, after what the destination asked if it did.
    Again(String, Option<Duration>),
    /// The destination refuses this batch for good (a 4xx other than
    /// 408, 429, 401, 403 and 404, which a fixed config or a recovering
    /// destination may turn), with the status and its reason.
    Refused(u16, String),
}

/// Where the sender goes on from once a batch is delivered.
enum Next {
    Replay(u64),
    Outbox(Cursor),
}

/// The loop of one destination's thread.
pub(crate) struct Sender {
    pub dir: PathBuf,
    pub destination: Destination,
    pub secret: Secret,
    pub invocation_event: String,
    pub outbox: Arc<Outbox>,
    pub stats: Arc<Stats>,
    pub backoff: Backoff,
    pub stop: Arc<AtomicBool>,
    pub agent: ureq::Agent,
}

impl Sender {
    pub(crate) fn run(self) {
        if let Err(e) = self.deliver_all() {
            tracing::error!(destination = %self.destination.name, error = %e, "Forwarding stopped.");
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn deliver_all(&self) -> Result<(), ForwardError> {
        let mut state = State::load(&self.dir)?;
        let reader = self.outbox.register(state.cursor);
        let max = self.destination.batch_events();
        while !self.stopped() {
            // Dead letters queued for a replay go first.
            let (events, next) = match state::read_replay(&self.dir, state.replay_offset, max)? {
                (events, offset) if !events.is_empty() => (events, Next::Replay(offset)),
                _ => {
                    if state.replay_offset > 0 {
                        state::finish_replay(&self.dir)?;
                        state.replay_offset = 0;
                        state.save(&self.dir)?;
                    }
                    let (events, cursor) =
                        self.outbox
                            .read(state.cursor, max, Duration::from_millis(500))?;
                    if events.is_empty() {
                        continue;
                    }
                    (events, Next::Outbox(cursor))
                }
            };
            if !self.deliver(&events, &mut state)? {
                return Ok(());
            }
            match next {
                Next::Replay(offset) => state.replay_offset = offset,
                Next::Outbox(cursor) => {
                    state.cursor = cursor;
                    self.outbox.advance(reader, cursor);
                }
            }
            state.save(&self.dir)?;
        }
        Ok(())
    }

    /// Sends `events` until they are delivered or dead; false if the
    /// server stopped first.
    fn deliver(&self, events: &[StoredEvent], state: &mut State) -> Result<bool, ForwardError> {
        // A batch refused whole is halved until the events at fault are
        // found: only they become dead letters.
        let mut pending: Vec<&[StoredEvent]> = vec![events];
        let mut failures = 0;
        while let Some(batch) = pending.pop() {
            loop {
                if self.stopped() {
                    return Ok(false);
                }
                match self.attempt(batch) {
                    Sent::Delivered => {
                        failures = 0;
                        let n = batch.len() as u64;
                        state.sent += n;
                        let now = OffsetDateTime::now_utc();
                        state.last_delivered = Some(now);
                        self.stats.sent.fetch_add(n, Ordering::Relaxed);
                        self.stats
                            .last_delivered
                            .store(now.unix_timestamp().max(0) as u64, Ordering::Relaxed);
                        break;
                    }
                    Sent::Refused(_, _) if batch.len() > 1 => {
                        let (first, second) = batch.split_at(batch.len() / 2);
                        pending.push(second);
                        pending.push(first);
                        break;
                    }
                    Sent::Refused(status, reason) => {
                        let at = OffsetDateTime::now_utc();
                        let letters: Vec<DeadLetter> = batch
                            .iter()
                            .map(|event| DeadLetter {
                                at,
                                status,
                                reason: reason.clone(),
                                event: event.clone(),
                            })
                            .collect();
                        state::bury(&self.dir, &letters)?;
                        state.dead += letters.len() as u64;
                        state.last_error = Some(format!("{status}: {reason}"));
                        self.stats
                            .dead
                            .fetch_add(letters.len() as u64, Ordering::Relaxed);
                        tracing::warn!(destination = %self.destination.name, status, %reason, "A destination refused an event; it is a dead letter.");
                        break;
                    }
                    Sent::Again(reason, asked) => {
                        failures += 1;
                        state.retries += 1;
                        state.last_error = Some(reason.clone());
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        let wait = self.backoff.wait(failures, asked);
                        tracing::debug!(destination = %self.destination.name, %reason, ?wait, "Forwarding failed; trying again.");
                        self.sleep(wait);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Sleeps `wait`, or less if the server stops meanwhile.
    fn sleep(&self, wait: Duration) {
        let step = Duration::from_millis(50);
        let mut left = wait;
        while !left.is_zero() && !self.stopped() {
            let now = left.min(step);
            std::thread::sleep(now);
            left -= now;
        }
    }

    fn attempt(&self, batch: &[StoredEvent]) -> Sent {
        let target = Target {
            kind: self.destination.kind,
            url: &self.destination.url,
            secret: &self.secret,
            fields: &self.destination.fields,
            invocation_event: &self.invocation_event,
        };
        let request = encode::request(&target, batch, OffsetDateTime::now_utc());
        let mut call = self.agent.post(&request.url);
        for (name, value) in &request.headers {
            call = call.header(*name, value);
        }
        match call.send(&request.body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let asked = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let reason = response
                    .body_mut()
                    .with_config()
                    .limit(512)
                    .read_to_string()
                    .unwrap_or_default();
                let reason: String = reason.chars().take(200).collect();
                match status {
                    200..=299 => Sent::Delivered,
                    400..=499 if !matches!(status, 401 | 403 | 404 | 408 | 425 | 429) => {
                        Sent::Refused(status, reason)
                    }
                    _ => Sent::Again(format!("{status}: {reason}"), asked),
                }
            }
            Err(e) => Sent::Again(e.to_string(), None),
        }
    }
}
