//! What the SDK's unit tests share: an event, and a tiny Tally endpoint on
//! loopback (real sockets and HTTP, the gzip batch decoded as the server
//! does) that answers whatever status the test chooses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use tally_protocol::{Batch, Event};

/// An event with command `c<n>` and exit code `n`.
pub(crate) fn event(n: u8) -> Event {
    let mut e: Event = serde_json::from_value(serde_json::json!({
        "id": uuid::Uuid::now_v7(), "timestamp": "2026-11-25T12:00:00Z", "app": "t",
        "app_version": "1", "install_id": uuid::Uuid::nil(), "command": format!("c{n}"),
        "flags": [], "exit_code": 0, "duration_ms": 1, "os": "linux", "arch": "x86_64"
    }))
    .expect("event");
    e.exit_code = i32::from(n);
    e
}

/// A loopback URL where nothing listens.
pub(crate) fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", listener.local_addr().expect("addr"))
}

/// One request the endpoint answered.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub batch: Batch,
    pub status: u16,
}

/// The endpoint; it answers until the test process ends.
pub(crate) struct Endpoint {
    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    /// Answers each batch with `status(batch)`; a 2xx with Tally's answer.
    pub(crate) fn start(status: impl Fn(&Batch) -> u16 + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &status, &log);
            }
        });
        Self { url, received }
    }

    /// Every request so far, in order.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

fn answer(stream: TcpStream, status: &impl Fn(&Batch) -> u16, log: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(&stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("header") == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("content-length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut json)
        .expect("gzip");
    let batch: Batch = serde_json::from_slice(&json).expect("a batch");
    let code = status(&batch);
    let reply = if (200..300).contains(&code) {
        serde_json::json!({"accepted": batch.events.len(), "duplicates": 0, "rejected": []})
    } else {
        serde_json::json!({"error": "test", "reason": "the test said so"})
    }
    .to_string();
    log.lock().expect("log").push(Received {
        batch,
        status: code,
    });
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {code} Test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}
