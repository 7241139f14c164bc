//! PostHog's and Segment's paths refuse what `/v1/batch` refuses, with
//! the reasons those formats' clients read, and tell Segment's batches
//! from Tally's on the path they share.

use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Value, json};

use crate::support::{Answer, Harness};

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn posthog_event(name: &str) -> Value {
    json!({"event": name, "distinct_id": "user-1", "properties": {"command": "deploy"}})
}

async fn harness() -> (Harness, String) {
    let server = Harness::new();
    let key = server.add_app("mycli").await;
    (server, key)
}

fn body(value: Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn assert_posthog_error(answer: &Answer, status: StatusCode, kind: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["type"], kind, "{}", answer.body);
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn posthog_paths_take_every_body_shape_and_answer_status_1() {
    let (server, key) = harness().await;
    let shapes = [
        (
            "/batch/",
            json!({"api_key": key, "batch": [posthog_event("a")]}),
        ),
        (
            "/capture",
            json!([{"event": "b", "distinct_id": "user-1", "api_key": key}]),
        ),
        (
            "/e/",
            json!({"event": "c", "distinct_id": "user-1", "token": key}),
        ),
        (
            "/i/v0/e",
            json!({"event": "d", "$distinct_id": "user-1", "properties": {"token": key}}),
        ),
        (
            "/track/",
            json!({"token": key, "batch": [posthog_event("e")], "sentAt": "2026-11-25T12:00:00Z"}),
        ),
    ];
    for (path, shape) in shapes {
        let answer = server.post(path, &[JSON], body(shape)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert_eq!(answer.body, json!({"status": 1}), "{path}");
    }
    assert_eq!(server.export("mycli").await.len(), 5);
}

#[tokio::test]
async fn a_posthog_body_gzipped_without_saying_so_is_inflated() {
    use std::io::Write;
    let (server, key) = harness().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body(
        json!({"api_key": key, "batch": [posthog_event("x")]}),
    ))
    .expect("gzip");
    let sent = gz.finish().expect("gzip");
    let answer = server
        .post("/batch/?compression=gzip-js", &[JSON], sent)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(server.export("mycli").await.len(), 1);
}

#[tokio::test]
async fn posthog_refusals_carry_posthogs_reasons_and_store_nothing() {
    let (server, key) = harness().await;
    let unknown = server
        .post(
            "/batch/",
            &[JSON],
            body(json!({"api_key": "tk_nope", "batch": [posthog_event("x")]})),
        )
        .await;
    assert_posthog_error(&unknown, StatusCode::UNAUTHORIZED, "authentication_error");
    let missing = server
        .post(
            "/batch/",
            &[JSON],
            body(json!({"batch": [posthog_event("x")]})),
        )
        .await;
    assert_posthog_error(&missing, StatusCode::UNAUTHORIZED, "authentication_error");
    let broken = server
        .post("/e/", &[JSON], b"{\"api_key\": ".to_vec())
        .await;
    assert_posthog_error(&broken, StatusCode::BAD_REQUEST, "validation_error");
    let no_user = server
        .post(
            "/batch/",
            &[JSON],
            body(json!({"api_key": key, "batch": [{"event": "x"}]})),
        )
        .await;
    assert_posthog_error(&no_user, StatusCode::BAD_REQUEST, "validation_error");
    let many: Vec<Value> = (0..1001).map(|_| posthog_event("x")).collect();
    let too_many = server
        .post(
            "/batch/",
            &[JSON],
            body(json!({"api_key": key, "batch": many})),
        )
        .await;
    assert_posthog_error(&too_many, StatusCode::PAYLOAD_TOO_LARGE, "validation_error");
    assert!(server.export("mycli").await.is_empty());
}

#[tokio::test]
async fn segment_takes_the_write_key_from_basic_auth_bearer_or_body() {
    let (server, key) = harness().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    );
    let bearer = format!("Bearer {key}");
    let message =
        |id: &str| json!({"type": "track", "event": "x", "anonymousId": "a", "messageId": id});
    let sends = [
        (
            "/v1/batch",
            Some(basic.as_str()),
            json!({"batch": [message("m1")]}),
        ),
        // Tally's path with a bearer token, but Segment's body.
        (
            "/v1/batch",
            Some(bearer.as_str()),
            json!({"batch": [message("m2")]}),
        ),
        (
            "/v1/batch",
            None,
            json!({"writeKey": key, "batch": [message("m3")]}),
        ),
        (
            "/v1/track",
            Some(basic.as_str()),
            json!({"event": "x", "anonymousId": "a", "messageId": "m4"}),
        ),
        (
            "/v1/page",
            None,
            json!({"writeKey": key, "anonymousId": "a", "name": "Docs"}),
        ),
    ];
    for (path, auth, sent) in sends {
        let mut headers = vec![JSON];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let answer = server.post(path, &headers, body(sent)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert_eq!(answer.body, json!({"success": true}), "{path}");
    }
    assert_eq!(server.export("mycli").await.len(), 5);
    // Sent again: stored once.
    let again = server
        .post(
            "/v1/batch",
            &[JSON, ("Authorization", &basic)],
            body(json!({"batch": [message("m1")]})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(server.export("mycli").await.len(), 5);
}

#[tokio::test]
async fn segment_refuses_what_segment_refuses() {
    let (server, key) = harness().await;
    let padding = "x".repeat(200);
    let messages: Vec<Value> = (0..3000)
        .map(|i| json!({"type": "track", "event": "x", "anonymousId": "a", "properties": {"p": padding, "i": i}}))
        .collect();
    let big = server
        .post(
            "/v1/batch",
            &[JSON],
            body(json!({"writeKey": key, "batch": messages})),
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.body);
    let unknown = server
        .post(
            "/v1/batch",
            &[JSON, ("Authorization", "Basic dGtfbm9wZTo=")],
            body(json!({"batch": []})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "{}", unknown.body);
    let nowhere = server
        .post("/v1/launch", &[JSON], body(json!({"writeKey": key})))
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{}", nowhere.body);
    let untyped = server
        .post(
            "/v1/batch",
            &[JSON],
            body(json!({"writeKey": key, "batch": [{"event": "x", "anonymousId": "a"}]})),
        )
        .await;
    assert_eq!(untyped.status, StatusCode::BAD_REQUEST, "{}", untyped.body);
    assert_eq!(
        untyped.body["rejected"][0]["field"], "type",
        "{}",
        untyped.body
    );
    assert!(server.export("mycli").await.is_empty());
}

/// PostHog's v1 answers per event: ok for stored ones (and ones stored
/// before), drop with the reason for refused ones.
#[tokio::test]
async fn posthog_v1_answers_each_event_by_its_uuid() {
    let (server, key) = harness().await;
    let bearer = format!("Bearer {key}");
    let sent = json!({"created_at": "2026-11-25T12:00:00Z", "batch": [
        {"event": "x", "uuid": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "distinct_id": "u",
         "timestamp": "2030-01-01T00:00:00Z", "options": {}, "properties": {}},
        // A UUIDv4: a v7's time would be the event's.
        {"event": "y", "uuid": "0195f3a4-6c1e-4cc2-9d61-3f1d6f0b1a02", "distinct_id": "u",
         "options": {}, "properties": {}},
    ]});
    let headers = [JSON, ("Authorization", bearer.as_str())];
    for _ in 0..2 {
        let answer = server
            .post("/i/v1/analytics/events", &headers, body(sent.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let results = &answer.body["results"];
        assert_eq!(
            results["0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01"]["result"], "drop",
            "{results}"
        );
        assert_eq!(
            results["0195f3a4-6c1e-4cc2-9d61-3f1d6f0b1a02"]["result"], "ok",
            "{results}"
        );
    }
    assert_eq!(server.export("mycli").await.len(), 1);
    let unknown = server
        .post(
            "/i/v1/analytics/events",
            &[JSON, ("Authorization", "Bearer tk_nope")],
            body(sent),
        )
        .await;
    assert_posthog_error(&unknown, StatusCode::UNAUTHORIZED, "authentication_error");
}

/// Regression: a bearer request to `/v1/batch` was taken for Segment's
/// only when `batch` was the first field Tally's format does not know;
/// analytics-go sends `context` and `writeKey` first.
#[tokio::test]
async fn a_bearer_segment_batch_is_segments_whatever_its_first_field() {
    let (server, key) = harness().await;
    let bearer = format!("Bearer {key}");
    let sent = format!(
        r#"{{"writeKey": "{key}", "context": {{"library": {{"name": "analytics-go"}}}},
            "batch": [{{"type": "track", "event": "x", "anonymousId": "a", "messageId": "m9"}}]}}"#
    );
    let answer = server
        .post(
            "/v1/batch",
            &[JSON, ("Authorization", &bearer)],
            sent.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({"success": true}));
    let stored = server.export("mycli").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["properties"]["lib"], "analytics-go");
}

/// Whoever instrumented a CLI with PostHog chose what went into its
/// properties: the server scrubs the command and every string property
/// as it scrubs error messages, and a flags list keeps only flag names.
#[tokio::test]
async fn foreign_free_text_is_scrubbed_and_arguments_are_not_flags() {
    let (server, key) = harness().await;
    let sent = json!({"api_key": key, "batch": [{"event": "invocation", "distinct_id": "u",
        "properties": {"command": "invite ada@example.com", "note": "ask ada@example.com",
                       "flags": ["--to", "ada@example.com", "--password=hunter2"]}}]});
    let answer = server.post("/batch", &[JSON], body(sent)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let stored = server.export("mycli").await;
    let text = stored[0].to_string();
    for private in ["ada@example.com", "hunter2"] {
        assert!(!text.contains(private), "{private} stored: {text}");
    }
    assert_eq!(stored[0]["command"], "invite <email>");
    assert_eq!(stored[0]["properties"]["note"], "ask <email>");
    assert_eq!(stored[0]["flags"], json!(["--to", "--password"]));
}
