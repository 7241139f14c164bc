//! The `tally` binary: run a server, manage apps, answer reports, export
//! events, make demo data.
//!
//! Exit codes: 0 on success, 1 on any error (one line on stderr), 2 on a
//! usage error (clap's).

mod client;
mod commands;
mod demo;
mod env;
mod target;

use std::process::ExitCode;

use clap::Parser;

/// The server's request threads allocate what its commit and loader threads
/// free, and allocation was a fifth of the ingest profile; with mimalloc the
/// server ingests about a fifth more events per second (bench/README.md).
/// Built without transparent huge pages (feature `no_thp`): a huge page
/// counts whole in the server's memory however little of it is used, and
/// without them peak memory under load was a tenth lower at the same rate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as "context: cause: cause".
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}
