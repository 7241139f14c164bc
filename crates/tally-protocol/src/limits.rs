//! Size limits: what a server accepts, so that no client can make it use
//! unbounded memory.

/// The limits a server enforces on one batch request.
///
/// The defaults are the documented limits of format v1; a server may be
/// configured stricter, never looser than what its SDKs are told.
///
/// ```
/// let limits = tally_protocol::Limits::default();
/// assert_eq!(limits.max_events_per_batch, 1000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body as sent (compressed or not), in bytes.
    pub max_body_bytes: usize,
    /// Largest body after decompression, in bytes (guards against bombs).
    pub max_decoded_bytes: usize,
    /// Most events in one batch.
    pub max_events_per_batch: usize,
    /// Largest single event, as JSON text, in bytes.
    pub max_event_bytes: usize,
    /// How far an event's (skew-corrected) timestamp may lie in the future.
    pub max_future: time::Duration,
    /// How old an event may be; older ones are rejected.
    pub max_age: time::Duration,
    /// A client clock within this distance of the server's is trusted as is;
    /// beyond it, timestamps are shifted by the difference.
    pub skew_tolerance: time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_decoded_bytes: 8 * 1024 * 1024,
            max_events_per_batch: 1000,
            max_event_bytes: 32 * 1024,
            max_future: time::Duration::minutes(5),
            max_age: time::Duration::days(365),
            skew_tolerance: time::Duration::seconds(10),
        }
    }
}

/// The longest accepted value of each string field, in bytes.
pub mod strings {
    /// `app`
    pub const APP: usize = 64;
    /// `app_version`
    pub const VERSION: usize = 64;
    /// `name` of a custom event
    pub const EVENT_NAME: usize = 128;
    /// `command`
    pub const COMMAND: usize = 256;
    /// one flag name
    pub const FLAG: usize = 64;
    /// how many flags (a count, not bytes)
    pub const FLAGS: usize = 64;
    /// `os`, `arch`, `os_version`, `ci`, `agent`
    pub const PLATFORM: usize = 64;
    /// `error.kind`
    pub const ERROR_KIND: usize = 128;
    /// `error.message`
    pub const ERROR_MESSAGE: usize = 4096;
    /// `error.location`
    pub const ERROR_LOCATION: usize = 512;
    /// entries of `deps` or `properties` (a count)
    pub const MAP_ENTRIES: usize = 32;
    /// a key of `deps` or `properties`
    pub const MAP_KEY: usize = 64;
    /// a string value of `deps` or `properties`
    pub const MAP_VALUE: usize = 256;
}

/// Most spool drops one batch reports in `dropped`: a server counts no
/// more than this per request (a hostile number cannot inflate its metric),
/// so an SDK with more to report sends this many and the rest later.
pub const MAX_REPORTED_DROPPED: u64 = 100_000;
