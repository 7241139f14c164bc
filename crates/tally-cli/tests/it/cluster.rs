//! Several `tally serve` collectors on one ClickHouse, started by the test
//! on ports chosen at run time: each test runs on Debian's
//! clickhouse-server (18.16) and on the current engine (26.x, chdb-core
//! behind the testkit's front).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tally_protocol::Event;
use tally_testkit::clickhouse::LocalServer;
use tally_testkit::events::fresh;

use crate::support::{TestServer, accepted_so_far, data_dir, ids, tally};

/// Registers `app` in the store through the CLI; returns its key.
fn add_app(store: &str, app: &str) -> String {
    let (ok, stdout, stderr) = tally(&["app", "add", app, "--store", store]);
    assert!(ok, "app add failed: {stderr}");
    stdout.trim().to_owned()
}

/// Everything stored for `app`, through `tally export --store`.
fn export(store: &str, app: &str) -> Vec<Value> {
    let (ok, stdout, stderr) = tally(&["export", "--app", app, "--store", store]);
    assert!(ok, "export failed: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

/// Total runs in the commands report: what the rollups counted.
fn counted_runs(store: &str, app: &str) -> i64 {
    let (ok, stdout, stderr) = tally(&[
        "report", "commands", "--app", app, "--store", store, "--format", "json",
    ]);
    assert!(ok, "report failed: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    report["tables"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row[1].as_i64().expect("runs"))
        .sum()
}

/// The current engine, which the tests need.
fn current() -> LocalServer {
    LocalServer::start_current().expect("the current ClickHouse engine needs PyPI's chdb-core")
}

/// Each test once on each engine.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod debian {
            $(#[test]
            fn $name() {
                super::$name(super::LocalServer::start());
            })*
        }
        mod current {
            $(#[test]
            fn $name() {
                super::$name(super::current());
            })*
        }
    };
}

on_both_engines!(
    two_collectors_store_each_acknowledged_event_once_through_a_kill_9,
    a_clickhouse_outage_gives_503_and_the_collector_recovers_alone,
    keys_added_elsewhere_are_learnt_and_unknown_keys_never_wait_for_clickhouse,
    a_collector_over_https_stores_and_reports,
);

fn two_collectors_store_each_acknowledged_event_once_through_a_kill_9(clickhouse: LocalServer) {
    let store = clickhouse.store_url("cluster");
    let key = add_app(&store, "busy");
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let mut a = TestServer::start_with(dir_a.path(), &["--store", &store]);
    let b = TestServer::start_with(dir_b.path(), &["--store", &store]);

    // Each client sends a fresh batch to one collector and retries it on the
    // other, alternating, so batches overlap across collectors.
    let stop = AtomicBool::new(false);
    let sent: Mutex<Vec<Event>> = Mutex::new(Vec::new());
    let acked: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for client in 0..4 {
            let (a, b, key, stop, sent, acked) = (&a, &b, &key, &stop, &sent, &acked);
            s.spawn(move || {
                let mut turn = client;
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<Event> = (0..25).map(|_| fresh("busy")).collect();
                    sent.lock().expect("lock").extend(batch.iter().cloned());
                    let (first, second) = if turn % 2 == 0 { (a, b) } else { (b, a) };
                    turn += 1;
                    for server in [first, second] {
                        if server.send(key, &batch).0 == 200 {
                            acked
                                .lock()
                                .expect("lock")
                                .extend(batch.iter().map(|e| e.id.to_string()));
                        }
                    }
                }
            });
        }
        while accepted_so_far(&a) < 1000 {
            std::thread::yield_now();
        }
        a.signal("KILL");
        // The survivor keeps taking batches (and retries of the dead one's).
        let then = accepted_so_far(&b);
        while accepted_so_far(&b) < then + 500 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
    });
    a.wait();
    // ClickHouse may still be finishing an insert the dead collector sent.
    clickhouse.wait_for_inserts();

    let stored = ids(&export(&store, "busy"));
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no event exported twice");
    let acked = acked.into_inner().expect("lock");
    assert!(acked.len() >= 1000);
    let lost: Vec<_> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost", lost.len());

    // The clients retry everything on the surviving collector.
    let sent = sent.into_inner().expect("lock");
    for chunk in sent.chunks(500) {
        let (status, body) = b.send(&key, chunk);
        assert_eq!(status, 200, "{body}");
    }
    let after = export(&store, "busy");
    assert_eq!(after.len(), sent.len(), "every event sent, once");
    assert_eq!(
        counted_runs(&store, "busy"),
        sent.len() as i64,
        "the rollups count every event once"
    );
}

fn a_clickhouse_outage_gives_503_and_the_collector_recovers_alone(mut clickhouse: LocalServer) {
    let store = clickhouse.store_url("outage");
    let key = add_app(&store, "flaky");
    let dir = data_dir();
    let server = TestServer::start_with(dir.path(), &["--store", &store]);
    let before: Vec<Event> = (0..10).map(|_| fresh("flaky")).collect();
    assert_eq!(server.send(&key, &before).0, 200);

    clickhouse.stop();
    let during: Vec<Event> = (0..10).map(|_| fresh("flaky")).collect();
    let (status, body) = server.send(&key, &during);
    assert_eq!(
        status, 503,
        "nothing acknowledged that was not stored: {body}"
    );
    assert_eq!(body["error"], "unavailable", "{body}");

    clickhouse.resume();
    let (status, body) = server.send(&key, &during);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 10);
    let stored = ids(&export(&store, "flaky"));
    assert_eq!(stored.len(), 20);
}

/// A collector learns keys added through another one in the background;
/// an unknown key is answered from memory, even while ClickHouse hangs.
fn keys_added_elsewhere_are_learnt_and_unknown_keys_never_wait_for_clickhouse(
    mut clickhouse: LocalServer,
) {
    let store = clickhouse.store_url("keys");
    let dir = data_dir();
    let server = TestServer::start_with(dir.path(), &["--store", &store]);
    let key = add_app(&store, "late");
    tally_testkit::eventually(
        std::time::Duration::from_secs(60),
        "the collector learns a key added after it started",
        || (server.send(&key, &[fresh("late")]).0 == 200).then_some(()),
    );

    clickhouse.stop();
    let (status, body) = server.send("tk_nobody", &[fresh("late")]);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["reason"], "unknown ingest key", "{body}");
    clickhouse.resume();
}

/// Over HTTPS with the CA file a private CA's server needs (as ClickHouse
/// Cloud's, with the system's roots): the collector stores, the CLI reads,
/// and without the CA the server's certificate is refused, not trusted.
fn a_collector_over_https_stores_and_reports(clickhouse: LocalServer) {
    let store = clickhouse.secure_store_url("secure");
    let key = add_app(&store, "private");
    let dir = data_dir();
    let server = TestServer::start_with(dir.path(), &["--store", &store]);
    let events: Vec<Event> = (0..30).map(|_| fresh("private")).collect();
    let (status, body) = server.send(&key, &events);
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&export(&store, "private")).len(), events.len());
    assert_eq!(counted_runs(&store, "private"), events.len() as i64);

    let untrusted = store.split_once('?').expect("a CA file").0;
    let (ok, _, stderr) = tally(&["app", "list", "--store", untrusted]);
    assert!(!ok, "a certificate no trusted root signed is refused");
    assert!(
        stderr.to_lowercase().contains("certificate"),
        "the error says why: {stderr}"
    );
}
