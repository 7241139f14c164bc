//! The mapping, message by message, and the bodies that must be refused.

use tally_protocol::{BatchError, Limits, Outcome};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Decoded, Target, posthog, segment};

const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);
const TARGET: Target = Target {
    app: "mycli",
    salt: "s3cret",
    invocation_event: "invocation",
};

fn posthog(body: &str) -> Decoded {
    posthog::read(body.as_bytes(), &Limits::default())
        .expect("read")
        .decode(&TARGET, NOW, &Limits::default())
}

fn segment(body: &str) -> Decoded {
    segment::read(body.as_bytes(), None, &Limits::default())
        .expect("read")
        .decode(&TARGET, NOW, &Limits::default())
}

#[test]
fn posthog_bodies_come_in_three_shapes_with_the_token_in_four_places() {
    let event = r#"{"event": "x", "distinct_id": "u"}"#;
    for (body, key) in [
        (format!(r#"{{"api_key": "k1", "batch": [{event}]}}"#), "k1"),
        (format!(r#"{{"token": "k2", "batch": [{event}]}}"#), "k2"),
        (
            r#"[{"event": "x", "distinct_id": "u", "$token": "k3"}]"#.into(),
            "k3",
        ),
        (
            r#"{"event": "x", "distinct_id": "u", "properties": {"token": "k4"}}"#.into(),
            "k4",
        ),
    ] {
        let request = posthog::read(body.as_bytes(), &Limits::default()).expect("read");
        assert_eq!(request.key(), Some(key), "{body}");
        let decoded = request.decode(&TARGET, NOW, &Limits::default());
        assert_eq!(decoded.batch.events.len(), 1, "{body}: {decoded:?}");
        // The token is a secret: never a stored property.
        assert!(decoded.batch.events[0].properties.is_empty(), "{decoded:?}");
    }
}

#[test]
fn a_posthog_invocation_fills_the_invocation_fields() {
    let decoded = posthog(
        r#"{"batch": [{"event": "invocation", "distinct_id": 42, "uuid": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01",
        "timestamp": "2026-11-25T11:59:00Z", "properties": {"command": "deploy create", "exit_code": 2,
        "duration_ms": 12.6, "flags": ["--force", "--token=abc", 7], "$os": "Windows", "$os_version": "11",
        "arch": "amd64", "ci": true, "app_version": "1.4.2", "error_kind": "io", "error_message": "denied",
        "deps": {"git": "2.43"}, "$lib": "posthog-python", "$geoip_disable": true, "nested": {"a": 1},
        "team": "core"}}]}"#,
    );
    let e = &decoded.batch.events[0];
    assert_eq!(e.id.to_string(), "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01");
    assert_eq!(e.name, None);
    assert_eq!(
        (e.command.as_str(), e.exit_code, e.duration_ms),
        ("deploy create", 2, 13)
    );
    assert_eq!(e.flags, ["--force", "--token"]);
    assert_eq!((e.os.as_str(), e.arch.as_str()), ("windows", "x86_64"));
    assert_eq!(e.os_version.as_deref(), Some("11"));
    assert_eq!(e.ci.as_deref(), Some("unknown"));
    assert_eq!(e.app_version, "1.4.2");
    let error = e.error.as_ref().expect("error");
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("io", "denied")
    );
    assert_eq!(e.deps["git"], "2.43");
    let keys: Vec<&str> = e.properties.keys().map(String::as_str).collect();
    assert_eq!(keys, ["lib", "team"], "no $ properties, no nested ones");
    assert_eq!(e.install_id, crate::install_id("s3cret", "42"));
    assert_eq!(e.timestamp, datetime!(2026-11-25 11:59 UTC));
}

#[test]
fn person_events_are_ignored_and_events_without_a_user_are_refused() {
    let decoded = posthog(
        r#"[{"event": "$identify", "distinct_id": "u", "properties": {"$set": {"email": "a@b.c"}}},
            {"event": "x"}, {"event": "y", "distinct_id": "u"}]"#,
    );
    assert_eq!(decoded.ignored, 1);
    assert_eq!(decoded.batch.events.len(), 1);
    assert_eq!(decoded.batch.rejected[0].index, 1);
    assert_eq!(decoded.batch.rejected[0].field, "distinct_id");
}

#[test]
fn a_retried_message_keeps_its_id_whatever_its_sender_ids_look_like() {
    let body = r#"{"batch": [{"type": "track", "event": "x", "anonymousId": "a", "messageId": "ajs-next-1"},
        {"type": "track", "event": "x", "anonymousId": "a"}], "sentAt": "2026-11-25T12:00:00Z"}"#;
    let (first, again) = (segment(body), segment(body));
    let ids = |d: &Decoded| d.batch.events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    assert_ne!(ids(&first)[0], ids(&first)[1]);
}

