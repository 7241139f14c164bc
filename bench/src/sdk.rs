//! What the SDK adds to a CLI run: democli with telemetry on against
//! `DO_NOT_TRACK=1`, interleaved, for each endpoint condition.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::server::{start_tally, tally_binary};

/// An endpoint that accepts connections and never answers (`None`), or
/// answers with `status` after a delay; runs for the life of the process.
fn endpoint(answer: Option<(Duration, u16)>) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                match answer {
                    Some((delay, status)) => {
                        std::thread::sleep(delay);
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                        );
                    }
                    None => std::thread::sleep(Duration::from_secs(3600)),
                }
            });
        }
    });
    Ok(url)
}

fn closed_port() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(format!("http://{}", listener.local_addr()?))
}

fn democli_binary(democli: Option<PathBuf>) -> Result<PathBuf> {
    match democli {
        Some(path) => Ok(path),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("binary dir")?
            .join("democli")),
    }
}

/// Runs `command` with telemetry on or off (DO_NOT_TRACK) and times it.
fn time_run(mut command: Command, off: bool) -> Result<Duration> {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    if off {
        command.env("DO_NOT_TRACK", "1");
    } else {
        command.env_remove("DO_NOT_TRACK");
    }
    let started = Instant::now();
    let status = command.status()?;
    let took = started.elapsed();
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(took)
}

/// `democli build` for the user whose home is `home`.
fn democli_build(democli: &Path, home: &Path, endpoint: &str, key: &str) -> Command {
    let mut command = Command::new(democli);
    command
        .args(["build", "--verbose", "--target", "x86_64-unknown-linux-gnu"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("DEMOCLI_TELEMETRY_ENDPOINT", endpoint)
        .env("DEMOCLI_TELEMETRY_KEY", key)
        .env_remove("DEMOCLI_TELEMETRY_DISABLED");
    command
}

/// Median and p99 of `runs` interleaved off/on runs, as a table row.
fn row(name: &str, runs: usize, make: &dyn Fn() -> Command) -> Result<()> {
    let (mut on, mut off) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        off.push(time_run(make(), true)?);
        on.push(time_run(make(), false)?);
    }
    on.sort();
    off.sort();
    let (on50, on99) = (percentile(&on, 0.5), percentile(&on, 0.99));
    let (off50, off99) = (percentile(&off, 0.5), percentile(&off, 0.99));
    println!(
        "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:+.2} ms | {:+.2} ms |",
        ms(off50),
        ms(off99),
        ms(on50),
        ms(on99),
        ms(on50) - ms(off50),
        ms(on99) - ms(off99),
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn run(
    runs: usize,
    democli: Option<PathBuf>,
    tally: Option<PathBuf>,
    posthog_cli: Option<PathBuf>,
) -> Result<()> {
    let democli = democli_binary(democli)?;
    let tally = tally_binary(tally)?;
    let data = tempfile::tempdir()?;
    let (server, key) = start_tally(data.path(), None, &tally, "democli")?;
    let conditions = [
        (
            "healthy",
            server.url.clone(),
            endpoint(Some((Duration::ZERO, 200)))?,
        ),
        ("down (connection refused)", closed_port()?, closed_port()?),
        ("black-holed", endpoint(None)?, endpoint(None)?),
        (
            "slow (answers after 5 s)",
            endpoint(Some((Duration::from_secs(5), 503)))?,
            endpoint(Some((Duration::from_secs(5), 200)))?,
        ),
    ];
    println!("`build`, {runs} runs per row, telemetry on vs DO_NOT_TRACK=1 interleaved");
    println!(
        "| CLI, endpoint | off median | off p99 | on median | on p99 | added median | added p99 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, tally_endpoint, posthog_endpoint) in &conditions {
        let home = tempfile::tempdir()?;
        let enable = Command::new(&democli)
            .args(["telemetry", "enable"])
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("XDG_CACHE_HOME", home.path().join(".cache"))
            .stdout(Stdio::null())
            .status()?;
        if !enable.success() {
            bail!("democli telemetry enable failed");
        }
        row(&format!("democli (Tally SDK), {name}"), runs, &|| {
            democli_build(&democli, home.path(), tally_endpoint, &key)
        })?;
        if let Some(posthog_cli) = &posthog_cli {
            // posthog-rs blocks for its request; a few runs tell the story
            // when the endpoint hangs (30 s each).
            let runs = if name.starts_with("healthy") || name.starts_with("down") {
                runs
            } else {
                3
            };
            row(&format!("posthog-rs, {name}"), runs, &|| {
                let mut command = Command::new(posthog_cli);
                command.env("POSTHOG_ENDPOINT", posthog_endpoint);
                command
            })?;
        }
    }
    drop(server);
    Ok(())
}
