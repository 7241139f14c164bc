//! How a server is set up.

use std::path::PathBuf;

use tally_protocol::Limits;
use tally_store::StoreSpec;

use crate::{CardinalityLimits, ConnectionLimits, RateLimits};

/// The settings of one server.
///
/// ```
/// let config = tally_server::Config::new("tally-data".into());
/// assert_eq!(config.limits.max_events_per_batch, 1000);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The data dir: the admin token, and the embedded store unless
    /// [`store`](Self::store) names another.
    pub data_dir: PathBuf,
    /// Where events are kept. [`Config::new`] makes it the embedded store
    /// of the data dir it is given; set both to move the data dir.
    pub store: StoreSpec,
    /// Forget events older than this many days (checked hourly); `None`
    /// keeps everything.
    pub retention_days: Option<u32>,
    /// What one batch request may hold.
    pub limits: Limits,
    /// How many connections may be open and how long each may take.
    pub connections: ConnectionLimits,
    /// Rate limits per app and per client.
    pub rate_limits: RateLimits,
    /// How many distinct values each field of an app's events may take
    /// per day before new ones are stored as `(other)`.
    pub cardinality: CardinalityLimits,
    /// Most bytes all requests in flight may hold (bodies as sent and
    /// inflated, events until committed); beyond it, clients get 429.
    pub max_in_flight_bytes: usize,
    /// When set, `GET /metrics` needs this token (or the admin token) as
    /// its bearer; unset, the metrics are open to anyone who can reach the
    /// server, and they name the apps and their volumes.
    pub metrics_token: Option<String>,
    /// Most events waiting to be committed; beyond it, clients get 429.
    pub queue_events: usize,
    /// Most events committed in one transaction.
    pub max_group_events: usize,
}

impl Config {
    /// Default settings for a data dir.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            store: StoreSpec::new(&data_dir, None),
            data_dir,
            retention_days: None,
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            rate_limits: RateLimits::default(),
            cardinality: CardinalityLimits::default(),
            max_in_flight_bytes: 256 * 1024 * 1024,
            metrics_token: None,
            queue_events: 200_000,
            max_group_events: 50_000,
        }
    }
}
