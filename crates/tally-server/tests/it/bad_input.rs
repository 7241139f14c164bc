//! What hostile or broken clients send, and the clear 4xx each gets.

use std::io::Write;

use serde_json::{Value, json};
use tally_testkit::events::{batch_body, fresh, gzip};
use tally_testkit::server::RunningServer;

use crate::support::Harness;

fn batch_json(events: Vec<Value>) -> Vec<u8> {
    batch_body(&events)
}

fn event(app: &str) -> Value {
    serde_json::to_value(fresh(app)).expect("json")
}

fn event_with(app: &str, key: &str, value: Value) -> Vec<u8> {
    let mut e = event(app);
    e[key] = value;
    batch_json(vec![e])
}

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_and_store_nothing() {
    let server = Harness::new();
    let key = server.add_app("strict").await;
    let other_key = server.add_app("other").await;

    let mut missing = event("strict");
    missing.as_object_mut().expect("object").remove("exit_code");
    let mut nested = event("strict");
    nested["properties"] = json!({"a": {"b": {"c": {"d": 1}}}});
    let mut deep = String::from("1");
    for _ in 0..200 {
        deep = format!("{{\"x\": {deep}}}");
    }
    let mut deeply = event("strict");
    deeply["properties"] = json!("placeholder");
    let deeply =
        serde_json::to_string(&json!({"sent_at": "2026-01-01T00:00:00Z", "events": [deeply]}))
            .expect("json")
            .replace("\"placeholder\"", &deep);
    let valid = batch_json(vec![event("strict")]);
    let truncated_gzip = {
        let full = gzip(&valid);
        full[..full.len() / 2].to_vec()
    };
    let bomb = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).expect("gzip");
        }
        encoder.finish().expect("gzip")
    };
    let future = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let mut future_event = event("strict");
    future_event["timestamp"] = json!(
        future
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    );

    let gz = [("Content-Encoding", "gzip")];
    let cases: Vec<Case> = vec![
        (
            "invalid JSON",
            &key,
            &[],
            b"{\"sent_at\": ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "truncated gzip",
            &key,
            &gz,
            truncated_gzip,
            400,
            "invalid_encoding",
        ),
        ("gzip bomb", &key, &gz, bomb, 413, "too_large"),
        (
            "wrong types",
            &key,
            &[],
            event_with("strict", "exit_code", json!("zero")),
            400,
            "invalid_events",
        ),
        (
            "missing field",
            &key,
            &[],
            batch_json(vec![missing]),
            400,
            "invalid_events",
        ),
        (
            "string over limit",
            &key,
            &[],
            event_with("strict", "command", json!("x".repeat(10_000))),
            400,
            "invalid_events",
        ),
        (
            "unknown key",
            "tk_nope",
            &[],
            valid.clone(),
            401,
            "unauthorized",
        ),
        (
            "wrong app for key",
            &other_key,
            &[],
            valid.clone(),
            400,
            "invalid_events",
        ),
        (
            "future timestamp",
            &key,
            &[],
            batch_json(vec![future_event]),
            400,
            "invalid_events",
        ),
        (
            "non-UTF-8",
            &key,
            &[],
            b"{\"sent_at\": \"\xff\xfe\", \"events\": []}".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "nested properties",
            &key,
            &[],
            batch_json(vec![nested]),
            400,
            "invalid_events",
        ),
        (
            "deeply nested properties",
            &key,
            &[],
            deeply.into_bytes(),
            400,
            "invalid_events",
        ),
        (
            "unknown encoding",
            &key,
            &[("Content-Encoding", "br")],
            valid.clone(),
            415,
            "unsupported",
        ),
        (
            "not JSON content",
            &key,
            &[("Content-Type", "text/plain")],
            valid.clone(),
            415,
            "unsupported",
        ),
    ];
    for (name, key, headers, body, status, code) in cases {
        let answer = server.ingest(key, headers, body).await;
        let (got, connection) = (answer.status.as_u16(), answer.connection);
        let answer = answer.body;
        assert_eq!(got, status, "{name}: {answer}");
        // 401, 413 and 415 close the connection: most are refused before
        // the body is read, whose rest must not pass for another request.
        if matches!(status, 401 | 413 | 415) {
            assert_eq!(connection.as_deref(), Some("close"), "{name}: Connection");
        }
        assert_eq!(answer["error"], code, "{name}: {answer}");
        assert!(
            answer["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{name}: {answer}"
        );
    }
    let answer = server
        .ingest(&key, &[], event_with("strict", "exit_code", json!("zero")))
        .await
        .body;
    assert_eq!(answer["rejected"][0]["field"], "exit_code", "{answer}");
    assert_eq!(answer["rejected"][0]["index"], 0, "{answer}");
    assert!(
        server.export("strict").await.is_empty(),
        "nothing was stored"
    );

    // After all that, a good batch still goes in.
    assert_eq!(server.ingest(&key, &[], valid).await.status, 200);
    assert_eq!(server.export("strict").await.len(), 1);
}

