//! `tally serve`: the server, until SIGTERM or Ctrl-C.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::target::{SERVER_FILE, ServerFile, StoreArgs};
use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The address to listen on.
    #[arg(long, env = crate::env::LISTEN, default_value = "127.0.0.1:8417")]
    listen: SocketAddr,
    /// Forget events older than this many days (checked hourly).
    #[arg(long, env = crate::env::RETENTION_DAYS)]
    retention_days: Option<u32>,
    /// Fill an empty store (the data dir's, or --store) with 90 days of
    /// realistic demo data first.
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// The PostHog or Segment event that is an invocation of the CLI, for
    /// CLIs that send through those clients: NAME for every app, or
    /// APP=NAME for one (repeatable). Its properties fill the command,
    /// exit code, duration and flags (docs/compat.md); other events are
    /// custom events.
    #[arg(
        long = "invocation-event",
        value_name = "[APP=]NAME",
        default_value = "invocation"
    )]
    invocation_events: Vec<String>,
    /// A TOML file of per-app settings: invocation event, rate, forwarding
    /// (docs/compat.md and docs/forwarding.md have examples);
    /// what it sets for an app takes precedence over --app-rate and
    /// --invocation-event. Checked at start: a mistake stops the server
    /// with its line.
    #[arg(long, env = crate::env::CONFIG, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The invocation events `--invocation-event` names.
fn invocation_events(given: Vec<String>) -> tally_server::InvocationEvents {
    let mut events = tally_server::InvocationEvents::default();
    for text in given {
        match text.split_once('=') {
            Some((app, name)) => {
                events.per_app.insert(app.to_owned(), name.to_owned());
            }
            None => events.default = text,
        }
    }
    events
}

/// What the public endpoint allows (docs/security.md gives each limit's
/// reason).
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Most client connections open at once; more are answered 503.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Most connections one client address may have open at once (not
    /// applied with --client-ip-header, where all come from the proxy).
    #[arg(long, default_value_t = 128)]
    max_connections_per_client: usize,
    /// Events per second one app's ingest key may send, sustained (bursts
    /// of four times as many pass).
    #[arg(long, env = crate::env::APP_EVENTS_PER_SECOND, default_value_t = 50_000)]
    app_events_per_second: u32,
    /// An app with a rate of its own, as APP=EVENTS_PER_SECOND (repeatable).
    #[arg(long = "app-rate", value_parser = parse_app_rate)]
    app_rates: Vec<(String, u32)>,
    /// Ingest requests per second one client address may make, sustained
    /// (bursts of ten times as many pass).
    #[arg(long, default_value_t = 20)]
    client_requests_per_second: u32,
    /// Behind a reverse proxy: the header holding the client's address,
    /// e.g. X-Forwarded-For (its last entry is taken). Only with a proxy
    /// in front of every request.
    #[arg(long)]
    client_ip_header: Option<String>,
    /// Most memory requests in flight may hold, in MiB.
    #[arg(long, default_value_t = 256)]
    max_in_flight_mib: usize,
    /// A file holding the token that `GET /metrics` then needs.
    #[arg(long, conflicts_with = "metrics_token")]
    metrics_token_file: Option<PathBuf>,
    /// The token `GET /metrics` needs (prefer the file or the environment:
    /// `ps` shows arguments).
    #[arg(long, env = crate::env::METRICS_TOKEN, hide_env_values = true)]
    metrics_token: Option<String>,
}

impl LimitArgs {
    fn apply(self, config: &mut tally_server::Config) -> Result<()> {
        use tally_server::Rate;
        config.connections.max_connections = self.max_connections;
        config.connections.max_connections_per_client = self.max_connections_per_client;
        let rate = |n: u32, burst: u32| Rate::per_second(n, n.saturating_mul(burst));
        let limits = &mut config.rate_limits;
        limits.events_per_app = rate(self.app_events_per_second, 4);
        limits.apps = self
            .app_rates
            .into_iter()
            .map(|(app, n)| (app, rate(n, 4)))
            .collect();
        limits.requests_per_client = rate(self.client_requests_per_second, 10);
        limits.client_header = self.client_ip_header;
        config.max_in_flight_bytes = self.max_in_flight_mib.saturating_mul(1024 * 1024);
        config.metrics_token = match self.metrics_token_file {
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => self.metrics_token,
        };
        Ok(())
    }
}

