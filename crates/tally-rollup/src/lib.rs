//! Rollups, what Tally's reports read instead of the raw events, and the
//! reports themselves.
//!
//! Depend on this crate to write a store backend (implement [`Source`] and
//! store the rows [`Rollups`] makes) or to answer reports over events held
//! some other way ([`MemorySource`]). It does no I/O and links no database.
//!
//! Every invocation event adds to one row per [`Kind`], keyed by its UTC
//! day, app, version, OS, environment and the kind's own dimensions
//! ([`Dim`]: the command and outcome, a flag, an error, ...). A row holds
//! exact counts, the first and last time seen, a [`Histogram`] of durations,
//! and the *set* of installs as a compressed bitmap of install numbers
//! ([`Installs`]). Sets, not counts, because distinct installs over a week
//! are not the sum of distinct installs per day; a union of bitmaps is, and
//! it stays exact.
//!
//! A backend stores the rows it makes at ingest in the same transaction as
//! the events (so rollups are exactly-once as the events are), may append
//! several rows for one key (one per commit) and merge them later; readers
//! merge whatever they find. Ranges that start or end inside a day are
//! answered by adding that day's raw events, rolled up on the fly by the same
//! code ([`Source::each_row`]), so every answer comes from one
//! implementation: [`answer`].
//!
//! ```
//! use tally_report::{Query, ReportName};
//! # let event: tally_protocol::Event = serde_json::from_str(r#"{
//! #     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-20T10:00:00Z",
//! #     "app": "mycli", "app_version": "1.4.2", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
//! #     "command": "deploy", "flags": [], "exit_code": 0, "duration_ms": 3,
//! #     "os": "linux", "arch": "x86_64"}"#)?;
//! let events = tally_rollup::MemorySource::number([event]);
//! let query = Query::from_params(ReportName::Commands, &[("app".into(), "mycli".into())].into())?;
//! let report = tally_rollup::answer(&tally_rollup::MemorySource::new(&events), &query)?;
//! assert_eq!(report.tables[0].rows[0][0], tally_report::Cell::Text("deploy".into()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agg;
mod days;
mod error;
mod histogram;
mod key;
mod memory;
mod reports;
mod rollups;
mod source;

pub use agg::Agg;
pub use days::{DAY_US, Span, day_of, day_start, from_micros, micros, retention_cutoff};
pub use error::Error;
pub use histogram::Histogram;
pub use key::{Dim, Dims, Key, Kind, env_of, keys_of, outcome_of};
pub use memory::MemorySource;
pub use reports::answer;
pub use rollups::{Installs, Rollups};
pub use source::{Group, Need, Part, Parts, Row, Source, rows_from_events};
