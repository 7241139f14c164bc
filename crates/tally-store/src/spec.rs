//! Which store to open, decided in one place.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Caches, Store, StoreError};

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
///
/// Neither its `Display` nor its `Debug` shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded store (DuckDB) in a data dir.
    Embedded {
        /// The data dir.
        dir: PathBuf,
        /// What it keeps in memory.
        caches: Caches,
    },
    /// A ClickHouse database, by a URL such as
    /// `clickhouse://user:password@127.0.0.1:8123/tally`, or over HTTPS
    /// `clickhouses://user@HOST.clickhouse.cloud/tally` (port 8443 unless
    /// given; `?ca_file=PATH` trusts a private CA in place of the system's
    /// roots).
    ClickHouse {
        /// The URL.
        url: String,
        /// The password, when it is given apart from the URL (which `ps`
        /// shows when it is an argument).
        password: Option<String>,
    },
}

impl StoreSpec {
    /// The shared store `url` names if there is one, else the embedded
    /// store of `data_dir`.
    pub fn new(data_dir: &Path, url: Option<&str>) -> Self {
        match url {
            Some(url) => StoreSpec::ClickHouse {
                url: url.to_owned(),
                password: None,
            },
            None => StoreSpec::Embedded {
                dir: data_dir.to_owned(),
                caches: Caches::default(),
            },
        }
    }

    /// The same store, with the ClickHouse password given apart from its
    /// URL (read from a file or the environment); an embedded store has none.
    ///
    /// ```
    /// use std::path::Path;
    /// use tally_store::StoreSpec;
    /// let spec = StoreSpec::new(Path::new("d"), Some("clickhouse://ana@db:8123/tally"))
    ///     .with_password("s3cret".into());
    /// assert!(!format!("{spec} {spec:?}").contains("s3cret"));
    /// ```
    pub fn with_password(self, password: String) -> Self {
        match self {
            StoreSpec::ClickHouse { url, .. } => StoreSpec::ClickHouse {
                url,
                password: Some(password),
            },
            embedded => embedded,
        }
    }

    /// Opens the store (creating its tables if needed).
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        match self {
            #[cfg(feature = "duckdb")]
            StoreSpec::Embedded { dir, caches } => {
                Ok(Box::new(crate::DuckDbStore::open_with(dir, *caches)?))
            }
            #[cfg(not(feature = "duckdb"))]
            StoreSpec::Embedded { .. } => Err(StoreError::NotBuilt("embedded store (DuckDB)")),
            #[cfg(feature = "clickhouse")]
            StoreSpec::ClickHouse { url, password } => Ok(Box::new(
                crate::ClickHouseStore::open_with_password(url, password.as_deref())?,
            )),
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
            StoreSpec::ClickHouse { url, .. } => f.write_str(&redacted(url)),
        }
    }
}

/// As [`fmt::Display`], so that a logged config shows no password.
impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Embedded { dir, caches } => f
                .debug_struct("Embedded")
                .field("dir", dir)
                .field("caches", caches)
                .finish(),
            StoreSpec::ClickHouse { url, password } => f
                .debug_struct("ClickHouse")
                .field("url", &redacted(url))
                .field("password", &password.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

/// `url` with the password in it, if any, replaced by `***`.
///
/// The credentials end at the URL's last `@`, as the ClickHouse store
/// reads them (a password may hold `@`, `/` or `?`).
pub(crate) fn redacted(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((credentials, after)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}{user}:***@{after}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_part_of_a_password_is_shown() {
        for (url, shown) in [
            (
                "clickhouse://u:p@ss@db:8123/t",
                "clickhouse://u:***@db:8123/t",
            ),
            ("clickhouse://u:secret@db/t", "clickhouse://u:***@db/t"),
            ("clickhouse://u:@db/t", "clickhouse://u:***@db/t"),
            ("clickhouse://u@db/t", "clickhouse://u@db/t"),
            // A password of `/`, `?` and `@`, as typed.
            (
                "clickhouses://u:p/a?s@s@db/t?ca_file=/ca.pem",
                "clickhouses://u:***@db/t?ca_file=/ca.pem",
            ),
            // No password: nothing hidden, whatever follows.
            (
                "clickhouse://u@db/t?secure=1",
                "clickhouse://u@db/t?secure=1",
            ),
            ("u:secret@db/t", "u:***@db/t"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
    }

    #[test]
    fn debug_shows_no_password() {
        let spec = StoreSpec::new(Path::new("d"), Some("clickhouse://u:secret@db/t"))
            .with_password("other".into());
        let debug = format!("{spec:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("other"),
            "{debug}"
        );
        assert!(debug.contains("u:***@db/t"), "{debug}");
    }
}
