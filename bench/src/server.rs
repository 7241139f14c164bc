//! Starting the servers under test as child processes, and reading their
//! peak memory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;

use anyhow::{Context, Result, bail};

use crate::LoadArgs;
use crate::load;

pub(crate) const APP: &str = "benchcli";

/// A child server; stopped with SIGTERM on drop.
pub(crate) struct Running {
    child: Child,
    pub(crate) url: String,
}

impl Running {
    /// The server's process id, for sampling its memory while it runs.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far, in MB (Linux only).
    pub(crate) fn peak_rss_mb(&self) -> Option<f64> {
        memory_mb(&self.child.id().to_string(), "VmHWM:")
    }

    /// CPU time the server has used so far, user and system, in seconds
    /// (Linux only): per event, a measure of cost that does not drift with
    /// how busy the machine is the way a rate does.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&self.child.id().to_string())
    }
}

/// A memory figure of process `pid` (a number, or `self`) from
/// `/proc/PID/status`, such as `VmRSS:` (now) or `VmHWM:` (peak), in MB.
pub(crate) fn memory_mb(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU time, user and system, that process `pid` (a number, or `self`)
/// has used so far, in seconds (Linux only).
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 14th and 15th, in USER_HZ (100 per second on Linux).
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// What a load cost the servers under test.
pub struct Observed {
    /// The highest peak resident memory of any of them.
    pub peak_rss_mb: Option<f64>,
    /// CPU time all of them used during the load.
    pub cpu_seconds: Option<f64>,
}

/// Loads `server` (app [`APP`], key `key`) as `args` say, and reads what
/// it cost it.
pub(crate) fn observe_one(
    server: &Running,
    key: &str,
    args: &LoadArgs,
) -> (load::Report, Observed) {
    observe(std::slice::from_ref(server), || {
        load::run(std::slice::from_ref(&server.url), key, APP, args)
    })
}

/// Runs `load` against `servers` and reads what it cost them.
fn observe(servers: &[Running], load: impl FnOnce() -> load::Report) -> (load::Report, Observed) {
    let before: Vec<Option<f64>> = servers.iter().map(Running::cpu_seconds).collect();
    let report = load();
    let observed = Observed {
        peak_rss_mb: servers
            .iter()
            .filter_map(Running::peak_rss_mb)
            .reduce(f64::max),
        cpu_seconds: servers
            .iter()
            .zip(before)
            .map(|(s, before)| Some(s.cpu_seconds()? - before?))
            .sum(),
    };
    (report, observed)
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Spawns `command` and waits for a line starting with `marker`, whose next
/// word is the server's URL.
fn spawn(mut command: Command, marker: &str, from_stderr: bool) -> Result<Running> {
    if from_stderr {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    }
    let mut child = command.spawn().context("starting the server")?;
    let pipe: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().context("stderr")?)
    } else {
        Box::new(child.stdout.take().context("stdout")?)
    };
    let mut lines = BufReader::new(pipe).lines();
    let url = loop {
        let Some(line) = lines.next().transpose()? else {
            bail!("the server exited before printing its URL");
        };
        if let Some(rest) = line.strip_prefix(marker) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Running { child, url })
}

pub(crate) fn tally_binary(tally: Option<PathBuf>) -> Result<PathBuf> {
    match tally {
        Some(path) => Ok(path),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("binary dir")?
            .join("tally")),
    }
}

/// Starts `tally serve` on `data` (or on `store`, keeping only its admin
/// token in `data`) and makes sure `app` exists; returns the server and the
/// app's key.
pub(crate) fn start_tally(
    data: &Path,
    store: Option<&str>,
    tally: &Path,
    app: &str,
) -> Result<(Running, String)> {
    start_tally_with(data, store, tally, app, unlimited)
}

/// The benchmark measures what the server can take, not the rate limit
/// that keeps one app from taking all of it (an environment variable,
/// which builds from before the limit ignore).
pub(crate) fn unlimited(command: &mut Command) {
    command.env("TALLY_APP_EVENTS_PER_SECOND", "100000000");
}

