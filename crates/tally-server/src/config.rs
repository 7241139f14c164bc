//! How a server is set up.

use std::path::PathBuf;

use tally_protocol::Limits;

/// The settings of one server.
///
/// ```
/// let config = tally_server::Config::new("tally-data".into());
/// assert_eq!(config.limits.max_events_per_batch, 1000);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The data dir: the embedded store's file and the admin token.
    pub data_dir: PathBuf,
    /// A shared store instead of the embedded one, e.g.
    /// `clickhouse://127.0.0.1:8123/tally` (the admin token stays in the
    /// data dir).
    pub store: Option<String>,
    /// Forget events older than this many days (checked hourly); `None`
    /// keeps everything.
    pub retention_days: Option<u32>,
    /// What one batch request may hold.
    pub limits: Limits,
    /// Most events waiting to be committed; beyond it, clients get 429.
    pub queue_events: usize,
    /// Most events committed in one transaction.
    pub max_group_events: usize,
    /// How many recent event ids the store keeps in memory for dedupe.
    pub recent_ids: usize,
}

impl Config {
    /// Default settings for a data dir.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            store: None,
            retention_days: None,
            limits: Limits::default(),
            queue_events: 200_000,
            max_group_events: 50_000,
            recent_ids: tally_store::DuckDbStore::DEFAULT_RECENT_IDS,
        }
    }
}
