//! Tests of the wire format: decoding, rejection, skew, hostile bodies and
//! times, and a fuzz of the decoder.

mod decode;
mod fuzz;
mod hostile;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-25 12:00:00 UTC);

/// A valid event as JSON, with every optional field set.
fn full_event(n: u32) -> Value {
    json!({
        "id": format!("0195f3a4-6c1e-7cc2-9d61-3f1d6f0b{n:04x}"),
        "timestamp": "2026-11-25T11:59:58.250Z",
        "app": "mycli",
        "app_version": "1.4.2",
        "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
        "command": "deploy create",
        "flags": ["--force", "-v"],
        "exit_code": 1,
        "outcome": "failure",
        "duration_ms": 1200,
        "os": "linux",
        "arch": "x86_64",
        "os_version": "Debian 12",
        "ci": "github-actions",
        "agent": "claude-code",
        "tty": false,
        "error": {"kind": "http.timeout", "message": "timed out after 30s", "location": "src/deploy.rs:42:9"},
        "deps": {"git": "2.43.0"},
        "properties": {"region_count": 3, "dry": true, "ratio": 0.5, "mode": "fast"}
    })
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"sent_at": "2026-11-25T12:00:00Z", "events": events}))
        .expect("serializable")
}
