//! What the defender sees in `tally-bench hostile`: legitimate clients
//! sending as the SDK does, a load balancer's health check, and the
//! server's memory.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::hostile::{Addresses, Target, agent, post};
use crate::server::memory_mb;
use crate::stats::{Latencies, Outcomes};

/// Events per legitimate batch: what an SDK's flush of a busy spool sends.
pub(crate) const BATCH: usize = 100;
/// The first octets of the legitimate clients' addresses.
const ADDRESS_SPACE: u8 = 1;
/// How many addresses each legitimate client thread stands for: it plays
/// many installs of a CLI, each of which sends now and then.
const ADDRESSES_PER_CLIENT: u32 = 250;
/// How long the SDK waits after a failure without a `Retry-After`.
const BACKOFF: Duration = Duration::from_millis(250);
/// How long one send may take before the SDK gives up on it (and retries).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_EVERY: Duration = Duration::from_millis(50);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What the legitimate clients saw.
#[derive(Default)]
pub(crate) struct LegitReport {
    /// Events made to be sent (at the rate asked, whatever the server
    /// answered: CLI runs do not wait for the endpoint).
    pub(crate) offered: u64,
    /// Events in batches the server acknowledged.
    pub(crate) acked: u64,
    /// Events in batches the server refused for good (a 4xx that retrying
    /// does not cure): the SDK drops them.
    pub(crate) dropped: u64,
    /// Events still waiting for an acknowledgement when the phase ended.
    pub(crate) pending: u64,
    /// Every answer that was not an acknowledgement, by status or error.
    pub(crate) refusals: Outcomes,
    /// From a batch's making to its acknowledgement, retries included.
    pub(crate) ack_latency: Latencies,
}

impl LegitReport {
    fn merge(&mut self, other: Self) {
        self.offered += other.offered;
        self.acked += other.acked;
        self.dropped += other.dropped;
        self.pending += other.pending;
        self.refusals.merge(other.refusals);
        self.ack_latency.extend(other.ack_latency);
    }
}

/// Runs `clients` legitimate client threads from `start` to `deadline`,
/// sending `rate` events per second among them (0: as fast as they can).
pub(crate) fn clients(
    target: &Target,
    clients: usize,
    rate: u64,
    start: Instant,
    deadline: Instant,
) -> LegitReport {
    let counter = AtomicU64::new(0);
    let interval =
        (rate > 0).then(|| Duration::from_secs_f64(clients as f64 * BATCH as f64 / rate as f64));
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|client| {
                let counter = &counter;
                // Clients start spread over one interval, not all at once.
                let first = start
                    + interval.map_or(Duration::ZERO, |i| {
                        i.mul_f64(client as f64 / clients as f64)
                    });
                let from = Addresses::new(
                    ADDRESS_SPACE,
                    client as u32 * ADDRESSES_PER_CLIENT,
                    ADDRESSES_PER_CLIENT,
                );
                s.spawn(move || client_loop(target, counter, interval, first, deadline, from))
            })
            .collect();
        let mut report = LegitReport::default();
        for thread in threads {
            report.merge(thread.join().unwrap_or_default());
        }
        report
    })
}

/// One legitimate client, as the SDK of many CLI runs: a fresh batch is
/// made every `interval` from `first` (or whenever none is waiting, with
/// no interval) into a spool that is sent oldest first, each send on a new
/// connection (every run of a CLI is a new process), a refused batch sent
/// again with its ids unchanged after `Retry-After`.
fn client_loop(
    target: &Target,
    counter: &AtomicU64,
    interval: Option<Duration>,
    first: Instant,
    deadline: Instant,
    mut from: Addresses,
) -> LegitReport {
    let agent = agent(false);
    let mut report = LegitReport::default();
    let mut spool: VecDeque<(Vec<u8>, Instant)> = VecDeque::new();
    let mut next = first;
    let batch = || crate::load::body(&target.app, BATCH, counter, true);
    while Instant::now() < deadline {
        let now = Instant::now();
        match interval {
            Some(interval) => {
                while next <= now {
                    spool.push_back((batch(), next));
                    report.offered += BATCH as u64;
                    next += interval;
                }
            }
            None if spool.is_empty() => {
                spool.push_back((batch(), now));
                report.offered += BATCH as u64;
            }
            None => {}
        }
        let Some((body, made)) = spool.front() else {
            std::thread::sleep(next.min(deadline).saturating_duration_since(now));
            continue;
        };
        let answer = post(&agent, target, body, &from.next_address(), SEND_TIMEOUT);
        if answer.ok {
            report.acked += BATCH as u64;
            report.ack_latency.push(made.elapsed());
            spool.pop_front();
            continue;
        }
        let retry = answer.retry_after;
        // What the SDK keeps to send again: what the server asked it to
        // retry, timeouts, and failures that are not the request's.
        let transient = retry.is_some()
            || ["408", "429"].contains(&answer.outcome.as_str())
            || !answer.outcome.starts_with('4');
        report.refusals.add(answer.outcome);
        if !transient {
            report.dropped += BATCH as u64;
            spool.pop_front();
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(retry.unwrap_or(BACKOFF).min(left));
    }
    report.pending = (spool.len() * BATCH) as u64;
    report
}

/// What the health check saw.
#[derive(Default)]
pub(crate) struct ProbeReport {
    /// Latency of the probes answered 200.
    pub(crate) ok: Latencies,
    /// The probes that were not, by status or error.
    pub(crate) failed: Outcomes,
}

/// `GET /healthz` every 50 ms until `deadline`, each on a new connection
/// as a load balancer's health check makes it, with a 2 s timeout.
pub(crate) fn probe(target: &Target, deadline: Instant) -> ProbeReport {
    let agent = agent(false);
    let mut report = ProbeReport::default();
    let mut next = Instant::now();
    while next < deadline {
        let sent = Instant::now();
        let probed = agent
            .get(format!("{}/healthz", target.url))
            .config()
            .timeout_global(Some(PROBE_TIMEOUT))
            .build()
            .call();
        match probed {
            Ok(response) if response.status().is_success() => report.ok.push(sent.elapsed()),
            Ok(response) => report.failed.add(response.status().as_str()),
            Err(e) => report.failed.add(Outcomes::of_error(&e)),
        }
        next += PROBE_EVERY;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    report
}

/// The highest resident memory of process `pid` seen every 100 ms until
/// `deadline`, in MB.
pub(crate) fn peak_rss_mb(pid: u32, deadline: Instant) -> Option<f64> {
    let pid = pid.to_string();
    let mut peak = None;
    while Instant::now() < deadline {
        if let Some(mb) = memory_mb(&pid, "VmRSS:") {
            peak = Some(peak.map_or(mb, |p: f64| p.max(mb)));
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    peak
}
