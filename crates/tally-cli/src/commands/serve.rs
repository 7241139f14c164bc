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
    if args.demo {
        let spec = &config.store;
        let store = spec.open().with_context(|| format!("opening {spec}"))?;
        crate::demo::fill_if_empty(&*store, &spec.to_string())?;
    }
    serve(config, args.listen)
}

fn serve(config: tally_server::Config, listen: SocketAddr) -> Result<()> {
    init_logging();
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
        let server_file = announce(&data, addr)?;
        let result = server.run(listener, shutdown_signal()).await;
        let _ = std::fs::remove_file(server_file);
        result.context("server failed")
    })
}

/// Writes `DIR/server.json` so admin commands on the data dir find this
/// server, and tells the user where it is.
fn announce(data: &Path, addr: SocketAddr) -> Result<PathBuf> {
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
        "Dashboard: {url}/ (log in with the token in {})",
        data.join(tally_server::ADMIN_TOKEN_FILE).display()
    );
    Ok(path)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(crate::env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
