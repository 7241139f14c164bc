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
