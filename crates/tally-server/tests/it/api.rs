//! The API's answers to requests a client makes on purpose.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tally_testkit::events::{batch_body, fresh};

use crate::support::{Harness, add_app_request};

fn batch(app: &str, n: usize) -> Vec<u8> {
    let events: Vec<_> = (0..n).map(|_| fresh(app)).collect();
    batch_body(&events)
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let harness = Harness::with(|config| config.queue_events = 2);
    let key = harness.add_app("busy").await;
    let answer = harness.ingest(&key, &[], batch("busy", 3)).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    assert_eq!(answer.body["error"], "busy");
    let answer = harness.ingest(&key, &[], batch("busy", 2)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "a batch that fits still goes in: {}",
        answer.body
    );
}

#[tokio::test]
async fn zstd_bodies_are_accepted() {
    let harness = Harness::new();
    let key = harness.add_app("zstd").await;
    let body = zstd::encode_all(&batch("zstd", 5)[..], 3).expect("zstd");
    let answer = harness
        .ingest(&key, &[("Content-Encoding", "zstd")], body)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 5);
}

#[tokio::test]
async fn adding_an_app_needs_the_admin_token_and_a_valid_unique_name() {
    let harness = Harness::new();
    let key = harness.add_app("first").await;
    let admin = harness.admin_token();
    let status = |answer: crate::support::Answer| answer.status;
    assert_eq!(
        status(harness.call(add_app_request(&key, "second")).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(harness.call(add_app_request(&admin, "first")).await),
        StatusCode::CONFLICT
    );
    let answer = harness.call(add_app_request(&admin, "no spaces")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["field"], "name");
}

/// Regression: bodies and query strings axum could not read were answered
/// in plain text, where docs/api.md promises `{"error": ...}` always.
#[tokio::test]
async fn unreadable_bodies_and_queries_answer_json_errors() {
    let harness = Harness::new();
    let admin = harness.admin_token();
    let post = |content_type: &str, body: &str| {
        Request::post("/api/v1/apps")
            .header("Authorization", format!("Bearer {admin}"))
            .header("Content-Type", content_type)
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let cases = [
        (
            post("application/json", "{\"name\": "),
            400,
            "invalid_json",
            "",
        ),
        (
            post("application/json", "{\"nom\": \"x\"}"),
            400,
            "invalid_json",
            "name",
        ),
        (
            post("text/plain", "{\"name\": \"x\"}"),
            415,
            "unsupported",
            "",
        ),
    ];
    for (request, status, code, field) in cases {
        let answer = harness.call(request).await;
        assert_eq!(answer.status.as_u16(), status, "{}", answer.body);
        assert_eq!(answer.body["error"], code, "{}", answer.body);
        if !field.is_empty() {
            assert_eq!(answer.body["field"], field, "{}", answer.body);
        }
    }
    let answer = harness.get("/api/v1/export?colour=red", Some(&admin)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.body["error"], "invalid_query");
    assert_eq!(answer.body["field"], "colour");
    let answer = harness.get("/api/v1/reports/%FF?app=x", Some(&admin)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.body["error"], "invalid_path");
}

/// An old or third-party SDK that scrubs less than Tally's: the server
/// scrubs its free text again on arrival and counts what it found, by app
/// and rule, in `/metrics`.
#[tokio::test]
async fn free_text_is_scrubbed_again_on_arrival_and_the_hits_counted() {
    let server = Harness::new();
    let key = server.add_app("leaky").await;
    let mut event = fresh("leaky");
    event.error = Some(tally_protocol::ErrorInfo {
        kind: "io".into(),
        message: "cannot reach bobs-mbp.local, call +1 415 555 0132 or mail bob@example.com".into(),
        location: Some("~bob/src/main.rs:3".into()),
    });
    let answer = server.ingest(&key, &[], batch_body(&[event])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let stored = server.export("leaky").await;
    assert_eq!(
        stored[0]["error"]["message"],
        "cannot reach <host>, call <phone> or mail <email>"
    );
    assert_eq!(stored[0]["error"]["location"], "~<user>/src/main.rs:3");
    let metrics = server.get("/metrics", None).await;
    let text = metrics.body.as_str().expect("text").to_owned();
    for rule in ["email", "phone", "host", "other-home"] {
        let line = format!("tally_scrubbed_total{{app=\"leaky\",rule=\"{rule}\"}} 1");
        assert!(text.contains(&line), "{line} not in {text}");
    }
}

/// An app whose settings hide small groups: its reports leave out the OS
/// only one install runs, whoever asks, and say that they did.
#[tokio::test]
async fn an_apps_small_groups_are_hidden_from_its_reports() {
    let server = Harness::with(|config| {
        config.min_group_installs.insert("shy".into(), 2);
    });
    let key = server.add_app("shy").await;
    let events: Vec<_> = [("linux", 1), ("linux", 2), ("macos", 3)]
        .into_iter()
        .map(|(os, n)| {
            let mut e = fresh("shy");
            e.os = os.into();
            e.install_id = uuid::Uuid::from_u128(n);
            e
        })
        .collect();
    let answer = server.ingest(&key, &[], batch_body(&events)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let token = server.admin_token();
    let report = server
        .get("/api/v1/reports/platforms?app=shy", Some(&token))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let os = report.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "os")
        .expect("os table");
    assert_eq!(os["rows"].as_array().expect("rows").len(), 1, "{os}");
    assert_eq!(os["rows"][0][0], "linux");
    assert_eq!(report.body["hidden"]["min_installs"], 2);
    assert!(report.body["hidden"]["groups"].as_u64() >= Some(1));
    assert!(!report.body.to_string().contains("macos"));
}
