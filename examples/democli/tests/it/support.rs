//! A Tally server in the test process, a sandboxed democli user, and a
//! proxy that can make the endpoint misbehave.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tally_testkit::eventually;
use tally_testkit::server::RunningServer;

/// How long delivery may take before a test gives up: generous, because the
/// SDK backs off after failures by design.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// `tally serve` in-process, on a loopback port, with the app "democli".
pub struct Server {
    pub url: String,
    pub key: String,
    running: RunningServer,
}

impl Server {
    pub fn start() -> Self {
        let running = RunningServer::start();
        Self {
            url: running.url.clone(),
            key: running.add_app("democli"),
            running,
        }
    }

    /// Every stored democli event, as exported (every field).
    pub fn events(&self) -> Vec<Value> {
        self.running.export("democli")
    }

    /// The stored democli events, the export's text as the server sent it.
    pub fn export_text(&self) -> String {
        self.running.export_text("democli")
    }

    /// Waits until `n` events are stored (fails beyond the deadline).
    pub fn wait_for(&self, n: usize) -> Vec<Value> {
        let stored = tally_testkit::within(DELIVERY_DEADLINE, || {
            let events = self.events();
            (events.len() >= n).then_some(events)
        });
        stored.unwrap_or_else(|| panic!("not {n} events stored in time: {:?}", self.events()))
    }
}

/// A person using democli: their own home, config and cache dirs.
pub struct User {
    pub home: PathBuf,
    endpoint: String,
    key: String,
    extra: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

/// A name that must never reach the server.
pub const USER_NAME: &str = "zaphodbeeblebrox";

pub struct Run {
    pub output: Output,
    pub took: Duration,
}

impl Run {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
}

impl User {
    /// A user who has not run democli before.
    pub fn new(endpoint: &str, key: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home").join(USER_NAME);
        std::fs::create_dir_all(&home).expect("home");
        Self {
            home,
            endpoint: endpoint.to_owned(),
            key: key.to_owned(),
            extra: Vec::new(),
            _dir: dir,
        }
    }

    /// A user who has run `democli telemetry enable`.
    pub fn consenting(endpoint: &str, key: &str) -> Self {
        let user = Self::new(endpoint, key);
        let run = user.democli(&["telemetry", "enable"]);
        assert!(run.output.status.success(), "{}", run.stderr());
        user
    }

    pub fn set_endpoint(&mut self, endpoint: &str) {
        self.endpoint = endpoint.to_owned();
    }

    pub fn env(&mut self, name: &str, value: &str) {
        self.extra.push((name.to_owned(), value.to_owned()));
    }

    pub fn config_home(&self) -> PathBuf {
        self.home.join(".config")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home.join(".cache").join("democli").join("telemetry")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_democli"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("USER", USER_NAME)
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("DEMOCLI_TELEMETRY_ENDPOINT", &self.endpoint)
            .env("DEMOCLI_TELEMETRY_KEY", &self.key);
        for (k, v) in &self.extra {
            command.env(k, v);
        }
        command
    }

    pub fn democli(&self, args: &[&str]) -> Run {
        let started = Instant::now();
        let output = self.command(args).output().expect("run democli");
        Run {
            output,
            took: started.elapsed(),
        }
    }

    /// Files waiting in the spool (events and drop counters).
    pub fn spooled(&self) -> Vec<PathBuf> {
        files_in(&self.cache_dir().join("spool"))
    }

    /// Waits until no flusher of this user runs: whatever they were sending
    /// has then arrived or failed. Fails if one outlives its 15 s hard limit.
    pub fn wait_flushers_gone(&self) {
        eventually(Duration::from_secs(16), "flushers gone", || {
            (flushers(self) == 0).then_some(())
        });
    }

    /// Waits for the spool to drain (fails beyond the deadline).
    pub fn wait_spool_empty(&self) {
        eventually(DELIVERY_DEADLINE, "the spool drained", || {
            self.spooled().is_empty().then_some(())
        });
    }
}

/// How many flushers started by this user's runs are alive (Linux /proc).
pub fn flushers(user: &User) -> usize {
    let home = user.home.display().to_string();
    files_in(Path::new("/proc"))
        .iter()
        .filter(|p| {
            let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(p.join("environ")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("__tally_flush")
                && String::from_utf8_lossy(&environ).contains(&home)
        })
        .count()
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A loopback address where nothing listens.
pub fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// How the proxy treats a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Pass it to the real server.
    Forward,
    /// Take the connection and never answer.
    BlackHole,
    /// Forward, after a delay.
    Slow(Duration),
    /// Answer with this status (and `Retry-After` seconds when given).
    Status(u16, Option<u64>),
}

/// An endpoint in front of the real server whose behaviour tests switch.
pub struct Proxy {
    pub url: String,
    mode: Arc<Mutex<Mode>>,
}

impl Proxy {
    pub fn start(upstream: &str, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let mode = Arc::new(Mutex::new(mode));
        let shared = Arc::clone(&mode);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mode = *shared.lock().expect("mode");
                let upstream = upstream.clone();
                std::thread::spawn(move || handle(stream, mode, &upstream));
            }
        });
        Self { url, mode }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }
}

fn handle(mut client: TcpStream, mode: Mode, upstream: &str) {
    let Some(request) = read_request(&client) else {
        return;
    };
    match mode {
        Mode::BlackHole => {
            std::thread::sleep(Duration::from_secs(120));
        }
        Mode::Status(code, retry_after) => {
            let retry = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let _ = write!(
                client,
                "HTTP/1.1 {code} Nope\r\nContent-Type: application/json\r\n{retry}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
        }
        Mode::Slow(delay) => {
            std::thread::sleep(delay);
            forward(&mut client, &request, upstream);
        }
        Mode::Forward => forward(&mut client, &request, upstream),
    }
}

/// The request's bytes, with `Connection: close` so the upstream ends the
/// response by closing.
fn read_request(client: &TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(client.try_clone().ok()?);
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

fn forward(client: &mut TcpStream, request: &[u8], upstream: &str) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let mut response = Vec::new();
    if server.write_all(request).is_ok() && server.read_to_end(&mut response).is_ok() {
        let _ = client.write_all(&response);
    }
}
