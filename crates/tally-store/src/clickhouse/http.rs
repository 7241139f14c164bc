//! ClickHouse's HTTP interface: SQL in, JSON lines out, over HTTP or
//! HTTPS (`clickhouses://`, as ClickHouse Cloud wants).
//!
//! HTTP with JSONEachRow works the same on every ClickHouse from 18.x
//! (Debian's) to today's, which the native protocol and newer formats do not.

use std::fmt;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use ureq::tls::{PemItem, RootCerts, TlsConfig, parse_pem};

use crate::StoreError;

/// A connection to one ClickHouse database.
#[derive(Clone)]
pub(super) struct Http {
    base: String,
    database: String,
    /// The `Authorization` header, when a user is given.
    auth: Option<String>,
    agent: ureq::Agent,
}

/// Where a store URL points:
/// `clickhouse[s]://[user[:password]@]host[:port]/database[?secure=1&ca_file=PATH]`.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) database: String,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    /// HTTPS: `clickhouses://` or `?secure=1`.
    pub(super) secure: bool,
    /// The PEM file of the certificates to trust in place of the system's
    /// roots (`?ca_file=`, else `CLICKHOUSE_CA_FILE`), for a server whose
    /// certificate a private CA signed.
    pub(super) ca_file: Option<PathBuf>,
}

/// Shows no password.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("secure", &self.secure)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Target {
    /// Parses a store URL. The password is `password` if given (then the
    /// URL must hold none), else the URL's, else `CLICKHOUSE_PASSWORD`'s;
    /// the user is the URL's, else `CLICKHOUSE_USER`'s, else `default`
    /// when there is a password. Errors show the URL without its password.
    pub(super) fn parse(url: &str, password: Option<&str>) -> Result<Target, StoreError> {
        let bad = |why: &str| {
            StoreError::Invalid(format!("store URL {:?}: {why}", crate::spec::redacted(url)))
        };
        let (secure, rest) = if let Some(rest) = url.strip_prefix("clickhouse://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("clickhouses://") {
            (true, rest)
        } else {
            return Err(bad(
                "must start with clickhouse:// (or clickhouses:// for HTTPS)",
            ));
        };
        // The credentials run to the URL's last `@`, so that a password may
        // hold `/`, `?` or `@` as it is, or percent-encoded.
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((c, r)) => (Some(c), r),
            None => (None, rest),
        };
        let (rest, params) = rest.split_once('?').unwrap_or((rest, ""));
        let decoded = |what: &str, text: &str| -> Result<String, StoreError> {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|t| t.into_owned())
                .map_err(|_| bad(&format!("the {what} is not UTF-8 once percent-decoded")))
        };
        let (secure, ca_file) = tls_of(secure, params, &bad, &decoded)?;
        let (host_port, database) = rest
            .split_once('/')
            .ok_or_else(|| bad("names no database (clickhouse://HOST:8123/DB)"))?;
        let (user, in_url) = match credentials.map(|c| c.split_once(':')) {
            Some(Some((u, p))) => (Some(decoded("user", u)?), Some(decoded("password", p)?)),
            Some(None) => (credentials.map(|u| decoded("user", u)).transpose()?, None),
            None => (None, None),
        };
        let password = match (in_url, password) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "holds a password, and another was given apart; give one",
                ));
            }
            (in_url, apart) => in_url
                .or_else(|| apart.map(str::to_owned))
                .or_else(|| std::env::var("CLICKHOUSE_PASSWORD").ok()),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad("the port is not a number"))?),
            // ClickHouse's ports, and ClickHouse Cloud's for HTTPS.
            None => (host_port, if secure { 8443 } else { 8123 }),
        };
        if port == 8443 && !secure {
            // Credentials would cross in the clear before the server refused.
            return Err(bad(
                "port 8443 is ClickHouse's HTTPS port: use clickhouses://",
            ));
        }
        let database = database.trim_end_matches('/');
        let valid_name =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name(database) {
            return Err(bad("the database name may hold only letters, digits and _"));
        }
        if host.is_empty() {
            return Err(bad("names no host"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            database: database.to_owned(),
            user: user
                .or_else(|| std::env::var("CLICKHOUSE_USER").ok())
                .or_else(|| password.as_ref().map(|_| "default".to_owned())),
            password,
            secure,
            ca_file,
        })
    }

    /// What the connection trusts: the CA file's certificates, else the
    /// system's roots.
    fn roots(&self) -> Result<RootCerts, StoreError> {
        let Some(path) = &self.ca_file else {
            return Ok(RootCerts::PlatformVerifier);
        };
        let unreadable = |why: String| {
            StoreError::Invalid(format!("the ClickHouse CA file {}: {why}", path.display()))
        };
        let pem = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        let mut certificates = Vec::new();
        for item in parse_pem(&pem) {
            if let PemItem::Certificate(c) = item.map_err(|e| unreadable(e.to_string()))? {
                certificates.push(c);
            }
        }
        if certificates.is_empty() {
            return Err(unreadable("holds no PEM certificate".into()));
        }
        Ok(RootCerts::new_with_certs(&certificates))
    }
}