/// A body far over the limit is refused from its headers, before it is
/// read, and the connection closed; a client that reads while it writes
/// gets the answer.
#[test]
fn a_50_mb_body_gets_413_before_it_is_read() {
    let server = RunningServer::start();
    let key = server.add_app("huge");
    let (status, answer) = post_50_mb(&server.url, &key);
    assert_eq!(status, 413, "50 MB body: {answer}");
    assert_eq!(answer["error"], "too_large", "{answer}");
    let (status, _) = ureq_get(&format!("{}/healthz", server.url));
    assert_eq!(status, 200, "the server stays up");
}

fn ureq_get(url: &str) -> (u16, String) {
    let mut response = ureq::get(url).call().expect("GET");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_partly_bad_batch_stores_the_good_events() {
    let server = Harness::new();
    let key = server.add_app("strict").await;
    let good = event("strict");
    let mut bad = event("strict");
    bad["os"] = json!(42);
    let answer = server.ingest(&key, &[], batch_json(vec![good, bad])).await;
    let (status, answer) = (answer.status, answer.body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(
        answer["rejected"],
        json!([{"index": 1, "field": "os", "reason": answer["rejected"][0]["reason"]}])
    );
    assert_eq!(server.export("strict").await.len(), 1);
}

#[tokio::test]
async fn a_flag_value_typed_after_equals_is_never_stored() {
    let server = Harness::new();
    let key = server.add_app("leaky").await;
    let body = event_with("leaky", "flags", json!(["--token=s3cr3t", "--force"]));
    let answer = server.ingest(&key, &[], body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 1);
    let stored = server.export("leaky").await;
    assert_eq!(stored[0]["flags"], json!(["--token", "--force"]));
    assert!(!stored[0].to_string().contains("s3cr3t"), "{}", stored[0]);
}

#[tokio::test]
async fn reading_needs_the_admin_token() {
    let server = Harness::new();
    let key = server.add_app("private").await;
    let mut paths = vec!["/api/v1/export".to_owned(), "/api/v1/apps".to_owned()];
    for report in tally_report::ReportName::ALL {
        let extra = if report == tally_report::ReportName::Deprecation {
            "&flag=--force"
        } else {
            ""
        };
        paths.push(format!("/api/v1/reports/{report}?app=private{extra}"));
    }
    let admin = server.admin_token();
    for path in &paths {
        for (token, status, what) in [
            (None, 401, "without a token"),
            (Some(key.as_str()), 401, "with an ingest key"),
            (Some(admin.as_str()), 200, "with the admin token"),
        ] {
            assert_eq!(
                server.get(path, token).await.status,
                status,
                "{path} {what}"
            );
        }
    }
    // Bad report requests name what is wrong.
    let answer = server
        .get("/api/v1/reports/nope?app=private", Some(&admin))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    let answer = server
        .get(
            "/api/v1/reports/commands?app=private&env=robot",
            Some(&admin),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["field"], "env", "{}", answer.body);
    let mode = std::fs::metadata(server.dir.path().join("admin-token")).expect("token file");
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let server = Harness::new();
    let key = server.add_app("counted").await;
    let batch = batch_json(vec![event("counted"), event("counted")]);
    let gz = [("Content-Encoding", "gzip")];
    server.ingest(&key, &gz, gzip(&batch)).await;
    server.ingest(&key, &gz, gzip(&batch)).await;
    server
        .ingest(&key, &[], event_with("counted", "os", json!("")))
        .await;
    let metrics = server.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().expect("text").to_owned();
    for line in [
        "tally_events_accepted_total 2",
        "tally_events_duplicate_total 2",
        "tally_events_rejected_total{field=\"os\"} 1",
        "tally_requests_total{outcome=\"ok\"} 2",
        "tally_queue_depth_events 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.contains("tally_commit_duration_seconds_bucket"),
        "{text}"
    );
    // Once a read has had the loader commit, nothing acknowledged is left
    // outside the tables.
    let stored = server.export("counted").await;
    assert_eq!(stored.len(), 2);
    let text = server.get("/metrics", None).await.body;
    let text = text.as_str().expect("text");
    assert!(
        text.lines().any(|l| l == "tally_store_unloaded_events 0"),
        "{text}"
    );
    // The loader's cache of install numbers holds the installs loaded.
    let installs: std::collections::HashSet<_> =
        stored.iter().map(|e| e["install_id"].clone()).collect();
    let held = format!("tally_store_installs_in_memory {}", installs.len());
    assert!(text.lines().any(|l| l == held), "{held} in {text}");
}

/// Posts a 50 MB body over a raw socket, reading the answer while the body
/// is still being written: the server answers 413 from the headers alone
/// and closes, which a client that writes before reading sees as a broken
/// pipe instead of the answer.
fn post_50_mb(url: &str, key: &str) -> (u16, Value) {
    use std::io::{BufRead, BufReader, Read};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    // A server that neither answers nor closes fails the test, not hangs it.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let size = 50 * 1024 * 1024;
    write!(
        stream,
        "POST /v1/batch HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Length: {size}\r\n\r\n"
    )
    .expect("headers");
    let mut writer = stream.try_clone().expect("clone");
    std::thread::spawn(move || {
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..size / chunk.len() {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    // Then the server closes: the rest of the body is never read.
    // Closed with our body unread, the socket may be reset rather than
    // ended; what must not happen is a wait for more.
    let mut rest = Vec::new();
    let closed = match reader.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the connection is closed after the answer");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A malformed request and the answer it must get: name, ingest key, extra
/// headers, body, status, error code.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Vec<u8>,
    u16,
    &'a str,
);

/// The issue's times: year 0000 with a matching `sent_at` was stored and
/// stopped every later export; 9999-12-31T23:59:59-23:59 panicked.
#[tokio::test]
async fn client_times_no_store_can_hold_are_refused() {
    let server = Harness::new();
    let key = server.add_app("clocks").await;
    let with_times = |sent_at: &str, timestamp: &str| {
        let mut e = event("clocks");
        e["timestamp"] = json!(timestamp);
        serde_json::to_vec(&json!({"sent_at": sent_at, "events": [e]})).expect("json")
    };
    let answer = server
        .ingest(
            &key,
            &[],
            with_times("0000-01-01T00:00:02+00:01", "0000-01-01T00:00:00+00:01"),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["field"], "sent_at", "{}", answer.body);
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("now");
    for timestamp in ["0000-01-01T00:00:00+00:01", "9999-12-31T23:59:59-23:59"] {
        let answer = server.ingest(&key, &[], with_times(&now, timestamp)).await;
        assert_eq!(answer.status, 400, "{timestamp}: {}", answer.body);
        assert_eq!(
            answer.body["rejected"][0]["field"], "timestamp",
            "{timestamp}: {}",
            answer.body
        );
    }
    // A clock that reads 1970 is believed to be wrong, not refused.
    let answer = server
        .ingest(
            &key,
            &[],
            with_times("1970-01-01T00:10:00Z", "1970-01-01T00:09:58Z"),
        )
        .await;
    assert_eq!(answer.body["accepted"], 1, "{}", answer.body);
    let stored = server.export("clocks").await;
    assert_eq!(stored[0]["client_timestamp"], "1970-01-01T00:09:58Z");
}

/// An event no export line can hold, as a Tally before time validation
/// stored it: the client's clock read year 0000 at offset +00:01, which
/// is year -1 on UTC.
fn unwritable(n: u32, app: &str) -> tally_protocol::StoredEvent {
    let mut stored = tally_testkit::events::sample(n, app, time::OffsetDateTime::now_utc());
    stored.client_timestamp =
        time::OffsetDateTime::from_unix_timestamp(-62_167_219_260).expect("year -1");
    stored
}

/// An export that fails midway must not look whole: the chunked body is
/// cut off, so the client's read fails, after whole lines only.
#[test]
fn an_export_that_fails_midway_is_cut_off() {
    let server = RunningServer::start_with(|config| {
        let store = config.store.open().expect("store");
        let at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let events = vec![
            tally_testkit::events::sample(1, "cut", at),
            unwritable(2, "cut"),
        ];
        let new = store
            .writer()
            .expect("writer")
            .insert(&mut store.stage(events))
            .expect("insert");
        assert_eq!(new, [true, true]);
    });
    let mut response = ureq::get(format!("{}/api/v1/export?app=cut", server.url))
        .header("Authorization", &format!("Bearer {}", server.admin_token()))
        .call()
        .expect("export starts");
    assert_eq!(response.status().as_u16(), 200, "sent before the first row");
    let mut reader = response.body_mut().as_reader();
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    let ended = loop {
        match std::io::Read::read(&mut reader, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    assert!(ended.is_err(), "the transfer must end as a failure");
    let text = String::from_utf8(received).expect("utf-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "half a line: {text:?}"
    );
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).expect("whole lines");
        assert_eq!(event["app"], "cut");
    }
}