/// [`start_tally`] with the server's limits at their defaults, but for
/// what `configure` adds to the `tally serve` command.
pub(crate) fn start_tally_with(
    data: &Path,
    store: Option<&str>,
    tally: &Path,
    app: &str,
    configure: impl FnOnce(&mut Command),
) -> Result<(Running, String)> {
    let mut command = Command::new(tally);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("TALLY_LOG", "warn");
    if let Some(store) = store {
        command.args(["--store", store]);
    }
    configure(&mut command);
    // A shared store gets the app before the collector starts, so that it
    // knows the key from its first request rather than learning it later.
    let known = store
        .map(|_| app_key(data, store, tally, app))
        .transpose()?;
    let running = spawn(command, "Tally is running at ", true)?;
    let key = match known {
        Some(key) => key,
        None => app_key(data, store, tally, app)?,
    };
    Ok((running, key))
}

/// The ingest key of `app` on the running server of `data` (or `store`),
/// adding the app if it is not there yet.
pub(crate) fn app_key(data: &Path, store: Option<&str>, tally: &Path, app: &str) -> Result<String> {
    let data_arg = data.to_str().context("data dir is not UTF-8")?;
    let place = match store {
        Some(store) => ["--store", store],
        None => ["--data", data_arg],
    };
    let out = Command::new(tally)
        .args(["app", "list"])
        .args(place)
        .output()?;
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Some(key) = listed
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{app}\t")))
    {
        return Ok(key.to_owned());
    }
    let out = Command::new(tally)
        .args(["app", "add", app])
        .args(place)
        .output()?;
    if !out.status.success() {
        bail!("app add: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Loads `collectors` servers on one store (the data dir's, or `store`),
/// spreading the clients over them.
pub fn ingest(
    args: &LoadArgs,
    data: Option<PathBuf>,
    store: Option<&str>,
    collectors: usize,
    tally: Option<PathBuf>,
) -> Result<()> {
    if collectors > 1 && store.is_none() {
        bail!("several collectors need a shared --store");
    }
    let tally = tally_binary(tally)?;
    let temps = (0..collectors)
        .map(|_| tempfile::tempdir())
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut servers = Vec::new();
    let mut key = String::new();
    for (i, temp) in temps.iter().enumerate() {
        let dir = match (&data, i) {
            (Some(data), 0) => data.clone(),
            _ => temp.path().to_owned(),
        };
        let (server, k) = start_tally(&dir, store, &tally, APP)?;
        servers.push(server);
        key = k;
    }
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let (report, observed) = observe(&servers, || load::run(&urls, &key, APP, args));
    let what = match store {
        Some(_) => format!("tally serve x{collectors} on ClickHouse"),
        None => "tally serve".to_owned(),
    };
    report.print(&what, args, &observed);
    Ok(())
}

pub fn bare(args: &LoadArgs) -> Result<()> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("bare-server");
    let server = spawn(command, "listening on ", false)?;
    let (report, observed) = observe_one(&server, "none", args);
    report.print("bare axum", args, &observed);
    Ok(())
}

/// An axum server whose one route reads the body and discards it.
pub fn run_bare_server() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/v1/batch",
            axum::routing::post(|body: axum::body::Bytes| async move {
                axum::Json(
                    serde_json::json!({"accepted": body.len(), "duplicates": 0, "rejected": []}),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

pub fn fill(data: &Path, events: u64, tally: Option<PathBuf>) -> Result<()> {
    let tally = tally_binary(tally)?;
    let (server, key) = start_tally(data, None, &tally, APP)?;
    let counter = AtomicU64::new(0);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let batches = events.div_ceil(1000);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (agent, counter, key, url) = (&agent, &counter, &key, &server.url);
                s.spawn(move || -> Result<()> {
                    for b in (w..batches).step_by(4) {
                        let body = load::body(APP, 1000, counter, true);
                        loop {
                            let status = agent
                                .post(format!("{url}/v1/batch"))
                                .header("Authorization", format!("Bearer {key}"))
                                .header("Content-Encoding", "gzip")
                                .send(&body[..])?
                                .status();
                            if status.is_success() {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                        if w == 0 && b % 1000 == 0 {
                            eprintln!("{} events", b * 1000);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("worker panicked"))??;
        }
        Ok(())
    })?;
    eprintln!("filled {} with {events} events", data.display());
    Ok(())
}