/// Whether to speak HTTPS, and the CA file to trust, from the scheme
/// (`named_secure`: `clickhouses://`), the URL's `params` and the
/// environment; refuses what would send credentials in the clear by
/// mistake.
fn tls_of(
    named_secure: bool,
    params: &str,
    bad: &dyn Fn(&str) -> StoreError,
    decoded: &dyn Fn(&str, &str) -> Result<String, StoreError>,
) -> Result<(bool, Option<PathBuf>), StoreError> {
    let (mut secure, mut ca_file) = (named_secure, None);
    for param in params.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=').unwrap_or((param, "")) {
            ("secure", "1" | "true") => secure = true,
            ("secure", "0" | "false") if named_secure => {
                return Err(bad("secure=0 contradicts clickhouses://"));
            }
            ("secure", "0" | "false") => {}
            ("secure", _) => return Err(bad("secure must be 1 or 0")),
            ("ca_file", "") => return Err(bad("ca_file names no file")),
            ("ca_file", path) => ca_file = Some(PathBuf::from(decoded("ca_file", path)?)),
            (name, _) => {
                return Err(bad(&format!(
                    "unknown parameter {name:?} (known: secure, ca_file)"
                )));
            }
        }
    }
    if ca_file.is_some() && !secure {
        return Err(bad(
            "a CA file is for HTTPS: use clickhouses:// or secure=1",
        ));
    }
    let from_env = std::env::var_os("CLICKHOUSE_CA_FILE").filter(|f| !f.is_empty());
    if from_env.is_some() && !secure {
        return Err(bad(
            "CLICKHOUSE_CA_FILE is set, but the URL is plain HTTP: \
             use clickhouses:// or unset it",
        ));
    }
    Ok((secure, ca_file.or_else(|| from_env.map(PathBuf::from))))
}

impl Http {
    /// A connection to `target`; fails only on a CA file that cannot be
    /// read (nothing is sent until the first statement).
    pub(super) fn new(target: &Target) -> Result<Http, StoreError> {
        let auth = target.user.as_ref().map(|user| {
            let pair = format!("{user}:{}", target.password.as_deref().unwrap_or(""));
            format!("Basic {}", BASE64_STANDARD.encode(pair))
        });
        let scheme = if target.secure { "https" } else { "http" };
        let tls = TlsConfig::builder().root_certs(target.roots()?).build();
        Ok(Http {
            base: format!("{scheme}://{}:{}/", target.host, target.port),
            database: target.database.clone(),
            auth,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .tls_config(tls)
                .timeout_connect(Some(Duration::from_secs(5)))
                .timeout_global(Some(Duration::from_secs(300)))
                .build()
                .new_agent(),
        })
    }

    /// The database, for statements that must name it.
    pub(super) fn database(&self) -> &str {
        &self.database
    }

