//! Forwarding through a `kill -9` of the real binary: every stored event
//! reaches the destination, and only the batch in flight at the kill may
//! reach it twice (with the same webhook-id, for the receiver to drop).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tally_protocol::Event;
use tally_testkit::events::fresh;
use tally_testkit::eventually;
use tally_testkit::receiver::{Receiver, Reply};

use crate::support::{TestServer, add_app, data_dir, ids, tally};

const BATCH_EVENTS: usize = 50;

/// How often each event id reached `receiver` in a delivery it took.
fn deliveries(receiver: &Receiver) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in receiver.received().iter().filter(|r| r.status == 200) {
        for event in request.json()["data"].as_array().into_iter().flatten() {
            *seen
                .entry(event["id"].as_str().expect("id").to_owned())
                .or_default() += 1;
        }
    }
    seen
}

#[test]
fn a_kill_9_loses_no_forwarded_event_and_repeats_at_most_the_batch_in_flight() {
    let receiver = Receiver::start();
    // Slow enough that batches are in flight whenever the kill comes.
    receiver.otherwise(Reply {
        delay: Duration::from_millis(30),
        ..Reply::status(200)
    });
    let data = data_dir();
    let config = data.path().join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "[[apps.mycli.forward]]\nname = \"hooks\"\nkind = \"webhook\"\nurl = \"{}/hook\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nbatch_events = {BATCH_EVENTS}\n",
            receiver.url
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8");
    let key = add_app(data.path(), "mycli");
    let batches: Vec<Vec<Event>> = (0..40)
        .map(|_| (0..25).map(|_| fresh("mycli")).collect())
        .collect();

    let server = TestServer::start_with(data.path(), &["--config", config]);
    let killed = AtomicBool::new(false);
    let mut unanswered = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            eventually(Duration::from_secs(30), "some deliveries", || {
                (receiver.received().len() >= 4).then_some(())
            });
            server.signal("KILL");
            killed.store(true, Ordering::SeqCst);
        });
        // Clients go on sending through the kill.
        for batch in &batches {
            if killed.load(Ordering::SeqCst) || server.send(&key, batch).0 != 200 {
                unanswered.push(batch);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    drop(server);

    // A client sends what got no answer again, as the SDK's spool does.
    let server = TestServer::start_with(data.path(), &["--config", config]);
    eprintln!(
        "{} of {} batches got no answer",
        unanswered.len(),
        batches.len()
    );
    for batch in unanswered {
        assert_eq!(server.send(&key, batch).0, 200);
    }
    let stored: HashSet<String> = ids(&export_through(&server)).into_iter().collect();
    assert_eq!(stored.len(), 1000, "every event stored once");
    let got = eventually(
        Duration::from_secs(60),
        "every stored event delivered",
        || {
            let got = deliveries(&receiver);
            (got.len() == stored.len()).then_some(got)
        },
    );
    assert!(got.keys().all(|id| stored.contains(id)));
    let twice = got.values().filter(|&&n| n > 1).count();
    eprintln!("{twice} events delivered twice");
    assert!(
        twice <= BATCH_EVENTS && got.values().all(|&n| n <= 2),
        "{twice} events delivered twice"
    );
    let (ok, status, stderr) = tally(&[
        "forward",
        "status",
        "--data",
        data.path().to_str().expect("utf-8"),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("mycli") && l.contains("hooks")),
        "{status}"
    );
}

/// The stored events, through the running server.
fn export_through(server: &TestServer) -> Vec<serde_json::Value> {
    let (status, text) = server.get("/api/v1/export?app=mycli", Some(&server.admin_token()));
    assert_eq!(status, 200);
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// A destination that never forwarded is named in the error, on one line.
#[test]
fn tally_forward_names_a_destination_it_does_not_know() {
    let data = data_dir();
    let dir = data.path().to_str().expect("utf-8");
    for command in ["dead", "replay"] {
        let (ok, stdout, stderr) = tally(&[
            "forward",
            command,
            "--app",
            "mycli",
            "--destination",
            "nope",
            "--data",
            dir,
        ]);
        assert!(!ok && stdout.is_empty(), "{command}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("no destination nope"), "{stderr}");
    }
    let (ok, stdout, _) = tally(&["forward", "status", "--data", dir]);
    assert!(ok);
    assert!(
        stdout.starts_with("No destination has forwarded"),
        "{stdout}"
    );
}
