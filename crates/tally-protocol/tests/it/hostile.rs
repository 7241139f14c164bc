//! Bodies and times an attacker would send: refused with a reason that names
//! what is wrong, never a panic, never an unbounded allocation.

use serde_json::json;
use tally_protocol::{BatchError, Limits, decode_batch};
use time::macros::datetime;

use super::{NOW, full_event};

fn decode(body: &[u8]) -> Result<tally_protocol::DecodedBatch, BatchError> {
    decode_batch(body, "mycli", NOW, &Limits::default())
}

fn with_times(sent_at: &str, timestamp: &str) -> Vec<u8> {
    let mut event = full_event(1);
    event["timestamp"] = json!(timestamp);
    serde_json::to_vec(&json!({"sent_at": sent_at, "events": [event]})).expect("json")
}

/// What an 8 KB gzip inflates to: the parser stops at the first element past
/// the limit instead of listing two million.
#[test]
fn a_huge_events_array_is_refused_while_parsing() {
    let mut body = br#"{"sent_at":"2026-11-25T12:00:00Z","events":["#.to_vec();
    body.extend(std::iter::repeat_n(&b"0,"[..], 2_000_000).flatten());
    body.extend_from_slice(b"0]}");
    let err = decode(&body).expect_err("refused");
    assert_eq!(err, BatchError::TooManyEvents { limit: 1000 });
    assert!(err.to_string().contains("more than the limit"), "{err}");
}

#[test]
fn an_unknown_top_level_field_is_named() {
    let body = br#"{"sent_at":"2026-11-25T12:00:00Z","events":[],"padding":"xxxxxxxx"}"#;
    match decode(body) {
        Err(BatchError::InvalidJson { path, reason }) => {
            assert_eq!(path, "padding");
            assert!(reason.contains("unknown field `padding`"), "{reason}");
        }
        other => panic!("expected invalid_json, got {other:?}"),
    }
}

#[test]
fn a_repeated_events_array_is_refused() {
    let body = br#"{"sent_at":"2026-11-25T12:00:00Z","events":[],"events":[]}"#;
    assert!(
        matches!(decode(body), Err(BatchError::InvalidJson { path, .. }) if path == "events"),
        "{:?}",
        decode(body)
    );
}

/// The issue's case: accepted, this row stopped every later export.
#[test]
fn a_client_time_in_year_zero_is_rejected() {
    let body = with_times("0000-01-01T00:00:02+00:01", "0000-01-01T00:00:00+00:01");
    match decode(&body) {
        Err(BatchError::InvalidJson { path, reason }) => {
            assert_eq!(path, "sent_at");
            assert!(reason.contains("1970"), "{reason}");
        }
        other => panic!("expected sent_at refused, got {other:?}"),
    }
    let decoded = decode(&with_times(
        "2026-11-25T12:00:00Z",
        "0000-01-01T00:00:00+00:01",
    ))
    .expect("batch decodes");
    assert!(decoded.events.is_empty());
    assert_eq!(decoded.rejected[0].field, "timestamp");
    assert!(
        decoded.rejected[0].reason.contains("earliest"),
        "{:?}",
        decoded.rejected[0]
    );
}

/// The issue's cases: the first panicked in `to_offset`, the second
/// overflowed adding the skew.
#[test]
fn times_at_the_ends_of_the_calendar_are_rejected_not_a_panic() {
    let decoded = decode(&with_times(
        "2026-11-25T12:00:00Z",
        "9999-12-31T23:59:59-23:59",
    ))
    .expect("batch decodes");
    assert_eq!(decoded.rejected[0].field, "timestamp");
    let err = decode(&with_times("0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"))
        .expect_err("sent_at refused");
    assert!(matches!(err, BatchError::InvalidJson { path, .. } if path == "sent_at"));
}

/// A device whose clock reads 1970 is common (a reset RTC); its events are
/// kept, moved onto the server's clock, with the client's time as data.
#[test]
fn a_clock_that_reads_1970_is_accepted_and_corrected() {
    let decoded = decode(&with_times(
        "1970-01-01T12:10:00+02:00",
        "1970-01-01T12:09:58.250+02:00",
    ))
    .expect("valid");
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(
        decoded.events[0].timestamp,
        datetime!(2026-11-25 11:59:58.250 UTC)
    );
    // Kept on UTC: the instant the client sent, in a form every store holds.
    assert_eq!(
        decoded.client_timestamps[0],
        datetime!(1970-01-01 10:09:58.250 UTC)
    );
}

/// Reasons quote what was sent; an answer quotes at most a few hundred
/// bytes of it, whatever the event held.
#[test]
fn a_rejection_never_echoes_the_body_back() {
    let long = "\u{300}".repeat(16_000);
    let mut wrong_app = full_event(1);
    wrong_app["app"] = json!(long);
    let mut wrong_type = full_event(2);
    wrong_type["exit_code"] = json!(long);
    let mut long_key = full_event(3);
    long_key["properties"] = json!({ long.clone(): [1, 2] });
    let body =
        json!({"sent_at": "2026-11-25T12:00:00Z", "events": [wrong_app, wrong_type, long_key]});
    let decoded = decode(&serde_json::to_vec(&body).expect("json")).expect("decoded");
    assert_eq!(decoded.rejected.len(), 3, "{:?}", decoded.rejected);
    for rejection in &decoded.rejected {
        let said = serde_json::to_string(rejection).expect("json");
        assert!(said.len() < 1000, "{} bytes: {}", said.len(), &said[..300]);
    }
}
