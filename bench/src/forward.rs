//! Forwarding's cost and speed: the same load into `tally serve` without
//! forwarding and with a webhook destination on loopback, side by side in
//! one run; then how fast the destination got the events, and how long the
//! backlog took to drain after the load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::LoadArgs;
use crate::server::{APP, observe_one, start_tally_with, tally_binary, unlimited};

/// A webhook receiver in this process that counts the events it is sent.
struct Receiver {
    url: String,
    events: Arc<AtomicU64>,
}

fn receiver() -> Result<Receiver> {
    let events = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&events);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
                let counted = Arc::clone(&counted);
                async move {
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let n = body["data"].as_array().map_or(0, Vec::len);
                    counted.fetch_add(n as u64, Ordering::Relaxed);
                    "ok"
                }
            });
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let addr = rx.recv().context("the receiver's address")?;
    Ok(Receiver {
        url: format!("http://{addr}/hook"),
        events,
    })
}

/// A destination that takes connections and never answers: every request
/// to it waits out the sender's timeout.
fn black_hole() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    Ok(url)
}

/// The config of `healthy` webhook destinations and, with `black_holed`,
/// one that never answers.
fn config(healthy: &[Receiver], black_holed: Option<&str>, batch_events: usize) -> String {
    let urls = healthy
        .iter()
        .map(|r| r.url.as_str())
        .chain(black_holed)
        .enumerate();
    urls.map(|(i, url)| {
        format!(
            "[[apps.{APP}.forward]]\nname = \"hooks{i}\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nbatch_events = {batch_events}\n"
        )
    })
    .collect()
}

pub fn run(
    args: &LoadArgs,
    batch_events: usize,
    destinations: usize,
    black_holed: bool,
    tally: Option<std::path::PathBuf>,
) -> Result<()> {
    let tally = tally_binary(tally)?;
    // The baseline: the same load, no forwarding.
    let plain = tempfile::tempdir()?;
    let (server, key) = start_tally_with(plain.path(), None, &tally, APP, unlimited)?;
    let (report, observed) = observe_one(&server, &key, args);
    report.print("tally serve, no forwarding", args, &observed);
    drop(server);

    let healthy = (0..destinations.max(1))
        .map(|_| receiver())
        .collect::<Result<Vec<_>>>()?;
    let hole = black_holed.then(black_hole).transpose()?;
    let data = tempfile::tempdir()?;
    let config_file = data.path().join("tally.toml");
    std::fs::write(
        &config_file,
        config(&healthy, hole.as_deref(), batch_events),
    )?;
    let (server, key) = start_tally_with(data.path(), None, &tally, APP, |command| {
        unlimited(command);
        command.arg("--config").arg(&config_file);
    })?;
    let (report, observed) = observe_one(&server, &key, args);
    let during: Vec<u64> = healthy
        .iter()
        .map(|r| r.events.load(Ordering::Relaxed))
        .collect();
    let what = format!(
        "tally serve, forwarding to {} webhooks{}",
        healthy.len(),
        if black_holed {
            " and one that never answers"
        } else {
            ""
        }
    );
    report.print(&what, args, &observed);
    let stored = report.events;
    let started = Instant::now();
    while healthy
        .iter()
        .any(|r| r.events.load(Ordering::Relaxed) < stored)
    {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the webhooks did not get all {stored} events in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain = started.elapsed().as_secs_f64();
    let secs = report.elapsed.as_secs_f64();
    println!(
        "forwarded to each healthy webhook: {during:?} of {stored} events during the load ({:.0} events/s each, batch_events={batch_events}), all of them {drain:.2} s after it: {:.0} events/s overall",
        during.iter().sum::<u64>() as f64 / during.len() as f64 / secs,
        stored as f64 / (secs + drain)
    );
    if black_holed {
        let metrics = ureq::get(format!("{}/metrics", server.url))
            .call()?
            .body_mut()
            .read_to_string()?;
        for line in metrics.lines().filter(|l| {
            l.starts_with("tally_forward_") && l.contains(&format!("hooks{}", healthy.len()))
        }) {
            println!("  the one that never answers: {line}");
        }
    }
    Ok(())
}