#[test]
fn a_skewed_client_clock_is_corrected_by_its_sent_at() {
    // The client's clock reads 1970: its events are put at the server's
    // time, minus how long before sending they happened.
    let decoded = segment(
        r#"{"batch": [{"type": "track", "event": "x", "anonymousId": "a",
            "originalTimestamp": "1970-01-01T00:00:00Z"}], "sentAt": "1970-01-01T00:00:05Z"}"#,
    );
    let e = &decoded.batch.events[0];
    assert_eq!(e.timestamp, NOW - time::Duration::seconds(5));
    assert_eq!(
        decoded.batch.client_timestamps[0],
        datetime!(1970-01-01 0:00 UTC)
    );
}

#[test]
fn segment_types_map_as_documented() {
    let decoded = segment(
        r#"{"batch": [
            {"type": "track", "event": "invocation", "userId": "u", "properties": {"command": "build"},
             "context": {"os": {"name": "Mac OS X", "version": "14.4"}, "app": {"version": "2.0.1"}}},
            {"type": "page", "anonymousId": "a", "name": "Docs", "properties": {"url": "https://x/?u=me"}},
            {"type": "identify", "userId": "u", "traits": {"email": "a@b.c"}},
            {"type": "group", "userId": "u", "groupId": "g"},
            {"type": "alias", "userId": "u", "previousId": "p"},
            {"type": "launch", "userId": "u"},
            {"type": "track", "userId": "u"}],
          "context": {"library": {"name": "analytics-node"}}}"#,
    );
    assert_eq!(decoded.ignored, 3);
    let [invocation, page] = &decoded.batch.events[..] else {
        panic!("{decoded:?}")
    };
    assert_eq!(
        (invocation.command.as_str(), invocation.os.as_str()),
        ("build", "macos")
    );
    assert_eq!(invocation.app_version, "2.0.1");
    assert_eq!(invocation.properties["lib"], "analytics-node".into());
    assert_eq!(page.name.as_deref(), Some("page"));
    assert_eq!(
        page.properties.len(),
        2,
        "the page's name and the library only: {page:?}"
    );
    let fields: Vec<(usize, &str)> = decoded
        .batch
        .rejected
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    assert_eq!(fields, [(5, "type"), (6, "event")]);
}

#[test]
fn oversize_arrays_are_refused_while_parsing() {
    let zeros = format!(r#"{{"batch": [{}]}}"#, vec!["0"; 1001].join(","));
    for read in [
        posthog::read(zeros.as_bytes(), &Limits::default()).map(|_| ()),
        segment::read(zeros.as_bytes(), None, &Limits::default()).map(|_| ()),
    ] {
        assert!(
            matches!(read, Err(BatchError::TooManyEvents { limit: 1000 })),
            "{read:?}"
        );
    }
}

#[test]
fn an_event_over_the_size_limit_is_refused_alone() {
    let big = "x".repeat(40 * 1024);
    let decoded = posthog(&format!(
        r#"[{{"event": "x", "distinct_id": "u", "properties": {{"big": "{big}"}}}},
            {{"event": "y", "distinct_id": "u"}}]"#
    ));
    assert_eq!(decoded.batch.events.len(), 1);
    assert!(
        decoded.batch.rejected[0].reason.contains("limit"),
        "{decoded:?}"
    );
}

