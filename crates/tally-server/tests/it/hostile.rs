//! Clients that mean harm, over real sockets: ones that send half a header
//! and wait, trickle a body, hold connections open, send bombs, or send more
//! than their share. Each test gives the server short limits and checks that
//! it ends what they started and keeps serving everyone else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tally_server::{Rate, RateLimits};
use tally_testkit::events::{batch_body, fresh, gzip};
use tally_testkit::server::RunningServer;

/// Long enough that a server that should act never makes a test wait this
/// long, short enough that one that does not act fails rather than hangs.
const PATIENCE: Duration = Duration::from_secs(20);

fn connect(server: &RunningServer) -> TcpStream {
    let stream = TcpStream::connect(addr(server)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

fn addr(server: &RunningServer) -> &str {
    server.url.trim_start_matches("http://")
}

/// Reads until the server closes: what it sent, or an error if it kept
/// the connection open past [`PATIENCE`].
fn read_to_close(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut text = Vec::new();
    stream.read_to_end(&mut text)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Reads one response's status and JSON body.
fn read_response(stream: &TcpStream) -> (u16, Value) {
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
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn healthz(server: &RunningServer) -> u16 {
    ureq::get(format!("{}/healthz", server.url))
        .call()
        .map_or(0, |r| r.status().as_u16())
}

/// Posts `body` (sent as is, with `headers`) to `/v1/batch` with `key`.
fn post(
    server: &RunningServer,
    key: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = ureq::post(format!("{}/v1/batch", server.url))
        .header("Authorization", &format!("Bearer {key}"))
        .config()
        .http_status_as_error(false)
        .build();
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send(&body[..]).expect("POST");
    let status = response.status().as_u16();
    let answer = response.body_mut().read_json().unwrap_or(Value::Null);
    (status, answer)
}

/// The server's metrics, as Prometheus reads them.
fn metrics(server: &RunningServer) -> String {
    ureq::get(format!("{}/metrics", server.url))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text")
}

/// The value of the metric `name` (without labels).
fn metric(server: &RunningServer, name: &str) -> f64 {
    let metrics = metrics(server);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {metrics}"))
}

fn batch_of(app: &str, n: usize) -> Vec<u8> {
    batch_body(&(0..n).map(|_| fresh(app)).collect::<Vec<_>>())
}

#[test]
fn half_a_header_is_cut_off_after_the_header_timeout() {
    let server =
        RunningServer::start_with(|c| c.connections.header_timeout = Duration::from_millis(300));
    let mut stream = connect(&server);
    write!(stream, "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthor").expect("half a header");
    read_to_close(&mut stream).expect("the server closes the connection");
    assert_eq!(healthz(&server), 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server =
        RunningServer::start_with(|c| c.connections.header_timeout = Duration::from_millis(300));
    let mut stream = connect(&server);
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let (status, body) = read_response(&stream);
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    // Nothing more is sent: the server must not keep the socket forever.
    assert_eq!(read_to_close(&mut stream).expect("closed"), "");
}

/// A client that pipelines requests and never reads the answers fills the
/// socket's buffers; no header timer runs then, so only the write timeout
/// ends the connection.
#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let server = RunningServer::start_with(|c| {
        // Long enough for the check below to see the connection open.
        c.connections.write_timeout = Duration::from_secs(1);
        c.connections.header_timeout = Duration::from_secs(60);
    });
    let mut stream = connect(&server);
    // 20,000 answers of 15 KB: 300 MB, more than any socket buffers hold
    // (autotuned ones reached 30 MB under load). Written from a thread of
    // its own: once the server stops reading, the writes block, and they
    // fail once it closes.
    let requests = "GET /assets/dashboard.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);
    let mut writer = stream.try_clone().expect("clone");
    let writing = std::thread::spawn(move || {
        let _ = writer.write_all(requests.as_bytes());
    });
    // The server ends the connection while the client reads nothing: only
    // the scrape that asks is open then.
    // First seen open (under load the server may not have taken it yet,
    // and the check below would pass before it began), then closed.
    tally_testkit::eventually(PATIENCE, "the stalled connection is open", || {
        (metric(&server, "tally_connections_open") >= 2.0).then_some(())
    });
    tally_testkit::eventually(PATIENCE, "the stalled connection is closed", || {
        (metric(&server, "tally_connections_open") <= 1.0).then_some(())
    });
    let mut answers = Vec::new();
    let ended = stream.read_to_end(&mut answers);
    assert!(
        ended.as_ref().map_or_else(
            |e| e.kind() == std::io::ErrorKind::ConnectionReset,
            |_| true
        ),
        "the connection was not closed: {ended:?} after {} bytes",
        answers.len()
    );
    let _ = writing.join();
    let served = answers.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    assert!(
        served < 2000,
        "all {served} answers were written: never cut off"
    );
    assert_eq!(healthz(&server), 200);
}

/// Idle connections (a slowloris that never finishes its head, a
/// keep-alive between requests) cannot keep others out: at the cap, a new
/// connection takes the place of the one idle the longest.
#[test]
fn idle_connections_make_room_for_new_ones() {
    let server = RunningServer::start_with(|c| {
        c.connections.max_connections = 3;
        c.connections.header_timeout = Duration::from_secs(60);
    });
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = connect(&server);
            write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow").expect("half a head");
            stream
        })
        .collect();
    // Accepted in order: the fourth finds the three open.
    assert_eq!(healthz(&server), 200, "a new connection is served");
    assert_closed(&mut held[0]);
    assert!(metric(&server, "tally_connections_evicted_total") >= 1.0);
}

