//! A private ClickHouse for the ClickHouse benchmarks, of either engine the
//! tests run (`tally_testkit::clickhouse`), so that both are measured the
//! same way on the same machine.

use std::io::Read;

use anyhow::{Context, Result};
use tally_testkit::clickhouse::LocalServer;

use crate::server::memory_mb;

/// Which ClickHouse to run.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Engine {
    /// Debian's clickhouse-server (18.16).
    Debian,
    /// The current engine (26.x) behind the testkit's HTTP front.
    Current,
}

/// Starts the server, prints its store URL (add the database), waits for
/// stdin to close, prints the server's peak RSS and stops it.
pub(crate) fn run(engine: Engine) -> Result<()> {
    let server = match engine {
        Engine::Debian => LocalServer::start(),
        Engine::Current => LocalServer::start_current()
            .context("the current engine needs PyPI's chdb-core, which is out of reach")?,
    };
    println!("{}", server.store_url(""));
    let pid = server.pid().context("the server is not running")?;
    std::io::stdin()
        .read_to_end(&mut Vec::new())
        .context("reading stdin")?;
    match memory_mb(&pid.to_string(), "VmHWM:") {
        Some(mb) => println!("ClickHouse peak RSS: {mb:.0} MB"),
        None => println!("ClickHouse peak RSS: unknown (the server is gone)"),
    }
    Ok(())
}
