//! Tally's ingest benchmark: a load generator, and a bare HTTP server to
//! measure the ceiling of the HTTP stack on the same machine.
//!
//! ```sh
//! cargo run --release -p tally-bench -- ingest --batch 100 --concurrency 64
//! cargo run --release -p tally-bench -- bare --batch 1 --concurrency 64
//! cargo run --release -p tally-bench -- sdk --runs 200
//! cargo run --release -p tally-bench -- hostile --seconds 30
//! cargo run --release -p tally-bench -- forward --seconds 20
//! cargo run --release -p tally-bench -- clickhouse --engine current
//! ```
//!
//! Each run starts its server as a child process (the release `tally` next
//! to this binary, or a bare axum server), loads it for `--seconds`, and
//! prints events/s, request latency p50/p99 and the server's peak RSS.

mod access_log;
mod attack;
mod clickhouse;
mod forward;
mod hostile;
mod legit;
mod load;
mod reports;
mod sdk;
mod server;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent connections, one client thread each.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Send bodies uncompressed instead of gzip.
    #[arg(long)]
    plain: bool,
    /// Requests per second to aim at (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

#[derive(clap::Args)]
struct HostileArgs {
    /// How long each phase is measured: the baseline, then under attack.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Legitimate client threads (each stands for many installs, with an
    /// address of its own per batch in turn).
    #[arg(long, default_value_t = 8)]
    legit_clients: usize,
    /// Events per second the legitimate clients send among them, in
    /// batches of 100 (0: as fast as they can).
    #[arg(long, default_value_t = 20_000)]
    legit_rate: u64,
    /// Slowloris connections the attacker keeps open (half a head, then a
    /// byte every 3 s).
    #[arg(long, default_value_t = 2000)]
    slowloris: usize,
    /// Connections that announce a body of almost 1 MiB and trickle it.
    #[arg(long, default_value_t = 300)]
    trickle: usize,
    /// Attacker threads sending gzip bombs and heavy batches in turn.
    #[arg(long, default_value_t = 1)]
    bomb_threads: usize,
    /// Attacker threads sending high-cardinality batches.
    #[arg(long, default_value_t = 1)]
    cardinality_threads: usize,
    /// Fake addresses the attacker's requests rotate through (1: one
    /// client, which the per-client limit then holds back).
    #[arg(long, default_value_t = 4096)]
    attacker_addresses: u32,
    /// Only the baseline, without the attacker.
    #[arg(long)]
    no_attack: bool,
    /// The peak RSS the server must stay under, in MB, to say whether it
    /// did (docs/security.md states the worst case).
    #[arg(long)]
    rss_bound_mb: Option<f64>,
    /// An argument for `tally serve`, e.g. `--serve-arg=--max-connections=4096`
    /// (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// The `tally` binary (default: next to this one).
    #[arg(long)]
    tally: Option<PathBuf>,
}

