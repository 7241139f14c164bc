//! Prometheus metrics at `GET /metrics`.
//!
//! Counters of events (accepted, duplicate, rejected by field) and requests
//! (by outcome), latency histograms of requests and commits, and the depth
//! of the commit queue. Labels come from fixed sets, never from client text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The top-level event fields, the only values of the `field` label.
const FIELDS: &[&str] = &[
    "id",
    "timestamp",
    "app",
    "app_version",
    "install_id",
    "command",
    "flags",
    "exit_code",
    "outcome",
    "duration_ms",
    "os",
    "arch",
    "os_version",
    "ci",
    "agent",
    "tty",
    "error",
    "deps",
    "properties",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabel {
    field: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DimensionLabel {
    dimension: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemaLabel {
    app: String,
    what: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScrubLabel {
    app: String,
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The server's metrics; cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    accepted: Counter,
    duplicates: Counter,
    client_dropped: Counter,
    ignored: Counter,
    rejected: Family<FieldLabel, Counter>,
    requests: Family<OutcomeLabel, Counter>,
    request_seconds: Histogram,
    commit_seconds: Histogram,
    commit_events: Histogram,
    queue_depth: Gauge,
    unloaded: Gauge,
    installs_in_memory: Gauge,
    connections_open: Gauge,
    connections_refused: Counter,
    connections_evicted: Counter,
    folded: Family<DimensionLabel, Counter>,
    scrubbed: Family<ScrubLabel, Counter>,
    erasures: Family<AppLabel, Counter>,
    schema_dropped: Family<SchemaLabel, Counter>,
    in_flight_bytes: Gauge,
    clients_remembered: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let inner = Inner {
            registry: Mutex::new(Registry::with_prefix("tally")),
            accepted: Counter::default(),
            duplicates: Counter::default(),
            client_dropped: Counter::default(),
            ignored: Counter::default(),
            rejected: Family::default(),
            requests: Family::default(),
            request_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            commit_events: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            queue_depth: Gauge::default(),
            unloaded: Gauge::default(),
            installs_in_memory: Gauge::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            connections_evicted: Counter::default(),
            folded: Family::default(),
            scrubbed: Family::default(),
            erasures: Family::default(),
            schema_dropped: Family::default(),
            in_flight_bytes: Gauge::default(),
            clients_remembered: Gauge::default(),
        };
        {
            let mut r = inner.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register("events_accepted", "Events stored", inner.accepted.clone());
            r.register(
                "events_duplicate",
                "Events already stored (retries)",
                inner.duplicates.clone(),
            );
            r.register(
                "client_dropped_events",
                "Events clients threw away from a full spool before sending",
                inner.client_dropped.clone(),
            );
            r.register(
                "messages_ignored",
                "PostHog and Segment messages accepted and not stored by design (identify, alias ...)",
                inner.ignored.clone(),
            );
            r.register(
                "events_rejected",
                "Events refused, by offending field",
                inner.rejected.clone(),
            );
            r.register(
                "requests",
                "Ingest requests, by outcome",
                inner.requests.clone(),
            );
            r.register(
                "request_duration_seconds",
                "Ingest request latency",
                inner.request_seconds.clone(),
            );
            r.register(
                "commit_duration_seconds",
                "Latency of one group commit",
                inner.commit_seconds.clone(),
            );
            r.register(
                "commit_group_events",
                "Events per group commit",
                inner.commit_events.clone(),
            );
            r.register(
                "queue_depth_events",
                "Events accepted but not yet committed",
                inner.queue_depth.clone(),
            );
            r.register(
                "store_unloaded_events",
                "Events committed durably but not yet in the store's tables",
                inner.unloaded.clone(),
            );
            r.register(
                "store_installs_in_memory",
                "Install ids whose numbers the store keeps in memory (a bounded cache; the rest are in its tables)",
                inner.installs_in_memory.clone(),
            );
            r.register(
                "connections_open",
                "Client connections open now",
                inner.connections_open.clone(),
            );
            r.register(
                "connections_refused",
                "Connections answered 503 and closed because too many were open",
                inner.connections_refused.clone(),
            );
            r.register(
                "connections_evicted",
                "Idle connections (between or before requests) closed to make room for a new one when too many were open",
                inner.connections_evicted.clone(),
            );
            r.register(
                "values_folded",
                "Event values stored as (other) because their field had too many distinct values today",
                inner.folded.clone(),
            );
            r.register(
                "scrubbed",
                "Free-text fields the server's scrubber changed on arrival, by app and rule (what the sender's own scrubbing missed)",
                inner.scrubbed.clone(),
            );
            r.register(
                "erasures",
                "Installs erased, by app (by the install itself or by an admin)",
                inner.erasures.clone(),
            );
            r.register(
                "schema_dropped",
                "Events and properties left out because the app's schema does not declare them (with undeclared = \"drop\"), by app",
                inner.schema_dropped.clone(),
            );
            r.register(
                "in_flight_bytes",
                "Bytes requests hold now (bodies, events until committed), of the memory budget",
                inner.in_flight_bytes.clone(),
            );
            r.register(
                "rate_limited_clients",
                "Client addresses (salted hashes, in memory) the rate limiter remembers now",
                inner.clients_remembered.clone(),
            );
        }
        Self {
            inner: Arc::new(inner),
        }
    }
}

/// Each forwarding destination's counts, encoded at every scrape.
#[derive(Debug)]
struct Forwarding(Vec<tally_forward::DestinationStats>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabel {
    app: String,
    destination: String,
}

impl DestinationLabel {
    fn of(d: &tally_forward::DestinationStats) -> Self {
        Self {
            app: d.app.clone(),
            destination: d.destination.clone(),
        }
    }
}

impl prometheus_client::collector::Collector for Forwarding {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use std::sync::atomic::{AtomicU64, Ordering};
        type Read = fn(&tally_forward::Stats) -> &AtomicU64;
        let counters: [(&str, &str, Read); 3] = [
            ("forward_events_sent", "Events a destination took", |s| {
                &s.sent
            }),
            (
                "forward_events_dead",
                "Events a destination refused for good (dead letters)",
                |s| &s.dead,
            ),
            (
                "forward_retries",
                "Attempts to send to a destination that failed and are tried again",
                |s| &s.retries,
            ),
        ];
        for (name, help, read) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for d in &self.0 {
                let label = DestinationLabel::of(d);
                ConstCounter::new(read(&d.stats).load(Ordering::Relaxed))
                    .encode(family.encode_family(&label)?)?;
            }
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        type Gauged = fn(&tally_forward::Stats, u64) -> u64;
        let gauges: [(&str, &str, Gauged); 3] = [
            (
                "forward_last_delivered_timestamp_seconds",
                "When a destination last took a batch (0: not since the server started)",
                |s, _| s.last_delivered.load(Ordering::Relaxed),
            ),
            (
                "forward_backlog_events",
                "Events stored and not yet delivered to a destination",
                |s, _| s.backlog(),
            ),
            (
                "forward_lag_seconds",
                "How long the oldest event not yet delivered to a destination has waited (0: none waits)",
                |s, now| match s.oldest_waiting.load(Ordering::Relaxed) {
                    0 => 0,
                    at => now.saturating_sub(at),
                },
            ),
        ];
        for (name, help, read) in gauges {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for d in &self.0 {
                let label = DestinationLabel::of(d);
                let value = i64::try_from(read(&d.stats, now)).unwrap_or(i64::MAX);
                ConstGauge::new(value).encode(family.encode_family(&label)?)?;
            }
        }
        Ok(())
    }
}

/// What the gauges read now, from the parts of the server that know.
pub(crate) struct Gauges {
    pub(crate) queue_depth: usize,
    pub(crate) unloaded: usize,
    pub(crate) installs_in_memory: usize,
    pub(crate) in_flight_bytes: usize,
    pub(crate) clients_remembered: usize,
}

/// Counts a connection as open until dropped.
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Counts a connection as open for as long as the guard lives.
    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.inner.connections_open.inc();
        OpenConnection(self.inner.connections_open.clone())
    }

    /// Adds the forwarding destinations' counts (labels from the config
    /// file, never from clients).
    pub(crate) fn register_forwarding(&self, destinations: Vec<tally_forward::DestinationStats>) {
        if destinations.is_empty() {
            return;
        }
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register_collector(Box::new(Forwarding(destinations)));
    }

    pub(crate) fn count_connection_refused(&self) {
        self.inner.connections_refused.inc();
    }

    pub(crate) fn count_connection_evicted(&self) {
        self.inner.connections_evicted.inc();
    }

    pub(crate) fn observe_commit(&self, took: Duration, events: usize) {
        self.inner.commit_seconds.observe(took.as_secs_f64());
        self.inner.commit_events.observe(events as f64);
    }

    /// Counts one finished ingest request: `outcome` is "ok" or an error code.
    pub(crate) fn observe_request(&self, outcome: &'static str, took: Duration) {
        self.inner
            .requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.inner.request_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn count_events(&self, accepted: usize, duplicates: usize) {
        self.inner.accepted.inc_by(accepted as u64);
        self.inner.duplicates.inc_by(duplicates as u64);
    }

    pub(crate) fn count_client_dropped(&self, dropped: u64) {
        self.inner.client_dropped.inc_by(dropped);
    }

    /// The metrics in the OpenMetrics text format, with the gauges set to
    /// what they are now.
    pub(crate) fn encode(&self, now: &Gauges) -> String {
        let set = |gauge: &Gauge, n: usize| {
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set(&self.inner.queue_depth, now.queue_depth);
        set(&self.inner.unloaded, now.unloaded);
        set(&self.inner.installs_in_memory, now.installs_in_memory);
        set(&self.inner.in_flight_bytes, now.in_flight_bytes);
        set(&self.inner.clients_remembered, now.clients_remembered);
        let mut text = String::new();
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(error = %e, "Encoding metrics failed.");
        }
        text
    }

    /// Counts `n` foreign messages ignored by design.
    pub(crate) fn count_ignored(&self, n: usize) {
        self.inner.ignored.inc_by(n as u64);
    }

    /// Counts a rejected event under the top-level field of `path`.
    pub(crate) fn count_rejected(&self, path: &str) {
        let top = path.split('.').next().unwrap_or_default();
        let field = FIELDS
            .iter()
            .find(|f| **f == top)
            .copied()
            .unwrap_or("other");
        self.inner
            .rejected
            .get_or_create(&FieldLabel { field })
            .inc();
    }

    /// Counts `n` fields of `app` in which the scrubber's `rule` replaced
    /// something.
    pub(crate) fn count_scrubbed(&self, app: &str, rule: &'static str, n: u64) {
        self.inner
            .scrubbed
            .get_or_create(&ScrubLabel {
                app: app.to_owned(),
                rule,
            })
            .inc_by(n);
    }

    /// Counts an event or a property (`what`) of `app` its schema dropped.
    pub(crate) fn count_schema_dropped(&self, app: &str, what: &'static str) {
        self.inner
            .schema_dropped
            .get_or_create(&SchemaLabel {
                app: app.to_owned(),
                what,
            })
            .inc();
    }

    /// Counts an erased install of `app`.
    pub(crate) fn count_erasure(&self, app: &str) {
        self.inner
            .erasures
            .get_or_create(&AppLabel {
                app: app.to_owned(),
            })
            .inc();
    }

    /// Counts `n` values of `dimension` (one of a fixed set of field
    /// names, see `cardinality.rs`) stored as `(other)`.
    pub(crate) fn count_folded(&self, dimension: &'static str, n: u64) {
        self.inner
            .folded
            .get_or_create(&DimensionLabel { dimension })
            .inc_by(n);
    }
}
