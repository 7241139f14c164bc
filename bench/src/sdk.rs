//! What the SDK adds to a CLI run: democli with telemetry on against
//! `DO_NOT_TRACK=1`, interleaved, for each endpoint condition.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::server::{start_tally, tally_binary};

/// An endpoint that accepts connections and never answers, or answers
/// after `delay`; runs on threads for the life of the process.
fn misbehaving(delay: Option<Duration>) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                match delay {
                    Some(delay) => {
                        std::thread::sleep(delay);
                        let _ = stream.write_all(
                            b"HTTP/1.1 503 Slow\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
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

fn time_run(democli: &Path, home: &Path, endpoint: &str, key: &str, off: bool) -> Result<Duration> {
    let mut command = Command::new(democli);
    command
        .args(["build", "--verbose", "--target", "x86_64-unknown-linux-gnu"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("DEMOCLI_TELEMETRY_ENDPOINT", endpoint)
        .env("DEMOCLI_TELEMETRY_KEY", key)
        .env_remove("DEMOCLI_TELEMETRY_DISABLED")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if off {
        command.env("DO_NOT_TRACK", "1");
    } else {
        command.env_remove("DO_NOT_TRACK");
    }
    let started = Instant::now();
    let status = command.status()?;
    let took = started.elapsed();
    if !status.success() {
        bail!("democli failed: {status}");
    }
    Ok(took)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn run(runs: usize, democli: Option<PathBuf>, tally: Option<PathBuf>) -> Result<()> {
    let democli = democli_binary(democli)?;
    let tally = tally_binary(tally)?;
    let data = tempfile::tempdir()?;
    let (server, key) = start_tally(data.path(), &tally, "democli")?;
    let conditions = [
        ("healthy", server.url.clone()),
        ("down (connection refused)", closed_port()?),
        ("black-holed", misbehaving(None)?),
        (
            "slow (answers after 5 s)",
            misbehaving(Some(Duration::from_secs(5)))?,
        ),
    ];
    println!("democli build, {runs} runs per row, telemetry on vs DO_NOT_TRACK=1 interleaved");
    println!("| endpoint | off median | off p99 | on median | on p99 | added median | added p99 |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, endpoint) in conditions {
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
        let (mut on, mut off) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        for _ in 0..runs {
            off.push(time_run(&democli, home.path(), &endpoint, &key, true)?);
            on.push(time_run(&democli, home.path(), &endpoint, &key, false)?);
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
    }
    drop(server);
    Ok(())
}