/// Writes `headers` and then the body a byte at a time, until the server
/// answers or closes; returns the status it answered.
fn trickle(server: &RunningServer, key: &str) -> u16 {
    let mut stream = connect(server);
    let body = batch_of("slow", 3);
    write!(
        stream,
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("headers");
    let mut writer = stream.try_clone().expect("clone");
    std::thread::spawn(move || {
        for byte in body {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    read_response(&stream).0
}

/// Trickles a body at a byte every 100 ms to a server set up by
/// `configure`: it must answer 408 and store nothing.
fn assert_trickle_refused(configure: impl FnOnce(&mut tally_server::Config)) {
    let server = RunningServer::start_with(configure);
    let key = server.add_app("slow");
    assert_eq!(trickle(&server, &key), 408);
    assert!(server.export("slow").is_empty());
}

/// Long before the body timeout, a body slower than the minimum rate (a
/// byte every 100 ms, against 1 KiB/s) is refused once its grace is over.
#[test]
fn a_body_slower_than_the_minimum_rate_gets_408() {
    assert_trickle_refused(|c| {
        c.connections.body_timeout = Duration::from_secs(600);
        c.connections.body_grace = Duration::from_millis(300);
    });
}

#[test]
fn a_trickled_body_gets_408() {
    assert_trickle_refused(|c| c.connections.body_timeout = Duration::from_millis(500));
}

#[test]
fn a_trickled_body_cannot_hold_the_drain() {
    let server = RunningServer::start_with(|c| {
        c.connections.body_timeout = Duration::from_secs(600);
        c.connections.drain_timeout = Duration::from_millis(300);
    });
    let key = server.add_app("slow");
    let mut stream = connect(&server);
    write!(
        stream,
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 100000\r\n\r\n{{"
    )
    .expect("a body that never ends");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(server);
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(PATIENCE)
        .expect("the server stops after its drain timeout");
    assert_closed(&mut stream);
}

/// Asserts the server closed `stream`, having sent nothing more. Closed
/// with bytes it had not read yet is a reset: closed all the same. A
/// timeout is not.
fn assert_closed(stream: &mut TcpStream) {
    match read_to_close(stream) {
        Ok(rest) => assert_eq!(rest, "", "closed after sending more"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was not closed: {e}"),
    }
}

#[test]
fn a_bomb_gets_no_room_while_ordinary_batches_go_in() {
    let server = RunningServer::start_with(|c| c.max_in_flight_bytes = 2 * 1024 * 1024);
    let key = server.add_app("bombed");
    // 8 MB of spaces inside a JSON string, a few KB gzipped.
    let mut bomb = b"{\"sent_at\":\"2026-01-01T00:00:00Z\",\"events\":[\"".to_vec();
    bomb.resize(bomb.len() + 7 * 1024 * 1024, b' ');
    bomb.extend_from_slice(b"\"]}");
    let (status, answer) = post(&server, &key, &[("Content-Encoding", "gzip")], gzip(&bomb));
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"], "busy", "{answer}");

    let (status, answer) = post(&server, &key, &[], batch_of("bombed", 100));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(server.export("bombed").len(), 100);
}

/// A body is held in the memory budget as it arrives, not as announced:
/// clients that announce a megabyte each and send a few bytes cannot take
/// the budget from the clients that send their batches.
#[test]
fn a_body_announced_and_not_sent_holds_no_memory() {
    let server = RunningServer::start_with(|c| c.max_in_flight_bytes = 2 * 1024 * 1024);
    let key = server.add_app("announced");
    let _announced: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = connect(&server);
            write!(
                stream,
                "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Length: 1000000\r\n\r\n{{\"events\":["
            )
            .expect("a head and a few bytes");
            stream
        })
        .collect();
    tally_testkit::eventually(PATIENCE, "the bodies are being read", || {
        (metric(&server, "tally_in_flight_bytes") > 0.0).then_some(())
    });
    let held = metric(&server, "tally_in_flight_bytes");
    assert!(held < 1_000_000.0, "{held} bytes held for a few bytes sent");
    let (status, answer) = post(&server, &key, &[], batch_of("announced", 100));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn one_app_over_its_rate_does_not_stop_the_others() {
    let server = RunningServer::start_with(|c| {
        c.rate_limits.events_per_app = Rate::per_second(1, 1000);
    });
    let (noisy, quiet) = (server.add_app("noisy"), server.add_app("quiet"));
    assert_eq!(post(&server, &noisy, &[], batch_of("noisy", 1000)).0, 200);
    let mut response = ureq::post(format!("{}/v1/batch", server.url))
        .header("Authorization", &format!("Bearer {noisy}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send(&batch_of("noisy", 10)[..])
        .expect("POST");
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    let answer: Value = response.body_mut().read_json().expect("json");
    assert_eq!(answer["error"], "rate_limited", "{answer}");

    assert_eq!(post(&server, &quiet, &[], batch_of("quiet", 10)).0, 200);
    assert_eq!(server.export("noisy").len(), 1000);
}

#[test]
fn one_client_over_its_rate_does_not_stop_the_others() {
    let server = RunningServer::start_with(|c| {
        c.rate_limits = RateLimits {
            requests_per_client: Rate::per_second(1, 2),
            client_header: Some("X-Forwarded-For".into()),
            ..RateLimits::default()
        };
    });
    let key = server.add_app("shared");
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    for _ in 0..2 {
        assert_eq!(
            post(&server, &key, &from("198.51.100.1"), batch_of("shared", 1)).0,
            200
        );
    }
    let (status, answer) = post(&server, &key, &from("198.51.100.1"), batch_of("shared", 1));
    assert_eq!(
        (status, &answer["error"]),
        (429, &json!("rate_limited")),
        "{answer}"
    );
    assert_eq!(
        post(&server, &key, &from("198.51.100.2"), batch_of("shared", 1)).0,
        200
    );
}

#[test]
fn values_beyond_a_days_cap_are_stored_as_other_and_counted() {
    let server = RunningServer::start_with(|c| c.cardinality.app_versions = 2);
    let key = server.add_app("spray");
    let events: Vec<_> = (0..5)
        .map(|n| {
            let mut event = fresh("spray");
            event.app_version = format!("0.0.{n}");
            event
        })
        .collect();
    let (status, answer) = post(&server, &key, &[], batch_body(&events));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 5, "folded events are still stored");
    let mut versions: Vec<String> = server
        .export("spray")
        .iter()
        .map(|e| e["app_version"].as_str().expect("version").to_owned())
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        ["(other)", "(other)", "(other)", "0.0.0", "0.0.1"]
    );
    let metrics = metrics(&server);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tally_values_folded_total{") && l.ends_with(" 3")),
        "{metrics}"
    );
}
