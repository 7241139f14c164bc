//! The subcommands.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tally_store::{App, ExportFilter, Store};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::target::{SERVER_FILE, ServerFile, Target, TargetArgs};

/// Self-hosted usage analytics for command-line tools.
#[derive(Parser, Debug)]
#[command(name = "tally", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: ingest from CLIs, admin API, metrics.
    Serve {
        /// The data dir: the store and the admin token.
        #[arg(long, env = crate::env::DATA, default_value = "tally-data")]
        data: PathBuf,
        /// The address to listen on.
        #[arg(long, env = crate::env::LISTEN, default_value = "127.0.0.1:8417")]
        listen: SocketAddr,
    },
    /// Manage apps (each CLI that reports to this server is one app).
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Print stored events as NDJSON, one event a line.
    Export {
        /// Only events of this app.
        #[arg(long)]
        app: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        since: Option<OffsetDateTime>,
        /// Only events before this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        until: Option<OffsetDateTime>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Subcommand, Debug)]
enum AppCommand {
    /// Register an app and print its ingest key (and nothing else).
    Add {
        /// The app's name, as its SDK reports it.
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List the apps and their ingest keys.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { data, listen } => serve(data, listen),
        Command::App {
            command: AppCommand::Add { name, target },
        } => {
            let app: App = match target.resolve()? {
                Target::Store(store) => store.add_app(&name)?,
                Target::Server(client) => client
                    .post("/api/v1/apps", &serde_json::json!({ "name": name }))?
                    .body_mut()
                    .read_json()?,
            };
            println!("{}", app.ingest_key);
            Ok(())
        }
        Command::App {
            command: AppCommand::List { target },
        } => {
            let apps: Vec<App> = match target.resolve()? {
                Target::Store(store) => store.apps()?,
                Target::Server(client) => client.get("/api/v1/apps")?.body_mut().read_json()?,
            };
            let mut out = std::io::stdout().lock();
            for app in apps {
                writeln!(out, "{}\t{}", app.name, app.ingest_key)?;
            }
            Ok(())
        }
        Command::Export {
            app,
            since,
            until,
            target,
        } => export(ExportFilter { app, since, until }, &target),
    }
}

fn export(filter: ExportFilter, target: &TargetArgs) -> Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    match target.resolve()? {
        Target::Server(client) => {
            let mut query = Vec::new();
            if let Some(app) = &filter.app {
                query.push(format!("app={}", urlencode(app)));
            }
            for (name, time) in [("since", filter.since), ("until", filter.until)] {
                if let Some(time) = time {
                    query.push(format!("{name}={}", urlencode(&time.format(&Rfc3339)?)));
                }
            }
            let mut response = client.get(&format!("/api/v1/export?{}", query.join("&")))?;
            std::io::copy(&mut response.body_mut().as_reader(), &mut out)
                .context("reading the export from the server")?;
        }
        Target::Store(store) => {
            let mut failed = None;
            store.export(
                &filter,
                &mut |event| match serde_json::to_writer(&mut out, &event)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| Ok(out.write_all(b"\n")?))
                {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        ControlFlow::Break(())
                    }
                },
            )?;
            if let Some(e) = failed {
                return Err(e.context("writing the export"));
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Percent-encodes a query value (app names and RFC 3339 times only need
/// the reserved characters escaped).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn serve(data: PathBuf, listen: SocketAddr) -> Result<()> {
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
        let server = tally_server::Server::open(tally_server::Config::new(data.clone()))
            .with_context(|| format!("opening {}", data.display()))?;
        let server_file = announce(&data, addr)?;
        let result = server.run(listener, shutdown_signal()).await;
        let _ = std::fs::remove_file(server_file);
        result.context("server failed")
    })
}

/// Writes `DIR/server.json` so admin commands on the data dir find this
/// server, and tells the user where it is.
fn announce(data: &Path, addr: SocketAddr) -> Result<PathBuf> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let url = format!("http://{addr}");
    let path = data.join(SERVER_FILE);
    std::fs::write(
        &path,
        serde_json::to_string(&ServerFile { url: url.clone() })?,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("Tally is running at {url} (data in {})", data.display());
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
