//! Where Tally keeps events: the [`Store`] and [`Writer`] traits, and the
//! backends that implement them.
//!
//! Depend on this crate to read or write Tally's events without a server, as
//! `tally export --data DIR` does. The server owns one store and one
//! [`Writer`] (a single writer thread group-commits for every request).
//! Open a store through a [`StoreSpec`], which names either backend.
//!
//! Reports are answered from rollups a backend keeps at ingest, in the same
//! transaction as the events, never from scans of every event: the rollups
//! and the reports are `tally-rollup`'s, and a backend implements its
//! `Source` (how to read stored rows and raw events) and stores the rows.
//!
//! Features:
//! - `duckdb` (default): [`DuckDbStore`], the embedded backend, one DuckDB
//!   file in a data dir.
//! - `clickhouse`: [`ClickHouseStore`], events in a ClickHouse database that
//!   several collectors share.
//!
//! ```
//! # #[cfg(feature = "duckdb")] {
//! use tally_store::{Store, StoreSpec};
//! let dir = tempfile::tempdir()?;
//! let store = StoreSpec::new(dir.path(), None).open()?;
//! let app = store.add_app("mycli")?;
//! assert!(app.ingest_key.starts_with("tk_"));
//! assert_eq!(store.apps()?, vec![app]);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod caches;
#[cfg(feature = "clickhouse")]
mod clickhouse;
pub mod dedupe;
#[cfg(feature = "duckdb")]
mod duckdb;
mod error;
#[cfg(feature = "duckdb")]
mod journal;
mod model;
pub mod owner_only;
mod spec;
mod staged;

pub use caches::Caches;
#[cfg(feature = "clickhouse")]
pub use clickhouse::ClickHouseStore;
pub use dedupe::RecentIds;
#[cfg(feature = "duckdb")]
pub use duckdb::DuckDbStore;
pub use error::StoreError;
pub use model::{App, ExportFilter};
pub use spec::StoreSpec;
pub use staged::{Prepared, Staged};
use tally_protocol::StoredEvent;

/// A place events are kept durably and read back from.
///
/// Implementations are shared between threads; each writing thread asks for
/// its own [`Writer`].
pub trait Store: Send + Sync {
    /// A handle that inserts events. The server keeps exactly one.
    fn writer(&self) -> Result<Box<dyn Writer>, StoreError>;

    /// `events` staged for this store's writer, with what the writer needs
    /// of them made beforehand: call it in each request's thread, so that
    /// the one writer thread has less to do for every request.
    fn stage(&self, events: Vec<StoredEvent>) -> Staged {
        Staged::from(events)
    }

    /// Calls `sink` with every stored event that `filter` selects, ordered
    /// by timestamp, until it returns [`std::ops::ControlFlow::Break`].
    /// Returns how many events were passed to `sink`.
    fn export(
        &self,
        filter: &ExportFilter,
        sink: &mut dyn FnMut(StoredEvent) -> std::ops::ControlFlow<()>,
    ) -> Result<u64, StoreError>;

    /// Registers an app and makes its ingest key.
    fn add_app(&self, name: &str) -> Result<App, StoreError>;

    /// Every registered app, by name.
    fn apps(&self) -> Result<Vec<App>, StoreError>;

    /// Answers a report over the stored events.
    fn report(&self, query: &tally_report::Query) -> Result<tally_report::Report, StoreError>;

    /// Forgets events (and their rollups) older than `days` whole UTC days
    /// before today. A backend may keep some longer (ClickHouse before 19.6
    /// drops whole months), never shorter. The server calls it hourly.
    fn retain_days(&self, days: u32) -> Result<(), StoreError>;

    /// Forgets `app`'s events older than `events_days` and its rollups
    /// older than `rollups_days` whole UTC days before today (`None`: kept
    /// for ever). Rollups may outlive their events: the reports of those
    /// days then count them from the rollups alone. Events go by the same
    /// day as in [`Store::retain_days`].
    fn retain_app(
        &self,
        app: &str,
        events_days: Option<u32>,
        rollups_days: Option<u32>,
    ) -> Result<(), StoreError>;

    /// Erases one install from each of `apps`: its raw events, and its
    /// part in every rollup. The rollups of the days it has raw events on
    /// are rolled up again from the events left, so they agree with reports
    /// counted from scratch; on days whose raw events are already past
    /// retention, the install leaves the rollups' install sets and its runs
    /// stay in their counts, which name no one. Returns how many raw events
    /// went, or `None` when no event of the install was ever stored (there
    /// is nothing to pass on). What arrives for the install after the call
    /// began may be kept. Erase an id from every app in one call: an app
    /// erased later alone may keep it in the install sets of days past its
    /// retention.
    fn forget_install(&self, apps: &[&str], install: uuid::Uuid)
    -> Result<Option<u64>, StoreError>;

    /// Events acknowledged as durable but not yet in the tables reads use
    /// (the embedded store's journal ahead of its loader); a number that
    /// keeps growing means the store cannot keep up.
    fn unloaded_events(&self) -> usize {
        0
    }

    /// Why the store cannot take more events or show all it acknowledged
    /// (the embedded store's loader stopped on an error), if it cannot: a
    /// server fails its readiness check and refuses reports and exports,
    /// which would be incomplete, until it is fixed.
    fn failure(&self) -> Option<String> {
        None
    }

    /// How many install ids the store keeps in memory now (the embedded
    /// store's cache of install numbers, see [`Caches`]).
    fn installs_in_memory(&self) -> usize {
        0
    }
}

/// Inserts events, exactly once each.
pub trait Writer: Send {
    /// Durably stores the events of `staged` whose `id` is not stored yet,
    /// all or none of them, and says for each event whether it was new
    /// (`true`) or a duplicate (`false`). An id repeated inside `staged`
    /// counts once. When this returns `Ok`, the events survive a crash of
    /// the process.
    ///
    /// The events are taken out of `staged` when they are stored (the writer
    /// keeps what it needs without copying); on an error `staged` is left as
    /// it was, for the caller to retry it or its parts.
    fn insert(&mut self, staged: &mut Staged) -> Result<Vec<bool>, StoreError>;
}
