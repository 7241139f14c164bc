use serde_json::json;
use tally_protocol::{BatchError, Event, Limits, Outcome, PropertyValue, decode_batch};
use time::macros::datetime;

use super::{NOW, batch, full_event};

fn decode(body: &[u8]) -> Result<tally_protocol::DecodedBatch, BatchError> {
    decode_batch(body, "mycli", NOW, &Limits::default())
}

#[test]
fn every_field_decodes() {
    let decoded = decode(&batch(vec![full_event(1)])).expect("valid batch");
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    let e = &decoded.events[0];
    assert_eq!(e.command, "deploy create");
    assert_eq!(e.flags, ["--force", "-v"]);
    assert_eq!(e.outcome, Some(Outcome::Failure));
    assert_eq!(e.timestamp, datetime!(2026-11-25 11:59:58.250 UTC));
    assert_eq!(
        e.error.as_ref().map(|e| e.kind.as_str()),
        Some("http.timeout")
    );
    assert_eq!(e.properties["region_count"], PropertyValue::Int(3));
    assert_eq!(e.properties["ratio"], PropertyValue::Float(0.5));
    assert_eq!(e.deps["git"], "2.43.0");
}

#[test]
fn event_serializes_back_to_what_was_sent() {
    let sent = full_event(1);
    let event: Event = serde_json::from_value(sent.clone()).expect("valid event");
    let back: Event =
        serde_json::from_value(serde_json::to_value(&event).expect("ser")).expect("round trip");
    assert_eq!(back, event);
}

#[test]
fn one_bad_event_does_not_cost_the_good_ones() {
    let mut bad = full_event(2);
    bad["exit_code"] = json!("one");
    let mut missing = full_event(3);
    missing
        .as_object_mut()
        .expect("object")
        .remove("install_id");
    let decoded = decode(&batch(vec![full_event(1), bad, missing])).expect("batch decodes");
    assert_eq!(decoded.events.len(), 1);
    assert_eq!(decoded.rejected.len(), 2);
    assert_eq!(decoded.rejected[0].index, 1);
    assert_eq!(decoded.rejected[0].field, "exit_code");
    assert!(
        decoded.rejected[0].reason.contains("invalid type"),
        "{:?}",
        decoded.rejected[0]
    );
    assert_eq!(decoded.rejected[1].index, 2);
    assert_eq!(decoded.rejected[1].field, "install_id");
}

#[test]
fn rejections_name_the_field() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("app", json!("othercli"), "app"),
        ("command", json!("x".repeat(300)), "command"),
        ("flags", json!(["--a b"]), "flags.0"),
        ("os", json!(""), "os"),
        (
            "error",
            json!({"kind": "io", "message": "m".repeat(5000)}),
            "error.message",
        ),
        (
            "properties",
            json!({"nested": {"deep": 1}}),
            "properties.nested",
        ),
        ("id", json!("not-a-uuid"), "id"),
        ("timestamp", json!("yesterday"), "timestamp"),
        ("timestamp", json!("2027-06-01T00:00:00Z"), "timestamp"),
        ("timestamp", json!("2020-01-01T00:00:00Z"), "timestamp"),
        ("app_version", json!("1.0\u{0}"), "app_version"),
        ("duration_ms", json!(-5), "duration_ms"),
    ];
    for (key, value, field) in cases {
        let mut event = full_event(1);
        event[key] = value;
        let decoded = decode(&batch(vec![event])).expect("batch decodes");
        assert!(decoded.events.is_empty(), "{key} should be rejected");
        assert_eq!(
            decoded.rejected[0].field, field,
            "{:?}",
            decoded.rejected[0]
        );
    }
}

#[test]
fn broken_batches_fail_as_a_whole() {
    for body in [
        &b"{"[..],
        b"[]",
        b"{\"events\": []}",
        b"{\"sent_at\": \"2026-11-25T12:00:00Z\", \"events\": {}}",
        b"{\"sent_at\": \"2026-11-25T12:00:00Z\", \"events\": []} trailing",
        b"\xff\xfe{}",
    ] {
        assert!(
            matches!(decode(body), Err(BatchError::InvalidJson { .. })),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let too_many = batch((0..1001).map(full_event).collect());
    assert_eq!(
        decode(&too_many),
        Err(BatchError::TooManyEvents { limit: 1000 })
    );
}

#[test]
fn a_skewed_client_clock_is_corrected() {
    // The client's clock is one hour behind the server's.
    let mut event = full_event(1);
    event["timestamp"] = json!("2026-11-25T10:59:58Z");
    let body = serde_json::to_vec(&json!({"sent_at": "2026-11-25T11:00:00Z", "events": [event]}))
        .expect("json");
    let decoded = decode(&body).expect("valid");
    assert_eq!(
        decoded.events[0].timestamp,
        datetime!(2026-11-25 11:59:58 UTC)
    );
    assert_eq!(
        decoded.client_timestamps[0],
        datetime!(2026-11-25 10:59:58 UTC)
    );
}

#[test]
fn a_small_skew_is_left_alone() {
    let mut event = full_event(1);
    event["timestamp"] = json!("2026-11-25T11:59:58Z");
    let body = serde_json::to_vec(&json!({"sent_at": "2026-11-25T11:59:59Z", "events": [event]}))
        .expect("json");
    let decoded = decode(&body).expect("valid");
    assert_eq!(
        decoded.events[0].timestamp,
        datetime!(2026-11-25 11:59:58 UTC)
    );
}

#[test]
fn a_future_timestamp_from_a_fast_clock_is_corrected_not_rejected() {
    // The client's clock is a day ahead: its events look like they are from
    // tomorrow, but sent_at reveals the skew.
    let mut event = full_event(1);
    event["timestamp"] = json!("2026-11-26T11:59:58Z");
    let body = serde_json::to_vec(&json!({"sent_at": "2026-11-26T12:00:00Z", "events": [event]}))
        .expect("json");
    let decoded = decode(&body).expect("valid");
    assert_eq!(
        decoded.events[0].timestamp,
        datetime!(2026-11-25 11:59:58 UTC)
    );
}
