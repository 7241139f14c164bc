//! How a server is set up.

use std::path::PathBuf;

use tally_protocol::Limits;
use tally_store::StoreSpec;

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
            queue_events: 200_000,
            max_group_events: 50_000,
        }
    }
}
