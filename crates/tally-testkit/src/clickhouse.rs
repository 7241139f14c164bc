//! A private ClickHouse server for tests, on loopback ports chosen at run
//! time, with a data dir of its own, stopped (and its data removed) on
//! drop: Debian's `clickhouse-server` (18.16, from 2018), or the current
//! engine (26.x, PyPI's `chdb-core`, which has no server of its own)
//! behind a small front that speaks the part of ClickHouse's HTTP
//! interface Tally uses (`chdb_front.py`). Either also answers over
//! HTTPS, with a certificate a CA of the test's own signed (as a server
//! on a private network, or ClickHouse Cloud behind its public CA, would).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `clickhouse-server` owned by a test.
///
/// ```no_run
/// let server = tally_testkit::clickhouse::LocalServer::start();
/// let url = server.store_url("tally");
/// assert!(url.starts_with("clickhouse://127.0.0.1:"));
/// ```
pub struct LocalServer {
    dir: tempfile::TempDir,
    http_port: u16,
    https_port: u16,
    tcp_port: u16,
    child: Option<Child>,
    engine: Engine,
}

/// Which ClickHouse runs.
enum Engine {
    /// Debian's `clickhouse-server`.
    Debian,
    /// The current engine under the front, run by this Python.
    Current(PathBuf),
}

/// The current engine, as PyPI ships it.
const CHDB: &str = "chdb-core==26.9.0";

/// The front over it.
const FRONT: &str = include_str!("chdb_front.py");

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn binary() -> PathBuf {
    for candidate in ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!(
        "clickhouse-server is not installed; the ClickHouse tests need it \
         (apt-get install -y clickhouse-server, as .ci/run does)"
    );
}

impl LocalServer {
    /// Starts Debian's server and waits until it answers.
    pub fn start() -> LocalServer {
        Self::start_engine(Engine::Debian)
    }

    /// Starts the current engine (26.x) behind the front and waits until
    /// it answers; `None` when PyPI is out of reach.
    ///
    /// ```no_run
    /// let server = tally_testkit::clickhouse::LocalServer::start_current().expect("PyPI");
    /// assert!(server.store_url("tally").starts_with("clickhouse://127.0.0.1:"));
    /// ```
    pub fn start_current() -> Option<LocalServer> {
        let python = crate::clients::python(&[CHDB])?;
        Some(Self::start_engine(Engine::Current(python)))
    }

    fn start_engine(engine: Engine) -> LocalServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = LocalServer {
            http_port: free_port(),
            https_port: free_port(),
            tcp_port: free_port(),
            dir,
            child: None,
            engine,
        };
        server.certify();
        server.resume();
        server
    }

    /// Writes a CA (`ca.pem`), and a certificate for `localhost` and
    /// `127.0.0.1` it signed (`server.pem`, key `server.key`), into the
    /// server's dir.
    fn certify(&self) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let root = self.dir.path();
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Tally test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let certificate = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", certificate.pem()),
            ("server.key", key.serialize_pem()),
        ] {
            std::fs::write(root.join(name), pem).expect("write a certificate");
        }
    }

    /// The store URL of `database` on this server.
    pub fn store_url(&self, database: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{database}", self.http_port)
    }

    /// The store URL of `database` over HTTPS, trusting the test's CA
    /// (`ca_file=`) in place of the system's roots.
    ///
    /// ```no_run
    /// let server = tally_testkit::clickhouse::LocalServer::start();
    /// assert!(server.secure_store_url("tally").starts_with("clickhouses://127.0.0.1:"));
    /// ```
    pub fn secure_store_url(&self, database: &str) -> String {
        format!(
            "clickhouses://127.0.0.1:{}/{database}?ca_file={}",
            self.https_port,
            self.dir.path().join("ca.pem").display()
        )
    }

    /// The server's process id while it runs (for its memory, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits until no INSERT is running (one a killed client sent may still
    /// be finishing), up to a minute.
    pub fn wait_for_inserts(&self) {
        let url = format!("http://127.0.0.1:{}/", self.http_port);
        let sql = "SELECT count() FROM system.processes \
                   WHERE query LIKE 'INSERT%' AND query NOT LIKE '%system.processes%'";
        crate::eventually(Duration::from_secs(60), "inserts still running", || {
            let running = ureq::post(&url)
                .send(sql)
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok());
            (running.as_deref().map(str::trim) == Some("0")).then_some(())
        });
    }

    /// Stops the server (as an outage would), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn resume(&mut self) {
        let child = match &self.engine {
            Engine::Debian => self.spawn_debian(),
            Engine::Current(python) => {
                let root = self.dir.path();
                let front = root.join("chdb_front.py");
                std::fs::write(&front, FRONT).expect("write the front");
                Command::new(python)
                    .arg(&front)
                    .arg(root.join("chdb"))
                    .arg(self.http_port.to_string())
                    .arg(self.https_port.to_string())
                    .arg(root.join("server.pem"))
                    .arg(root.join("server.key"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start the chdb front")
            }
        };
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/ping", self.http_port);
        crate::eventually(Duration::from_secs(60), "ClickHouse answering", || {
            ureq::get(&url).call().ok().map(drop)
        });
    }

    /// Starts Debian's `clickhouse-server` on the ports and data.
    fn spawn_debian(&self) -> Child {
        let root = self.dir.path();
        let config = root.join("config.xml");
        std::fs::write(
            &config,
            format!(
                r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><console>1</console></logger>
    <http_port>{http}</http_port>
    <https_port>{https}</https_port>
    <openSSL>
        <server>
            <certificateFile>{root}/server.pem</certificateFile>
            <privateKeyFile>{root}/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <disableProtocols>sslv2,sslv3</disableProtocols>
        </server>
    </openSSL>
    <tcp_port>{tcp}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>{root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>
"#,
                http = self.http_port,
                https = self.https_port,
                tcp = self.tcp_port,
                root = root.display(),
            ),
        )
        .expect("write config");
        std::fs::write(
            root.join("users.xml"),
            r#"<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#,
        )
        .expect("write users");
        Command::new(binary())
            .arg(format!("--config-file={}", config.display()))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server")
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}
