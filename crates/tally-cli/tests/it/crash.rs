use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tally_protocol::Event;
use tally_testkit::events::fresh;

use crate::support::{TestServer, accepted_so_far, add_app, data_dir, export, ids};

/// Four clients send batches of 25 until `stop`; returns every event sent
/// and the ids of those whose request got a 2xx.
fn load(
    server: &TestServer,
    key: &str,
    app: &str,
    stop: &AtomicBool,
) -> (Vec<Event>, HashSet<String>) {
    let sent = Mutex::new(Vec::new());
    let acked = Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<Event> = (0..25).map(|_| fresh(app)).collect();
                    sent.lock().expect("lock").extend(batch.iter().cloned());
                    if server.send(key, &batch).0 == 200 {
                        acked
                            .lock()
                            .expect("lock")
                            .extend(batch.iter().map(|e| e.id.to_string()));
                    }
                }
            });
        }
    });
    (
        sent.into_inner().expect("lock"),
        acked.into_inner().expect("lock"),
    )
}

/// Loads the server and sends it `signal` once it has accepted `threshold`
/// events, while requests are still in flight.
fn load_then_signal(
    server: &TestServer,
    key: &str,
    app: &str,
    signal: &str,
) -> (Vec<Event>, HashSet<String>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let loader = s.spawn(|| load(server, key, app, &stop));
        while accepted_so_far(server) < 2000 {
            std::thread::yield_now();
        }
        server.signal(signal);
        // Let the clients see the server go away, then stop them.
        while server.get_status("/healthz").is_some() {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
        loader.join().expect("loader")
    })
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_event() {
    let dir = data_dir();
    let mut server = TestServer::start(dir.path());
    let key = add_app(dir.path(), "crashy");
    let (sent, acked) = load_then_signal(&server, &key, "crashy", "KILL");
    server.wait();
    assert!(acked.len() >= 2000);

    let server = TestServer::start(dir.path());
    let stored = ids(&export(dir.path(), "crashy"));
    let unique: HashSet<_> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "no event stored twice");
    let lost = acked.difference(&unique).count();
    assert_eq!(lost, 0, "{lost} acknowledged events lost");

    // The clients retry everything they sent; the restarted server still
    // knows every stored id.
    for chunk in sent.chunks(500) {
        let (status, body) = server.send(&key, chunk);
        assert_eq!(status, 200, "{body}");
    }
    let after = ids(&export(dir.path(), "crashy"));
    let sent_ids: HashSet<_> = sent.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        after.len(),
        sent_ids.len(),
        "every event once after the retries"
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = data_dir();
    let mut server = TestServer::start(dir.path());
    let key = add_app(dir.path(), "drain");
    let (_, acked) = load_then_signal(&server, &key, "drain", "TERM");
    let status = server.wait();
    assert!(status.success(), "exit status {status:?}");
    let stored: HashSet<_> = ids(&export(dir.path(), "drain")).into_iter().collect();
    let lost = acked.difference(&stored).count();
    assert_eq!(lost, 0, "{lost} acknowledged events lost in the drain");
}

/// `tally serve 2> file`: the log is text, without a terminal's colour
/// codes.
#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = data_dir();
    let log = dir.path().join("serve.log");
    let mut child = std::process::Command::new(crate::support::TALLY)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .env("TALLY_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Tally is listening") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("Tally is listening"), "{text}");
    assert!(text.contains(" INFO "), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in the log: {text:?}"
    );
}

/// Per-app retention in the config file: the server forgets one app's old
/// events when it starts (and hourly), keeps the other's, and `tally
/// retention status` says what goes, from the server or from the files.
#[test]
fn an_apps_own_retention_is_applied_and_said() {
    let dir = data_dir();
    let (a, b) = (add_app(dir.path(), "a"), add_app(dir.path(), "b"));
    let mut server = TestServer::start(dir.path());
    for (key, app) in [(&a, "a"), (&b, "b")] {
        let events: Vec<Event> = [100, 1]
            .into_iter()
            .map(|days| {
                let mut e = fresh(app);
                e.timestamp = time::OffsetDateTime::now_utc() - time::Duration::days(days);
                e
            })
            .collect();
        let (status, answer) = server.send(key, &events);
        assert_eq!(
            (status, answer["accepted"].as_u64()),
            (200, Some(2)),
            "{answer}"
        );
    }
    assert!(server.terminate().success());
    let config = dir.path().join("tally.toml");
    std::fs::write(
        &config,
        "[apps.a]\nkeep_events_days = 30\nkeep_rollups_days = 400\n",
    )
    .expect("config");
    let data = dir.path().to_str().expect("utf-8");
    let (ok, files, stderr) = crate::support::tally(&[
        "retention",
        "status",
        "--data",
        data,
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{stderr}");
    let server = TestServer::start_with(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while export(dir.path(), "a").len() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        export(dir.path(), "a").len(),
        1,
        "a's event of 100 days ago is gone"
    );
    assert_eq!(export(dir.path(), "b").len(), 2, "b keeps everything");
    let (ok, said, stderr) = crate::support::tally(&["retention", "status", "--data", data]);
    assert!(ok, "{stderr}");
    assert_eq!(said, files, "the server says what its files say");
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines[0].starts_with("a: events kept 30 days (those before ")
            && lines[0].contains("; rollups kept 400 days"),
        "{said}"
    );
    assert_eq!(lines[1], "b: events kept for ever; rollups kept for ever");
    drop(server);
}
