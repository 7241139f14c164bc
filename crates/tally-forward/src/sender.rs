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
use crate::encode::{self, Request, Target};
use crate::erasure::{Deleter, Erasure, Erasures};
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
            // `Retry-After: 0` is no reason to hammer a destination.
            return asked.max(self.first).min(self.max);
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
    /// The outbox's count of appended events, and what to add to it for
    /// the backlog (the backlog at the start, less what the outbox had
    /// appended then, less what was read since): so the backlog is right
    /// at any moment, also while a batch hangs.
    appended: Arc<AtomicU64>,
    backlog_offset: std::sync::atomic::AtomicI64,
    /// Events delivered.
    pub sent: AtomicU64,
    /// Events dead-lettered.
    pub dead: AtomicU64,
    /// Failed attempts.
    pub retries: AtomicU64,
    /// When a batch was last delivered, in seconds since the epoch (0:
    /// never since the start).
    pub last_delivered: AtomicU64,
    /// When the oldest event not yet delivered was received, in seconds
    /// since the epoch (0: none waits).
    pub oldest_waiting: AtomicU64,
}

/// Dead letters in a row, without a delivery between them, after which a
/// destination is taken to refuse everything (a wrong path, a receiver
/// that fails every signature): the events then wait, as for a 5xx,
/// instead of all becoming dead letters.
const REFUSED_IN_A_ROW: u32 = 10;

impl Stats {
    /// Counts for a destination of `outbox`.
    pub(crate) fn of(outbox: &Outbox) -> Self {
        Self {
            appended: outbox.appended_counter(),
            ..Self::default()
        }
    }

    /// Events stored and not yet delivered (or dead-lettered), now.
    pub fn backlog(&self) -> u64 {
        let appended = self.appended.load(Ordering::Relaxed) as i64;
        (appended + self.backlog_offset.load(Ordering::Relaxed)).max(0) as u64
    }
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
    /// The request would be over the destination's limit, in bytes: not
    /// sent.
    TooLarge(usize),
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
    /// Its place among the outbox's readers.
    pub reader: usize,
    /// The erasures it passes on, and how, if it can.
    pub erasing: Option<(Arc<Erasures>, Deleter)>,
    /// The app whose events it forwards.
    pub app: String,
}

