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
    /// The file system of the store is full (or over a quota); nothing was
    /// stored. It passes once there is room again.
    #[error("the disk is full: {0}")]
    DiskFull(String),
    /// The process ran out of memory or of open files (DuckDB's memory
    /// limit, EMFILE, ENFILE, ENOMEM); nothing was stored. It passes once
    /// the load that caused it does.
    #[error("out of resources: {0}")]
    OutOfResources(String),
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
    DuckDb(::duckdb::Error),
}

impl StoreError {
    /// An I/O error while doing `what` (a sentence's start such as
    /// "journal writing FILE"): [`StoreError::DiskFull`] when the file
    /// system is full, else [`StoreError::Unavailable`].
    ///
    /// ```
    /// use tally_store::StoreError;
    /// let full = std::io::Error::from_raw_os_error(28); // ENOSPC
    /// assert!(StoreError::io("writing x", full).is_disk_full());
    /// ```
    pub fn io(what: &str, e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            Self::DiskFull(format!("{what}: {e}"))
        } else if is_out_of_resources(&e) {
            Self::OutOfResources(format!("{what}: {e}"))
        } else {
            Self::Unavailable(format!("{what}: {e}"))
        }
    }

    /// Whether this is [`StoreError::DiskFull`]: a failure that passes by
    /// itself once there is room, so retrying later is the remedy.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::DiskFull(_))
    }

    /// Whether the failure passes by itself ([`StoreError::DiskFull`],
    /// [`StoreError::OutOfResources`]), so retrying later is the remedy.
    ///
    /// ```
    /// use tally_store::StoreError;
    /// let emfile = std::io::Error::from_raw_os_error(24);
    /// assert!(StoreError::io("opening x", emfile).passes());
    /// assert!(!StoreError::Corrupt("x".into()).passes());
    /// ```
    pub fn passes(&self) -> bool {
        matches!(self, Self::DiskFull(_) | Self::OutOfResources(_))
    }
}

/// What strerror says (and DuckDB's own memory limit) when the process is
/// out of memory or open files: passing, unlike most database errors.
#[cfg(feature = "duckdb")]
const OUT_OF_RESOURCES: [&str; 4] = [
    "Too many open files",
    "Cannot allocate memory",
    "Out of Memory Error",
    "could not allocate block",
];

/// Whether `e` says the file system has no room (ENOSPC, or EDQUOT: over a
/// quota is as full, for the one who writes).
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
}

/// Whether `e` says the process is out of memory or open files.
pub(crate) fn is_out_of_resources(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::OutOfMemory || matches!(e.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}

/// DuckDB says which system call failed only in its message; the text is
/// strerror's, as on every libc Tally runs on.
#[cfg(feature = "duckdb")]
impl From<::duckdb::Error> for StoreError {
    fn from(e: ::duckdb::Error) -> Self {
        let message = e.to_string();
        if ["No space left on device", "Disk quota exceeded"]
            .iter()
            .any(|full| message.contains(full))
        {
            Self::DiskFull(format!("duckdb: {message}"))
        } else if OUT_OF_RESOURCES.iter().any(|out| message.contains(out)) {
            Self::OutOfResources(format!("duckdb: {message}"))
        } else {
            Self::DuckDb(e)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_system_is_told_apart_from_other_io_errors() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert!(StoreError::io("journal writing x", enospc).is_disk_full());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!StoreError::io("journal writing x", denied).is_disk_full());
    }

    #[cfg(feature = "duckdb")]
    #[test]
    fn duckdb_out_of_room_is_disk_full() {
        let full = ::duckdb::Error::DuckDBFailure(
            ::duckdb::ffi::Error::new(1),
            Some(r#"Could not write file "x.wal": No space left on device"#.into()),
        );
        assert!(StoreError::from(full).is_disk_full());
    }

    /// Over DuckDB's memory limit, the loader tries again later rather
    /// than stopping until a restart.
    #[cfg(feature = "duckdb")]
    #[test]
    fn duckdb_over_its_memory_limit_passes() {
        let conn = ::duckdb::Connection::open_in_memory().expect("open");
        conn.execute_batch("SET memory_limit = '2MB'; SET threads = 1; SET temp_directory = ''")
            .expect("limit");
        let e = conn
            .execute_batch(
                "SELECT i, max(s) FROM (SELECT range AS i, repeat('x', 100) || range AS s FROM range(1000000)) GROUP BY i ORDER BY i LIMIT 1",
            )
            .expect_err("grouping 100 MB cannot fit in 2 MB with nowhere to spill");
        let e = StoreError::from(e);
        assert!(e.passes(), "{e}");
        assert!(!e.is_disk_full(), "{e}");
    }
}