fn parse_app_rate(text: &str) -> Result<(String, u32), String> {
    let (app, n) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not APP=EVENTS_PER_SECOND"))?;
    let n = n
        .parse()
        .map_err(|_| format!("{n:?} is not a number of events per second"))?;
    Ok((app.to_owned(), n))
}

pub fn run(args: Args) -> Result<()> {
    // What the server makes in its data dir is its owner's only, as with
    // PostgreSQL: DuckDB makes its files with the umask's mode, its WAL
    // again after every checkpoint, where Tally cannot set a mode.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::RWXG | rustix::fs::Mode::RWXO);
    let mut config = tally_server::Config::new(args.store.data.clone());
    config.store = args.store.spec()?;
    config.retention_days = args.retention_days;
    args.limits.apply(&mut config)?;
    config.invocation_events = invocation_events(args.invocation_events);
    if let Some(path) = &args.config {
        apply_config_file(path, &mut config)?;
    }
    if args.demo {
        let spec = &config.store;
        let store = spec.open().with_context(|| format!("opening {spec}"))?;
        crate::demo::fill_if_empty(&*store, &spec.to_string())?;
        // What the demo's CLI may send, unless the config file says.
        config
            .schemas
            .entry(crate::demo::APP.to_owned())
            .or_insert_with(crate::demo::schema);
    }
    serve(config, args.listen)
}

/// Reads the config file at `path` into `config`.
pub(super) fn apply_config_file(
    path: &std::path::Path,
    config: &mut tally_server::Config,
) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    tally_server::ConfigFile::parse(&text)
        .with_context(|| format!("the config file {}", path.display()))?
        .apply(config);
    Ok(())
}

fn serve(mut config: tally_server::Config, listen: SocketAddr) -> Result<()> {
    init_logging();
    #[cfg(unix)]
    fit_open_files(&mut config.connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        let data = config.data_dir.clone();
        let opening = config.store.to_string();
        let server =
            tally_server::Server::open(config).with_context(|| format!("opening {opening}"))?;
        let server_file = announce(&data, addr, &server.login_code())?;
        let result = server.run(listener, shutdown_signal()).await;
        let _ = std::fs::remove_file(server_file);
        result.context("server failed")
    })
}

/// Files the server opens besides its connections: the store's, the
/// journal's, the log, ClickHouse's connections.
#[cfg(unix)]
const OTHER_FILES: u64 = 256;

/// Raises the soft limit on open files to the hard one, and lowers the
/// connection cap to fit under it: at the common soft limit of 1024, a full
/// cap of connections would leave none for the store, and a refused
/// `open` in the loader is a failure, not a 503 that passes.
#[cfg(unix)]
fn fit_open_files(limits: &mut tally_server::ConnectionLimits) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let files = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => raised.current,
        Err(_) => limit.current,
    };
    let Some(files) = files else { return }; // unlimited
    let room = usize::try_from(files.saturating_sub(OTHER_FILES)).unwrap_or(usize::MAX);
    if limits.max_connections > room {
        tracing::warn!(
            open_files = files,
            max_connections = room,
            "The open-file limit leaves room for fewer connections than --max-connections; \
             the cap is lowered to fit (raise the limit, e.g. LimitNOFILE= in systemd, for more)."
        );
        limits.max_connections = room.max(1);
    }
}

/// Writes `DIR/server.json` so admin commands on the data dir find this
/// server, and tells the user where it is, with a link that logs in once
/// (`code` in its fragment, which no server log or referrer sees).
fn announce(data: &Path, addr: SocketAddr, code: &str) -> Result<PathBuf> {
    tally_store::owner_only::create_dir(data)
        .with_context(|| format!("creating {}", data.display()))?;
    let url = format!("http://{addr}");
    let path = data.join(SERVER_FILE);
    let json = serde_json::to_string(&ServerFile { url: url.clone() })?;
    tally_store::owner_only::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut file| file.write_all(json.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("Tally is running at {url} (data in {})", data.display());
    eprintln!(
        "Dashboard: {url}/#login={code}\n  (this link logs in once, within 15 minutes; or log in at {url}/ with the token in {})",
        data.join(tally_server::ADMIN_TOKEN_FILE).display()
    );
    Ok(path)
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env(crate::env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours for a person at a terminal; a file or a log collector gets
    // the text alone (and NO_COLOR is honoured, https://no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("Shutdown requested.");
}