    /// Sends `body` with `query` in the URL (or the body as the query when
    /// `query` is empty) and hands the answer to `read`.
    fn send<T>(
        &self,
        query: &str,
        body: &[u8],
        database: bool,
        read: impl FnOnce(&mut dyn BufRead) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut request = self
            .agent
            .post(&self.base)
            .query("output_format_json_quote_64bit_integers", "0")
            // Dedupe lookups name thousands of ids in one query.
            .query("max_query_size", "16777216")
            .query("max_ast_elements", "1000000")
            .query("max_expanded_ast_elements", "1000000");
        if database {
            request = request.query("database", &self.database);
        }
        if !query.is_empty() {
            request = request.query("query", query);
        }
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request
            .send(body)
            .map_err(|e| StoreError::Unavailable(format!("ClickHouse at {}: {e}", self.base)))?;
        let status = response.status();
        let mut reader = std::io::BufReader::new(response.body_mut().as_reader());
        if !status.is_success() {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut reader, &mut text);
            return Err(StoreError::ClickHouse(format!(
                "{}: {}",
                status.as_u16(),
                text.trim()
            )));
        }
        read(&mut reader)
    }

    /// Runs a statement that returns nothing.
    pub(super) fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.send("", sql.as_bytes(), true, |_| Ok(()))
    }

    /// Runs a statement outside the database (to create it).
    pub(super) fn execute_global(&self, sql: &str) -> Result<(), StoreError> {
        self.send("", sql.as_bytes(), false, |_| Ok(()))
    }

    /// Runs a SELECT and calls `row` with each row, read from its JSON
    /// object.
    pub(super) fn each_row<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        mut row: impl FnMut(T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = format!("{sql} FORMAT JSONEachRow");
        self.send("", sql.as_bytes(), true, |reader| {
            for line in reader.lines() {
                let line = line.map_err(|e| StoreError::Unavailable(e.to_string()))?;
                if line.is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&line)
                    .map_err(|e| StoreError::Corrupt(format!("ClickHouse row {line:?}: {e}")))?;
                row(value)?;
            }
            Ok(())
        })
    }

    /// Runs a SELECT and collects its rows.
    pub(super) fn rows(&self, sql: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut out = Vec::new();
        self.each_row(sql, |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Inserts JSON lines into `table` as one block: all stored or none.
    pub(super) fn insert(&self, table: &str, lines: &[u8]) -> Result<(), StoreError> {
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.send(&query, lines, true, |_| Ok(()))
    }
}

/// A string as a ClickHouse literal.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_with_their_parts() {
        let t =
            Target::parse("clickhouse://ana:s3cret@db.internal:9123/tally", None).expect("parses");
        assert_eq!(
            (t.host.as_str(), t.port, t.database.as_str()),
            ("db.internal", 9123, "tally")
        );
        assert_eq!(
            (t.user.as_deref(), t.password.as_deref()),
            (Some("ana"), Some("s3cret"))
        );
        assert_eq!(
            Target::parse("clickhouse://h/db", None)
                .expect("parses")
                .port,
            8123
        );
        for bad in [
            "http://h/db",
            "clickhouse://h:80",
            "clickhouse://h:x/db",
            "clickhouse://h/d-b",
        ] {
            assert!(Target::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_password_given_apart_is_used_with_the_urls_user() {
        let t = Target::parse("clickhouse://ana@db/tally", Some("s3cret")).expect("parses");
        assert_eq!(
            (t.user.as_deref(), t.password.as_deref()),
            (Some("ana"), Some("s3cret"))
        );
        let err = Target::parse("clickhouse://ana:s3cret@db/tally", Some("other"))
            .expect_err("two passwords are refused");
        assert!(err.to_string().contains("give one"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn no_error_shows_the_password() {
        let bad_port = Target::parse("clickhouse://ana:s3cret@db:port/tally", None)
            .expect_err("the port is refused");
        assert!(!bad_port.to_string().contains("s3cret"), "{bad_port}");
        let target =
            Target::parse("clickhouse://ana:s3cret@127.0.0.1:1/tally", None).expect("parses");
        assert!(!format!("{target:?}").contains("s3cret"));
        // Nothing listens on port 1: the connection is refused.
        let unreachable = Http::new(&target)
            .expect("no CA file to read")
            .execute("SELECT 1")
            .expect_err("nothing listens on port 1");
        let shown = format!("{unreachable} {unreachable:?}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn https_is_asked_by_scheme_or_parameter() {
        let cloud = Target::parse(
            "clickhouses://ana@abc.eu-west-1.aws.clickhouse.cloud/tally",
            None,
        )
        .expect("parses");
        assert_eq!(
            (cloud.secure, cloud.port),
            (true, 8443),
            "ClickHouse Cloud's port"
        );
        let by_parameter = Target::parse(
            "clickhouse://db:8443/tally?secure=1&ca_file=/etc/ca.pem",
            None,
        )
        .expect("parses");
        assert!(by_parameter.secure);
        assert_eq!(by_parameter.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            by_parameter.database, "tally",
            "the query is not the database's"
        );
        let plain = Target::parse("clickhouse://db/tally?secure=0", None).expect("parses");
        assert!(!plain.secure);
        for (bad, why) in [
            ("clickhouse://db/tally?ca_file=/etc/ca.pem", "is for HTTPS"),
            ("clickhouses://db/tally?ca_file=", "names no file"),
            ("clickhouses://db/tally?secure=yes", "1 or 0"),
            (
                "clickhouses://db/tally?sslmode=require",
                "unknown parameter \"sslmode\"",
            ),
        ] {
            let err = Target::parse(bad, None).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_password_may_hold_what_urls_reserve() {
        for url in [
            "clickhouses://ana:p/a?s@s@db/tally?secure=1",
            "clickhouses://ana:p%2Fa%3Fs%40s@db/tally",
        ] {
            let t = Target::parse(url, None).expect(url);
            assert_eq!(
                (t.user.as_deref(), t.password.as_deref(), t.host.as_str()),
                (Some("ana"), Some("p/a?s@s"), "db"),
                "{url}"
            );
        }
        let err = Target::parse("clickhouse://ana:p?ss@db/tally?x=1", None)
            .expect_err("unknown parameter")
            .to_string();
        assert!(err.contains("\"x\"") && !err.contains("p?ss"), "{err}");
    }

    #[test]
    fn nothing_sends_credentials_in_the_clear_by_mistake() {
        for (url, why) in [
            (
                "clickhouse://ana:s3cret@abc.clickhouse.cloud:8443/tally",
                "HTTPS port",
            ),
            ("clickhouses://db/tally?secure=0", "contradicts"),
        ] {
            let err = Target::parse(url, None).expect_err(url).to_string();
            assert!(err.contains(why) && !err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn a_ca_file_that_holds_no_certificate_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        for (file, why) in [
            (&missing, "No such file"),
            (&empty, "holds no PEM certificate"),
        ] {
            let url = format!(
                "clickhouses://ana:s3cret@db/tally?ca_file={}",
                file.display()
            );
            let target = Target::parse(&url, None).expect("parses");
            let Err(err) = Http::new(&target) else {
                panic!("{file:?} is no CA file");
            };
            let err = err.to_string();
            assert!(
                err.contains(&file.display().to_string()) && err.contains(why),
                "{err}"
            );
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(quote(r"it's a \ test"), r"'it\'s a \\ test'");
    }
}