impl Sender {
    /// Delivers until the server stops; a failure of the forwarding's own
    /// files (a full disk) is tried again after a backoff, never the end
    /// of the destination.
    pub(crate) fn run(self) {
        let mut failures = 0;
        while !self.stopped() {
            match self.deliver_all() {
                Ok(()) => return,
                Err(e) => {
                    failures += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(destination = %self.destination.name, error = %e, "Forwarding failed on its own files; trying again.");
                    self.sleep(self.backoff.wait(failures, None));
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn deliver_all(&self) -> Result<(), ForwardError> {
        let mut state = State::load(&self.dir)?;
        let max = self.destination.batch_events();
        let mut refused = 0;
        // The backlog: what was behind the cursor at the start, and what
        // came since, less what was read.
        let behind = state::backlog(self.outbox.dir(), state.cursor)?;
        self.stats.backlog_offset.store(
            behind as i64 - self.outbox.appended() as i64,
            Ordering::Relaxed,
        );
        while !self.stopped() {
            // An erasure goes once the install's events before it went.
            if let Some((erasures, deleter)) = &self.erasing
                && let Some(erasure) = erasures.due(state.cursor)?
            {
                if !self.pass_on(erasures, deleter, &erasure, &mut state)? {
                    return Ok(());
                }
                continue;
            }
            // Dead letters queued for a replay go first.
            let (events, next) = match state::read_replay(&self.dir, state.replay_offset, max)? {
                (events, offset) if !events.is_empty() => (events, Next::Replay(offset)),
                _ => {
                    if state.replay_offset > 0 {
                        // Saved first: a crash between the two sends the
                        // replay again rather than reading a new one from
                        // the old offset.
                        state.replay_offset = 0;
                        state.save(&self.dir)?;
                        state::finish_replay(&self.dir)?;
                    }
                    let (events, cursor) =
                        self.outbox
                            .read(state.cursor, max, Duration::from_millis(500))?;
                    if events.is_empty() {
                        // It may still have moved past a finished segment.
                        state.cursor = cursor;
                        self.stats.oldest_waiting.store(0, Ordering::Relaxed);
                        continue;
                    }
                    (events, Next::Outbox(cursor))
                }
            };
            let received = events[0].received_at.unix_timestamp().max(1) as u64;
            self.stats.oldest_waiting.store(received, Ordering::Relaxed);
            if !self.deliver(&events, &mut state, &mut refused)? {
                return Ok(());
            }
            if matches!(next, Next::Outbox(_)) {
                self.stats
                    .backlog_offset
                    .fetch_sub(events.len() as i64, Ordering::Relaxed);
            }
            match next {
                Next::Replay(offset) => state.replay_offset = offset,
                Next::Outbox(cursor) => {
                    state.cursor = cursor;
                    self.outbox.advance(self.reader, cursor);
                }
            }
            state.save(&self.dir)?;
        }
        Ok(())
    }

    /// Sends `events` until they are delivered or dead; false if the
    /// server stopped first.
    fn deliver(
        &self,
        events: &[StoredEvent],
        state: &mut State,
        refused: &mut u32,
    ) -> Result<bool, ForwardError> {
        // A batch refused whole is halved until the events at fault are
        // found: only they become dead letters.
        let mut pending: Vec<&[StoredEvent]> = vec![events];
        let mut failures = 0;
        while let Some(batch) = pending.pop() {
            loop {
                if self.stopped() {
                    return Ok(false);
                }
                let (retry, asked) = match self.attempt(batch) {
                    Sent::Delivered => {
                        *refused = 0;
                        self.delivered(batch.len() as u64, state);
                        break;
                    }
                    Sent::Refused(status, reason) if *refused >= REFUSED_IN_A_ROW => (
                        format!(
                            "{status}: {reason} (everything refused of late: waiting for the destination or its config to be fixed)"
                        ),
                        None,
                    ),
                    Sent::Refused(..) | Sent::TooLarge(_) if batch.len() > 1 => {
                        let (first, second) = batch.split_at(batch.len() / 2);
                        pending.push(second);
                        pending.push(first);
                        break;
                    }
                    Sent::Refused(status, reason) => {
                        *refused += 1;
                        self.bury(batch, status, reason, state)?;
                        break;
                    }
                    Sent::TooLarge(limit) => {
                        let reason =
                            format!("over the destination's limit of {limit} bytes a request");
                        self.bury(batch, 413, reason, state)?;
                        break;
                    }
                    Sent::Again(reason, _)
                        if self
                            .destination
                            .max_attempts
                            .is_some_and(|n| failures + 1 >= n) =>
                    {
                        let reason = format!("given up after {} attempts: {reason}", failures + 1);
                        self.bury(batch, 0, reason, state)?;
                        failures = 0;
                        break;
                    }
                    Sent::Again(reason, asked) => (reason, asked),
                };
                failures += 1;
                state.retries += 1;
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                let wait = self.backoff.wait(failures, asked);
                tracing::debug!(destination = %self.destination.name, reason = %retry, ?wait, "Forwarding failed; trying again.");
                state.last_error = Some(retry);
                // So that `tally forward status` shows why it waits.
                state.save(&self.dir)?;
                self.sleep(wait);
            }
        }
        Ok(true)
    }

    /// Tells the destination of `erasure` until it took it or refused it
    /// for good (or gave up after `max_attempts`); false if the server
    /// stopped first.
    fn pass_on(
        &self,
        erasures: &Erasures,
        deleter: &Deleter,
        erasure: &Erasure,
        state: &mut State,
    ) -> Result<bool, ForwardError> {
        let mut failures = 0;
        loop {
            if self.stopped() {
                return Ok(false);
            }
            let request = deleter.request(&self.app, erasure, OffsetDateTime::now_utc());
            let refused = match self.post(&request) {
                Sent::Delivered => None,
                Sent::Refused(status, reason) => Some(format!("{status}: {reason}")),
                Sent::TooLarge(limit) => Some(format!("over the limit of {limit} bytes")),
                Sent::Again(reason, _)
                    if self
                        .destination
                        .max_attempts
                        .is_some_and(|n| failures + 1 >= n) =>
                {
                    Some(format!(
                        "given up after {} attempts: {reason}",
                        failures + 1
                    ))
                }
                Sent::Again(reason, asked) => {
                    failures += 1;
                    state.retries += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    state.last_error = Some(format!("passing on an erasure: {reason}"));
                    state.save(&self.dir)?;
                    self.sleep(self.backoff.wait(failures, asked));
                    continue;
                }
            };
            match refused {
                None => {
                    tracing::info!(destination = %self.destination.name, "An erasure was passed on.")
                }
                Some(reason) => {
                    // The install's id is not kept for an erasure that
                    // cannot go: the operator is told, here and in the
                    // status, to delete it there by hand.
                    tracing::error!(destination = %self.destination.name, %reason, "A destination refused an erasure; delete the install there by hand.");
                    state.last_error = Some(format!("an erasure was refused: {reason}"));
                }
            }
            erasures.done(erasure)?;
            state.save(&self.dir)?;
            return Ok(true);
        }
    }

    fn delivered(&self, n: u64, state: &mut State) {
        state.sent += n;
        let now = OffsetDateTime::now_utc();
        state.last_delivered = Some(now);
        self.stats.sent.fetch_add(n, Ordering::Relaxed);
        self.stats
            .last_delivered
            .store(now.unix_timestamp().max(0) as u64, Ordering::Relaxed);
    }

    /// Keeps `batch` as dead letters, refused with `status` and `reason`.
    fn bury(
        &self,
        batch: &[StoredEvent],
        status: u16,
        reason: String,
        state: &mut State,
    ) -> Result<(), ForwardError> {
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
        let n = letters.len() as u64;
        state.dead += n;
        self.stats.dead.fetch_add(n, Ordering::Relaxed);
        tracing::warn!(destination = %self.destination.name, status, %reason, "A destination refused an event; it is a dead letter.");
        state.last_error = Some(format!("{status}: {reason}"));
        Ok(())
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
        if let Some(limit) = self.destination.max_request_bytes()
            && request.body.len() > limit
        {
            return Sent::TooLarge(limit);
        }
        self.post(&request)
    }

    /// Sends `request`, and says what came of it.
    fn post(&self, request: &Request) -> Sent {
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
                    // Not followed (a POST redirected is a GET without the
                    // events): the URL is to be fixed.
                    300..=399 => Sent::Again(
                        format!("{status}: redirected; set the url to where it leads"),
                        None,
                    ),
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
