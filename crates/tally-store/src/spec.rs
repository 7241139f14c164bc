//! Which store to open, decided in one place.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{RecentIds, Store, StoreError};

/// A store to open: the embedded one in a data dir, or a ClickHouse database
/// that several collectors share. `tally serve`, every admin command and
/// the server's config name a store this way.
///
/// ```
/// use std::path::Path;
/// use tally_store::StoreSpec;
/// let embedded = StoreSpec::new(Path::new("tally-data"), None);
/// assert_eq!(embedded.to_string(), "tally-data");
/// let shared = StoreSpec::new(Path::new("tally-data"), Some("clickhouse://u:secret@db:8123/tally"));
/// assert_eq!(shared.to_string(), "clickhouse://u:***@db:8123/tally", "no password in messages");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded store (DuckDB) in a data dir.
    Embedded {
        /// The data dir.
        dir: PathBuf,
        /// How many recent event ids its writer remembers; see [`RecentIds`].
        recent_ids: usize,
    },
    /// A ClickHouse database, by a URL such as
    /// `clickhouse://user:password@127.0.0.1:8123/tally`.
    ClickHouse {
        /// The URL.
        url: String,
    },
}

impl StoreSpec {
    /// The shared store `url` names if there is one, else the embedded
    /// store of `data_dir`.
    pub fn new(data_dir: &Path, url: Option<&str>) -> Self {
        match url {
            Some(url) => StoreSpec::ClickHouse {
                url: url.to_owned(),
            },
            None => StoreSpec::Embedded {
                dir: data_dir.to_owned(),
                recent_ids: RecentIds::DEFAULT_CAPACITY,
            },
        }
    }

    /// Opens the store (creating its tables if needed).
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        match self {
            #[cfg(feature = "duckdb")]
            StoreSpec::Embedded { dir, recent_ids } => {
                Ok(Box::new(crate::DuckDbStore::open_with(dir, *recent_ids)?))
            }
            #[cfg(not(feature = "duckdb"))]
            StoreSpec::Embedded { .. } => Err(StoreError::NotBuilt("embedded store (DuckDB)")),
            #[cfg(feature = "clickhouse")]
            StoreSpec::ClickHouse { url } => Ok(Box::new(crate::ClickHouseStore::open(url)?)),
            #[cfg(not(feature = "clickhouse"))]
            StoreSpec::ClickHouse { .. } => Err(StoreError::NotBuilt("ClickHouse store")),
        }
    }
}

/// The data dir, or the URL without its password.
impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Embedded { dir, .. } => write!(f, "{}", dir.display()),
            StoreSpec::ClickHouse { url } => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                match rest.split_once('@') {
                    Some((user, host)) if user.contains(':') => {
                        let name = user.split(':').next().unwrap_or_default();
                        write!(f, "{scheme}://{name}:***@{host}")
                    }
                    _ => f.write_str(url),
                }
            }
        }
    }
}
