//! The subcommands.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tally_report::{Query, Report, ReportName};
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
        /// Keep events in this shared store instead of the data dir, e.g.
        /// clickhouse://127.0.0.1:8123/tally (user and password in the URL
        /// or in CLICKHOUSE_USER / CLICKHOUSE_PASSWORD).
        #[arg(long, env = crate::env::STORE)]
        store: Option<String>,
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
    },
    /// Write synthetic events into a data dir (for trying the dashboard and
    /// for benchmarks); the server must not be running on it.
    DemoData {
        /// The data dir.
        #[arg(long, env = crate::env::DATA, default_value = "tally-data")]
        data: PathBuf,
        /// Write to this shared store (clickhouse://...) instead.
        #[arg(long, env = crate::env::STORE)]
        store: Option<String>,
        /// The app the events belong to (added if missing).
        #[arg(long, default_value = DEMO_APP)]
        app: String,
        /// How many events.
        #[arg(long, default_value_t = DEMO_EVENTS)]
        events: u64,
        /// Seed of the generator: the same seed makes the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Manage apps (each CLI that reports to this server is one app).
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Answer a report (versions, platforms, commands, flags, errors,
    /// durations, installs, environments, deprecation, health, deps).
    Report {
        /// Which report.
        #[arg(value_parser = parse_report)]
        name: ReportName,
        /// The app.
        #[arg(long)]
        app: String,
        /// From this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Before this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// Only this CLI version.
        #[arg(long)]
        version: Option<String>,
        /// Only this OS.
        #[arg(long)]
        os: Option<String>,
        /// Only humans, CI or AI agents.
        #[arg(long, value_parser = ["human", "ci", "agent"])]
        env: Option<String>,
        /// deprecation: the flag, e.g. --flag=--legacy-output.
        #[arg(long, allow_hyphen_values = true)]
        flag: Option<String>,
        /// deprecation: the command path, e.g. "deploy create".
        #[arg(long)]
        command: Option<String>,
        /// deprecation: how many days back.
        #[arg(long)]
        days: Option<u32>,
        /// How to print it.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        target: TargetArgs,
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

/// How `tally report` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// The report as JSON (what the HTTP API answers).
    Json,
    /// CSV, one block per table.
    Csv,
}

fn parse_report(s: &str) -> Result<ReportName, String> {
    ReportName::parse(s).ok_or_else(|| {
        let known: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
        format!("no such report; reports: {}", known.join(", "))
    })
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            data,
            store,
            listen,
            retention_days,
            demo,
        } => {
            if demo {
                fill_demo(&data, store.as_deref())?;
            }
            let mut config = tally_server::Config::new(data);
            config.store = store;
            config.retention_days = retention_days;
            serve(config, listen)
        }
        Command::DemoData {
            data,
            store,
            app,
            events,
            seed,
        } => {
            let place = store.clone().unwrap_or_else(|| data.display().to_string());
            let store = open_store(&data, store.as_deref())?;
            let store = store.as_ref();
            if !store.apps()?.iter().any(|a| a.name == app) {
                store.add_app(&app)?;
            }
            let started = std::time::Instant::now();
            crate::demo::fill(&mut *store.writer()?, &app, events, seed)?;
            eprintln!(
                "Wrote {events} events of {app} to {place} in {:.1} s.",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
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
        Command::Report {
            name,
            app,
            since,
            until,
            version,
            os,
            env,
            flag,
            command,
            days,
            format,
            target,
        } => {
            let params: BTreeMap<String, String> = [
                ("app", Some(app)),
                ("since", since),
                ("until", until),
                ("version", version),
                ("os", os),
                ("env", env),
                ("flag", flag),
                ("command", command),
                ("days", days.map(|d| d.to_string())),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            report(name, &params, format, &target)
        }
    }
}

fn report(
    name: ReportName,
    params: &BTreeMap<String, String>,
    format: Format,
    target: &TargetArgs,
) -> Result<()> {
    // Checked here too, so a bad filter fails the same way with or without
    // a server.
    let query = Query::from_params(name, params)?;
    let report: Report = match target.resolve()? {
        Target::Store(store) => store.report(&query)?,
        Target::Server(client) => {
            let query_string: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect();
            client
                .get(&format!(
                    "/api/v1/reports/{name}?{}",
                    query_string.join("&")
                ))?
                .body_mut()
                .read_json()?
        }
    };
    let text = match format {
        Format::Table => report.to_text(),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Csv => report.to_csv(),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
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

/// The app and size of `serve --demo`'s data.
const DEMO_APP: &str = "democli";
const DEMO_EVENTS: u64 = 100_000;

/// Opens the shared store at `url` if given, else the data dir's.
fn open_store(data: &Path, url: Option<&str>) -> Result<Box<dyn Store>> {
    Ok(match url {
        Some(url) => Box::new(
            tally_store::ClickHouseStore::open(url).with_context(|| format!("opening {url}"))?,
        ),
        None => Box::new(
            tally_store::DuckDbStore::open(data)
                .with_context(|| format!("opening {}", data.display()))?,
        ),
    })
}

/// Fills a store that has no apps yet with demo data: the shared store at
/// `url` if given, else the data dir's.
fn fill_demo(data: &Path, url: Option<&str>) -> Result<()> {
    let place = url.map_or_else(|| data.display().to_string(), str::to_owned);
    let store = open_store(data, url)?;
    if !store.apps()?.is_empty() {
        eprintln!("{place} has apps already; not adding demo data.");
        return Ok(());
    }
    store.add_app(DEMO_APP)?;
    eprintln!("Adding 90 days of demo data for the app {DEMO_APP}...");
    crate::demo::fill(&mut *store.writer()?, DEMO_APP, DEMO_EVENTS, 1)
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
        let opening = config
            .store
            .clone()
            .unwrap_or_else(|| data.display().to_string());
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
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let url = format!("http://{addr}");
    let path = data.join(SERVER_FILE);
    std::fs::write(
        &path,
        serde_json::to_string(&ServerFile { url: url.clone() })?,
    )
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