#[test]
fn bodies_of_no_known_shape_say_what_is_wrong() {
    let limits = Limits::default();
    assert!(posthog::read(b"\"text\"", &limits).is_err());
    let e = segment::read(br#"{"events": []}"#, None, &limits).expect_err("no batch");
    assert!(e.to_string().contains("batch"), "{e}");
    let e = posthog::read(br#"{"batch": [{"event": 1}]}"#, &limits)
        .expect("the batch reads")
        .decode(&TARGET, NOW, &limits);
    assert_eq!(e.batch.rejected[0].field, "event", "{e:?}");
}

/// Regression: an event without a time of its own was put at the server's
/// time and then shifted by the client's skew, days into the future.
#[test]
fn an_event_without_a_time_happened_when_it_arrived() {
    let decoded = posthog(
        r#"{"batch": [{"event": "x", "distinct_id": "u"}], "sent_at": "2026-11-17T12:00:00Z"}"#,
    );
    assert_eq!(decoded.batch.events[0].timestamp, NOW, "{decoded:?}");
}

/// Regression: a time counted back from the request's arrival (posthog-js's
/// `offset`) is on the server's clock already, and was shifted by the
/// client's skew again: a day-fast clock put it a day into the future, and
/// the event was refused.
#[test]
fn an_offset_is_counted_back_from_arrival_whatever_the_clients_clock() {
    let decoded = posthog(
        r#"{"batch": [{"event": "x", "distinct_id": "u", "offset": 5000}], "sent_at": "2026-11-26T12:00:00Z"}"#,
    );
    assert_eq!(
        decoded.batch.events[0].timestamp,
        NOW - time::Duration::seconds(5),
        "{decoded:?}"
    );
}

/// Regression: an event without a timestamp took its batch's `sent_at` as
/// its dedupe time, which differs on every retry, so a retry arriving after
/// the first attempt had left dedupe's memory was stored again. PostHog's
/// uuids are UUIDv7s: their time is the same on every retry.
#[test]
fn a_uuidv7_without_a_timestamp_dedupes_by_the_time_in_it() {
    // 2026-11-25T11:59:00Z in milliseconds, as a UUIDv7's first 48 bits.
    let ms: u64 = 1_795_607_940_000;
    let uuid = uuid::Uuid::from_u128(((ms as u128) << 80) | (0x7 << 76) | (0b10 << 62) | 42);
    let attempt = |sent_at: &str| {
        posthog(&format!(
            r#"{{"batch": [{{"event": "x", "distinct_id": "u", "uuid": "{uuid}"}}], "sent_at": "{sent_at}"}}"#
        ))
        .batch
    };
    let (first, retry) = (
        attempt("2026-11-25T11:59:30Z"),
        attempt("2026-11-25T11:59:58Z"),
    );
    assert_eq!(
        first.client_timestamps,
        [datetime!(2026-11-25 11:59 UTC)],
        "{first:?}"
    );
    assert_eq!(first.client_timestamps, retry.client_timestamps);
    assert_eq!(first.events[0].id, uuid);
}

/// Regression: a `sent_at` before 1970 or after 2100 was taken, and every
/// time in the batch shifted by it.
#[test]
fn an_unbelievable_sent_at_refuses_the_body() {
    let limits = Limits::default();
    let e = posthog::read(
        br#"{"batch": [], "sent_at": "9999-12-31T23:59:59-23:59"}"#,
        &limits,
    )
    .expect_err("refused");
    assert!(
        matches!(&e, BatchError::InvalidJson { path, .. } if path == "sent_at"),
        "{e}"
    );
    let e = segment::read(
        br#"{"batch": [], "sentAt": "0001-01-01T00:00:00Z"}"#,
        None,
        &limits,
    )
    .expect_err("refused");
    assert!(
        matches!(&e, BatchError::InvalidJson { path, .. } if path == "sentAt"),
        "{e}"
    );
}

/// Regression: a flags list's other entries (a flag's value, a file name)
/// were stored as flags; and any odd value (an empty or NUL key, a NUL in a
/// value, a long dependency name, a distribution and version together over
/// 64 bytes) refused the whole event, which a client does not send again.
#[test]
fn odd_values_are_fitted_or_left_out_and_the_event_kept() {
    let long = "d".repeat(70);
    let decoded = posthog(&format!(
        r#"[{{"event": "invocation", "distinct_id": "u", "timestamp": "2026-11-25T11:59:00Z",
        "properties": {{"flags": ["--to", "ada@example.com", "--token=abc", "-v", "- x", "prod"],
        "": "empty key", "k\u0000": "nul key", "note": "a\u0000b", "blank": "",
        "deps": {{"{long}": "1.0", "git": "{long}{long}{long}{long}"}},
        "$os": "Debian GNU/Linux", "$os_version": "{long}", "exit_code": "boom",
        "command": "c\u0000md", "arch": ""}}}}]"#
    ));
    let [e] = &decoded.batch.events[..] else {
        panic!("{decoded:?}")
    };
    assert_eq!(e.flags, ["--to", "--token", "-v"]);
    let keys: Vec<&str> = e.properties.keys().map(String::as_str).collect();
    assert_eq!(keys, ["blank", "note"]);
    assert_eq!(e.properties["note"], "ab".into());
    assert_eq!(e.deps.keys().collect::<Vec<_>>(), ["git"]);
    assert_eq!(e.deps["git"].len(), 256);
    assert_eq!((e.os.as_str(), e.arch.as_str()), ("linux", "unknown"));
    let os_version = e.os_version.as_deref().expect("os_version");
    assert!(os_version.starts_with("Debian GNU/Linux dd") && os_version.len() == 64);
    // An exit code that is none is no success.
    assert_eq!((e.exit_code, e.outcome), (1, Some(Outcome::Failure)));
    assert_eq!(e.command, "cmd");
    let decoded = posthog(
        r#"[{"event": "invocation", "distinct_id": "u", "properties": {"exit_code": " 3 "}}]"#,
    );
    assert_eq!(
        (
            decoded.batch.events[0].exit_code,
            decoded.batch.events[0].outcome
        ),
        (3, None)
    );
}

/// A Segment context is read for its platform only; anything else in it,
/// of any type, neither costs the message nor is kept.
#[test]
fn a_segment_context_of_any_shape_is_read_for_its_platform_only() {
    let decoded = segment(
        r#"{"batch": [{"type": "track", "event": "x", "anonymousId": "a",
            "context": {"os": {"name": 7, "version": ["x"]}, "ip": "203.0.113.9", "app": "weird",
                        "library": {"name": "analytics-go", "version": {"deep": [1, 2]}}}}],
           "context": [1, 2, 3]}"#,
    );
    let [e] = &decoded.batch.events[..] else {
        panic!("{decoded:?}")
    };
    assert_eq!(e.os, "unknown");
    assert_eq!(e.properties["lib"], "analytics-go".into());
}
