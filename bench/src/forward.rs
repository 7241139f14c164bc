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

pub fn run(args: &LoadArgs, batch_events: usize, tally: Option<std::path::PathBuf>) -> Result<()> {
    let tally = tally_binary(tally)?;
    // The baseline: the same load, no forwarding.
    let plain = tempfile::tempdir()?;
    let (server, key) = start_tally_with(plain.path(), None, &tally, APP, unlimited)?;
    let (report, observed) = observe_one(&server, &key, args);
    report.print("tally serve, no forwarding", args, &observed);
    drop(server);

    let receiver = receiver()?;
    let data = tempfile::tempdir()?;
    let config = data.path().join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "[[apps.{APP}.forward]]\nname = \"hooks\"\nkind = \"webhook\"\nurl = \"{}\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nbatch_events = {batch_events}\n",
            receiver.url
        ),
    )?;
    let (server, key) = start_tally_with(data.path(), None, &tally, APP, |command| {
        unlimited(command);
        command.arg("--config").arg(&config);
    })?;
    let (report, observed) = observe_one(&server, &key, args);
    let during = receiver.events.load(Ordering::Relaxed);
    report.print("tally serve, forwarding to a webhook", args, &observed);
    let stored = report.events;
    let started = Instant::now();
    while receiver.events.load(Ordering::Relaxed) < stored {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!(
                "the webhook got {} of {stored} events in 10 minutes",
                receiver.events.load(Ordering::Relaxed)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain = started.elapsed().as_secs_f64();
    let secs = report.elapsed.as_secs_f64();
    println!(
        "forwarded: {during} of {stored} events during the load ({:.0} events/s, batch_events={batch_events}), the rest in {drain:.2} s after it: {:.0} events/s overall",
        during as f64 / secs,
        stored as f64 / (secs + drain)
    );
    Ok(())
}