impl From<HostileArgs> for hostile::Hostile {
    fn from(args: HostileArgs) -> Self {
        Self {
            seconds: args.seconds,
            legit_clients: args.legit_clients,
            legit_rate: args.legit_rate,
            attack: (!args.no_attack).then_some(attack::Attack {
                slowloris: args.slowloris,
                trickle: args.trickle,
                bomb_threads: args.bomb_threads,
                cardinality_threads: args.cardinality_threads,
                addresses: args.attacker_addresses,
            }),
            rss_bound_mb: args.rss_bound_mb,
            serve_args: args.serve_args,
            tally: args.tally,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Load a real `tally serve` (fresh data dir unless --data is given).
    Ingest {
        #[command(flatten)]
        load: LoadArgs,
        /// An existing data dir to ingest into (e.g. one pre-filled with
        /// millions of events).
        #[arg(long)]
        data: Option<PathBuf>,
        /// A shared store (clickhouse://...) instead of a data dir.
        #[arg(long)]
        store: Option<String>,
        /// How many collectors to start on the --store (clients are spread
        /// over them).
        #[arg(long, default_value_t = 1)]
        collectors: usize,
        /// The `tally` binary (default: next to this one).
        #[arg(long)]
        tally: Option<PathBuf>,
    },
    /// Load a bare axum server that discards bodies: the HTTP ceiling.
    Bare {
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Run the bare server (used by `bare`; prints its URL).
    BareServer,
    /// Report latency through the HTTP API on a filled data dir.
    Reports {
        /// The data dir (fill it with `tally demo-data`).
        #[arg(long)]
        data: PathBuf,
        /// Report from this store (clickhouse://...) instead; --data then
        /// only holds the server's admin token.
        #[arg(long)]
        store: Option<String>,
        /// The app to report on.
        #[arg(long, default_value = "democli")]
        app: String,
        /// Timed repetitions per report after the first.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// The `tally` binary (default: next to this one).
        #[arg(long)]
        tally: Option<PathBuf>,
    },
    /// What the SDK adds to a democli run, per endpoint condition.
    Sdk {
        /// Runs per condition and setting.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// The `democli` binary (default: next to this one).
        #[arg(long)]
        democli: Option<PathBuf>,
        /// The `tally` binary (default: next to this one).
        #[arg(long)]
        tally: Option<PathBuf>,
        /// The posthog-rs baseline CLI (bench/posthog-cli), to measure
        /// side by side.
        #[arg(long)]
        posthog_cli: Option<PathBuf>,
    },
    /// Legitimate clients and a health check, alone and then while an
    /// attacker sends slow, padded and high-cardinality requests at full
    /// speed, side by side in one run.
    Hostile(HostileArgs),
    /// The same load without forwarding and with a webhook destination on
    /// loopback, side by side; then how fast the events were forwarded.
    Forward {
        #[command(flatten)]
        load: LoadArgs,
        /// Events per webhook request.
        #[arg(long, default_value_t = 100)]
        batch_events: usize,
        /// Healthy webhook destinations.
        #[arg(long, default_value_t = 1)]
        destinations: usize,
        /// One more destination that takes connections and never answers.
        #[arg(long)]
        black_hole: bool,
        /// The `tally` binary (default: next to this one).
        #[arg(long)]
        tally: Option<PathBuf>,
    },
    /// Write a synthetic access log to stdout (nginx combined, or Envoy's
    /// JSON), for the `tally import-logs` benchmark.
    AccessLog {
        /// How many lines.
        #[arg(long, default_value_t = 1_000_000)]
        lines: u64,
        /// Envoy's JSON lines instead of nginx's.
        #[arg(long)]
        json: bool,
    },
    /// Fill a data dir with N events by ingesting them (for dedupe at scale).
    /// Run a private ClickHouse on loopback (a data dir of its own, gone
    /// when it stops): prints its store URL, then, when stdin closes, the
    /// server's peak RSS, and stops it.
    Clickhouse {
        /// Debian's clickhouse-server (18.16) or the current engine (26.x,
        /// PyPI's chdb-core behind the testkit's front).
        #[arg(long, value_enum, default_value = "debian")]
        engine: clickhouse::Engine,
    },
    Fill {
        /// The data dir.
        #[arg(long)]
        data: PathBuf,
        /// How many events.
        #[arg(long)]
        events: u64,
        /// The `tally` binary (default: next to this one).
        #[arg(long)]
        tally: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Ingest {
            load,
            data,
            store,
            collectors,
            tally,
        } => server::ingest(&load, data, store.as_deref(), collectors, tally),
        Command::Bare { load } => server::bare(&load),
        Command::BareServer => server::run_bare_server(),
        Command::Reports {
            data,
            store,
            app,
            repeat,
            tally,
        } => reports::run(&data, store.as_deref(), &app, repeat, tally),
        Command::Sdk {
            runs,
            democli,
            tally,
            posthog_cli,
        } => sdk::run(runs, democli, tally, posthog_cli),
        Command::Hostile(args) => hostile::run(args.into()),
        Command::AccessLog { lines, json } => access_log::run(lines, json),
        Command::Forward {
            load,
            batch_events,
            destinations,
            black_hole,
            tally,
        } => forward::run(&load, batch_events, destinations, black_hole, tally),
        Command::Clickhouse { engine } => clickhouse::run(engine),
        Command::Fill {
            data,
            events,
            tally,
        } => server::fill(&data, events, tally),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
