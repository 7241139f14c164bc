//! A private ClickHouse server for tests: Debian's `clickhouse-server`
//! started on loopback ports chosen at run time, with a data dir of its own,
//! stopped (and its data removed) on drop.

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
    tcp_port: u16,
    child: Option<Child>,
}

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
    /// Starts a server and waits until it answers.
    pub fn start() -> LocalServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = LocalServer {
            http_port: free_port(),
            tcp_port: free_port(),
            dir,
            child: None,
        };
        server.resume();
        server
    }

    /// The store URL of `database` on this server.
    pub fn store_url(&self, database: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{database}", self.http_port)
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
        let root = self.dir.path();
        let config = root.join("config.xml");
        std::fs::write(
            &config,
            format!(
                r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><console>1</console></logger>
    <http_port>{http}</http_port>
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
        let child = Command::new(binary())
            .arg(format!("--config-file={}", config.display()))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/ping", self.http_port);
        crate::eventually(
            Duration::from_secs(60),
            "clickhouse-server answering",
            || ureq::get(&url).call().ok().map(drop),
        );
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}
