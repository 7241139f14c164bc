use std::collections::HashSet;

use tally_protocol::Event;
use tally_testkit::events::fresh;

use crate::support::{TestServer, add_app, data_dir, export, ids, tally};

#[test]
fn a_batch_round_trips_field_for_field() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    // Added while the server runs: usable at once, without a restart.
    let key = add_app(dir.path(), "roundtrip");
    let mut sent: Vec<Event> = (0..3).map(|_| fresh("roundtrip")).collect();
    sent[1].error = None;
    sent[1].properties.clear();
    sent[2].flags.clear();
    let (status, body) = server.send(&key, &sent);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 3);
    assert_eq!(body["duplicates"], 0);

    let exported = export(dir.path(), "roundtrip");
    let mut back: Vec<Event> = exported
        .iter()
        .map(|line| serde_json::from_value(line.clone()).expect("an exported line is an event"))
        .collect();
    back.sort_by_key(|e| e.id);
    sent.sort_by_key(|e| e.id);
    // Stores keep microseconds; the SDK's timestamps may carry nanoseconds.
    for e in &mut sent {
        e.timestamp = e
            .timestamp
            .replace_nanosecond(e.timestamp.microsecond() * 1000)
            .expect("valid");
    }
    assert_eq!(back, sent);
    for line in &exported {
        assert!(
            line["received_at"].is_string(),
            "export carries received_at"
        );
        assert!(
            !line.to_string().contains("127.0.0.1"),
            "the client IP is never stored"
        );
    }
}

#[test]
fn a_retried_batch_is_stored_once() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let key = add_app(dir.path(), "retry");
    let batch: Vec<Event> = (0..10).map(|_| fresh("retry")).collect();
    let (_, first) = server.send(&key, &batch);
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(10), Some(0))
    );
    let (status, second) = server.send(&key, &batch);
    assert_eq!(status, 200);
    assert_eq!(
        (second["accepted"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(10))
    );
    assert_eq!(export(dir.path(), "retry").len(), 10);
}

#[test]
fn concurrent_clients_with_overlapping_ids_store_each_id_once() {
    let dir = data_dir();
    let server = TestServer::start(dir.path());
    let key = add_app(dir.path(), "overlap");
    let pool: Vec<Event> = (0..400).map(|_| fresh("overlap")).collect();
    let accepted: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|client| {
                let (server, key, pool) = (&server, &key, &pool);
                s.spawn(move || {
                    let mut accepted = 0;
                    // Each client sends windows of the pool that overlap
                    // with its own earlier windows and with other clients'.
                    for round in 0..10 {
                        let start = (client * 37 + round * 29) % (pool.len() - 50);
                        let (status, body) = server.send(key, &pool[start..start + 50]);
                        assert_eq!(status, 200, "{body}");
                        accepted += body["accepted"].as_u64().expect("accepted");
                    }
                    accepted
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).sum()
    });
    let exported = ids(&export(dir.path(), "overlap"));
    let unique: HashSet<_> = exported.iter().collect();
    assert_eq!(unique.len(), exported.len(), "no id stored twice");
    assert_eq!(
        accepted as usize,
        exported.len(),
        "accepted counts add up to what is stored"
    );
}

#[test]
fn export_filters_by_time_through_the_server_and_directly() {
    let dir = data_dir();
    let mut server = TestServer::start(dir.path());
    let key = add_app(dir.path(), "window");
    let now = time::OffsetDateTime::now_utc();
    let events: Vec<Event> = (0..4)
        .map(|h| {
            let mut e = fresh("window");
            e.timestamp = now - time::Duration::hours(h * 24 + 1);
            e
        })
        .collect();
    assert_eq!(server.send(&key, &events).0, 200);
    let since = (now - time::Duration::hours(50))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let data = dir.path().to_str().expect("utf-8");
    let args = [
        "export", "--app", "window", "--since", &since, "--data", data,
    ];
    let (ok, through_server, err) = tally(&args);
    assert!(ok, "{err}");
    assert_eq!(through_server.lines().count(), 3);

    assert!(server.terminate().success());
    let (ok, direct, err) = tally(&args);
    assert!(ok, "{err}");
    assert_eq!(
        direct, through_server,
        "direct export reads the same as the server's"
    );
}

#[test]
fn app_list_shows_every_app() {
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8");
    let key = add_app(dir.path(), "offline");
    let (ok, list, _) = tally(&["app", "list", "--data", data]);
    assert!(ok);
    assert_eq!(list, format!("offline\t{key}\n"));
    let (ok, _, err) = tally(&["app", "add", "offline", "--data", data]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.contains("exists already"), "{err}");
}

