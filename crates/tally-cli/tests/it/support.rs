//! A real `tally serve` process on a loopback port, and a client for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tally_protocol::{Batch, Event};
use tally_testkit::events::gzip;
use time::OffsetDateTime;

pub const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// A server process; killed on drop.
pub struct TestServer {
    pub child: Child,
    pub url: String,
    /// The dashboard link that logs in once, as the server printed it.
    pub login_link: String,
    pub data: PathBuf,
    pub agent: ureq::Agent,
}

/// A data dir that outlives server restarts.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

impl TestServer {
    /// Starts `tally serve` on `data` and waits until it listens.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// Starts `tally serve` with extra arguments (e.g. `--demo`).
    pub fn start_with(data: &Path, extra: &[&str]) -> Self {
        Self::start_command(Command::new(TALLY), data, extra)
    }

    /// Starts `tally serve` on `data` under a limit of `files` open files,
    /// soft and hard, as a small VM or container has.
    pub fn start_with_open_files(data: &Path, files: u32) -> Self {
        let mut shell = Command::new("sh");
        let limited = format!("ulimit -n {files} && exec \"$@\"");
        shell.args(["-c", &limited, "sh", TALLY]);
        Self::start_command(shell, data, &[])
    }

    /// Starts `command` (tally, or what execs it) with `serve` and its
    /// arguments.
    fn start_command(mut command: Command, data: &Path, extra: &[&str]) -> Self {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("TALLY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tally serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let said = ["Tally is running at ", "Dashboard: "]
                    .iter()
                    .find_map(|prefix| line.strip_prefix(prefix));
                match said {
                    Some(rest) => {
                        let first = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(first.to_owned());
                    }
                    None => eprintln!("[server] {line}"),
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server printed its URL");
        let login_link = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server printed its login link");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self {
            child,
            url,
            login_link,
            data: data.to_owned(),
            agent,
        }
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-token")).expect("admin token")
    }

    /// Sends raw bytes to `/v1/batch`; returns the status and the JSON body.
    pub fn post_raw(&self, key: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let mut request = self
            .agent
            .post(format!("{}/v1/batch", self.url))
            .header("Authorization", format!("Bearer {key}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send(body) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    /// Sends events as a batch, gzip-compressed.
    pub fn send(&self, key: &str, events: &[Event]) -> (u16, Value) {
        let batch = Batch {
            sent_at: OffsetDateTime::now_utc(),
            events: events.to_vec(),
            dropped: 0,
        };
        let json = serde_json::to_vec(&batch).expect("json");
        self.post_raw(
            key,
            &[
                ("Content-Encoding", "gzip"),
                ("Content-Type", "application/json"),
            ],
            &gzip(&json),
        )
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = self.agent.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().expect("GET");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// The status of GET `path`, or None when the server does not answer.
    pub fn get_status(&self, path: &str) -> Option<u16> {
        self.agent
            .get(format!("{}{path}", self.url))
            .call()
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Sends `signal` (e.g. "KILL", "TERM") to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `tally` binary; returns exit status, stdout, stderr.
pub fn tally(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(TALLY).args(args).output().expect("run tally");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Registers `name` through the CLI and returns its ingest key.
pub fn add_app(data: &Path, name: &str) -> String {
    let (ok, stdout, stderr) =
        tally(&["app", "add", name, "--data", data.to_str().expect("utf-8")]);
    assert!(ok, "app add failed: {stderr}");
    let key = stdout.trim().to_owned();
    assert!(
        key.starts_with("tk_") && !key.contains('\n'),
        "stdout is the key alone: {stdout:?}"
    );
    key
}

/// The events stored for `app`, through `tally export --data`.
pub fn export(data: &Path, app: &str) -> Vec<Value> {
    let (ok, stdout, stderr) = tally(&[
        "export",
        "--app",
        app,
        "--data",
        data.to_str().expect("utf-8"),
    ]);
    assert!(ok, "export failed: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// The ids in an export.
pub fn ids(exported: &[Value]) -> Vec<String> {
    exported
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Events the server has accepted so far, from its metrics.
pub fn accepted_so_far(server: &TestServer) -> u64 {
    let (_, metrics) = server.get("/metrics", None);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("tally_events_accepted_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
