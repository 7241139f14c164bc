//! Tally's wire format, version 1: what an SDK sends to `POST /v1/batch`,
//! and the line format events are exported in ([`StoredEvent`]).
//!
//! Depend on this crate when you write something that speaks to a Tally
//! server (an SDK, a load generator, a forwarder) or that receives from one.
//! It holds the types, the validation rules and the size limits, and does no
//! I/O. The contract in prose is `docs/protocol.md`.
//!
//! ```
//! use tally_protocol::{decode_batch, Limits};
//! use time::macros::datetime;
//!
//! let body = br#"{"sent_at": "2026-11-25T12:00:00Z", "events": [{
//!     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01",
//!     "timestamp": "2026-11-25T11:59:58Z",
//!     "app": "mycli", "app_version": "1.4.2",
//!     "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
//!     "command": "deploy", "flags": ["--force"], "exit_code": 0,
//!     "duration_ms": 1200, "os": "linux", "arch": "x86_64"
//! }]}"#;
//! let now = datetime!(2026-11-25 12:00:00 UTC);
//! let batch = decode_batch(body, "mycli", now, &Limits::default())?;
//! assert_eq!(batch.events.len(), 1);
//! assert_eq!(batch.events[0].command, "deploy");
//! assert!(batch.rejected.is_empty());
//! # Ok::<(), tally_protocol::BatchError>(())
//! ```

mod batch;
pub mod clock;
mod event;
mod install;
mod limits;
pub mod platform;
pub mod schema;
mod stored;
mod user_agent;
mod validate;

pub use batch::{
    Batch, BatchError, DecodedBatch, IngestResponse, Invalid, RawArray, Rejection, admit,
    decode_batch, decode_import, read_json,
};
pub use event::{ErrorInfo, Event, Outcome, PropertyValue, Source, flag_name};
pub use install::{InstallSecret, owns};
pub use limits::{Limits, MAX_REPORTED_DROPPED, strings};
pub use stored::StoredEvent;
pub use user_agent::{NotTallyUserAgent, UserAgent};

/// Checks that `name` can name an app: 1 to 64 ASCII letters, digits, `-`,
/// `_` or `.`, starting with a letter or digit. The error is a sentence.
///
/// ```
/// assert!(tally_protocol::check_app_name("my-cli").is_ok());
/// assert!(tally_protocol::check_app_name("my cli").is_err());
/// ```
pub fn check_app_name(name: &str) -> Result<(), String> {
    validate::app_name(name)
}

/// What the SDK's environment variables of `app` start with: its name in
/// upper case, anything but letters and digits as `_`
/// (`MY_CLI_TELEMETRY_DISABLED` for `my-cli`).
///
/// ```
/// assert_eq!(tally_protocol::env_prefix("my-cli"), "MY_CLI");
/// ```
pub fn env_prefix(app: &str) -> String {
    app.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The version of the wire format this crate speaks; it is also the `v1` in
/// the ingest path `/v1/batch`.
pub const FORMAT_VERSION: u32 = 1;