#[test]
fn tally_report_answers_through_the_server_and_directly() {
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let key = add_app(dir.path(), "reported");
    let mut events = vec![fresh("reported"), fresh("reported"), fresh("reported")];
    events[2].command = "build".into();
    events[2].ci = None;
    events[2].agent = None;
    let mut server = TestServer::start(dir.path());
    assert_eq!(server.send(&key, &events).0, 200);

    let ask = |extra: &[&str]| {
        let mut args = vec!["report", "commands", "--app", "reported", "--data", &data];
        args.extend_from_slice(extra);
        tally(&args)
    };
    // The running server answers (the data dir is locked by it).
    let (ok, json, stderr) = ask(&["--format", "json"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(report["tables"][0]["rows"][0][0], "deploy create");
    assert_eq!(report["tables"][0]["rows"][0][1], 2);
    let (ok, csv, _) = ask(&["--format", "csv"]);
    assert!(ok);
    assert!(
        csv.starts_with("command,runs,installs,success_rate\n"),
        "{csv}"
    );
    let (ok, table, _) = ask(&["--env", "human"]);
    assert!(ok);
    assert!(
        table.contains("build") && !table.contains("deploy"),
        "{table}"
    );

    let (ok, _, stderr) = ask(&["--since", "last tuesday"]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("since"), "{stderr}");

    // Directly on the data dir once the server is gone.
    assert!(server.terminate().success());
    let (ok, table, stderr) = ask(&[]);
    assert!(ok, "{stderr}");
    assert!(table.contains("deploy create"), "{table}");
}

#[test]
fn the_server_scrubs_what_an_sdk_let_through() {
    let dir = data_dir();
    let key = add_app(dir.path(), "leaky");
    let server = TestServer::start(dir.path());
    let mut leaky = fresh("leaky");
    let error = leaky.error.as_mut().expect("error");
    error.message =
        "open /home/alice/.netrc failed; mail alice@example.com, token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789".into();
    error.location = Some("/Users/alice/src/main.rs:3:1".into());
    assert_eq!(server.send(&key, &[leaky]).0, 200);
    drop(server);
    let stored = export(dir.path(), "leaky");
    assert_eq!(
        stored[0]["error"]["message"],
        "open /home/<user>/.netrc failed; mail <email>, token <github-token>"
    );
    assert_eq!(
        stored[0]["error"]["location"],
        "/Users/<user>/src/main.rs:3:1"
    );
}

/// A store holding a good event and, after it, one no export line can hold,
/// as a Tally before time validation could store it (a client clock that
/// read year 0000 at offset +00:01, year -1 on UTC).
fn store_with_an_unwritable_event(dir: &std::path::Path, app: &str) {
    let store = tally_store::StoreSpec::new(dir, None)
        .open()
        .expect("store");
    let at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let good = tally_testkit::events::sample(1, app, at);
    let mut bad = tally_testkit::events::sample(2, app, at + time::Duration::minutes(1));
    bad.client_timestamp =
        time::OffsetDateTime::from_unix_timestamp(-62_167_219_260).expect("year -1");
    let new = store
        .writer()
        .expect("writer")
        .insert(&mut store.stage(vec![good, bad]))
        .expect("insert");
    assert_eq!(new, [true, true]);
}

/// `tally export` that cannot finish exits non-zero with one line on
/// stderr, and what it wrote before is whole lines: from the store itself
/// and through a running server (whose cut-off response it must notice).
#[test]
fn an_export_that_fails_midway_exits_non_zero() {
    let dir = data_dir();
    store_with_an_unwritable_event(dir.path(), "cut");
    let data = dir.path().to_str().expect("utf-8");
    let check = |how: &str| {
        let (ok, stdout, stderr) = tally(&["export", "--app", "cut", "--data", data]);
        assert!(!ok, "{how}: the export must fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{how}: {stderr}");
        assert!(
            stdout.is_empty() || stdout.ends_with('\n'),
            "{how}: half a line"
        );
        for line in stdout.lines() {
            let event: serde_json::Value = serde_json::from_str(line).expect("whole lines");
            assert_eq!(event["app"], "cut");
        }
        stderr
    };
    let direct = check("from the store");
    assert!(direct.contains("cannot be written"), "{direct}");
    let _server = TestServer::start(dir.path());
    check("through the server");
}
