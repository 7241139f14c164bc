//! What can go wrong in a store.

/// An error of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir could not be created or read.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process holds the store open for writing.
    #[error("the store at {path} is in use by another process (is `tally serve` running on it?)")]
    Locked {
        /// The database file.
        path: std::path::PathBuf,
    },
    /// An app of this name exists already.
    #[error("app {0:?} exists already")]
    AppExists(String),
    /// The app name is not allowed.
    #[error("{0}")]
    InvalidAppName(String),
    /// The request cannot be answered as asked.
    #[error("{0}")]
    Invalid(String),
    /// The stored data could not be read back into events.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store cannot be reached; nothing was stored.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// ClickHouse refused a statement.
    #[cfg(feature = "clickhouse")]
    #[error("clickhouse: {0}")]
    ClickHouse(String),
    /// This build of Tally leaves the store out (see the crate's features).
    #[error("this build of Tally has no {0}; build it with the feature that adds it")]
    NotBuilt(&'static str),
    /// The database failed.
    #[cfg(feature = "duckdb")]
    #[error("duckdb: {0}")]
    DuckDb(#[from] ::duckdb::Error),
}

/// Rollup data read back wrong is stored data that is corrupt; a report
/// asked wrongly is an invalid request.
impl From<tally_rollup::Error> for StoreError {
    fn from(e: tally_rollup::Error) -> Self {
        match e {
            tally_rollup::Error::Corrupt(what) => StoreError::Corrupt(what),
            tally_rollup::Error::Invalid(why) => StoreError::Invalid(why),
        }
    }
}
