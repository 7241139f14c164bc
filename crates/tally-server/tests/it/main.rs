//! Router-level tests: the server's app called without a socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tally_server::{Config, Server};
use tower::ServiceExt;

async fn call(server: &Server, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = server.router().oneshot(request).await.expect("infallible");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        retry_after,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn add_app(server: &Server, name: &str) -> String {
    let request = Request::post("/api/v1/apps")
        .header("Authorization", format!("Bearer {}", server.admin_token()))
        .header("Content-Type", "application/json")
        .body(Body::from(json!({ "name": name }).to_string()))
        .expect("request");
    let (status, _, app) = call(server, request).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    app["ingest_key"].as_str().expect("key").to_owned()
}

fn batch(app: &str, n: usize) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let events: Vec<Value> = (0..n)
        .map(|_| {
            json!({"id": uuid::Uuid::now_v7(), "timestamp": stamp, "app": app, "app_version": "1.0.0",
                "install_id": uuid::Uuid::new_v4(), "command": "build", "flags": [], "exit_code": 0,
                "duration_ms": 3, "os": "linux", "arch": "x86_64"})
        })
        .collect();
    serde_json::to_vec(&json!({"sent_at": stamp, "events": events})).expect("json")
}

fn ingest(key: &str, encoding: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post("/v1/batch").header("Authorization", format!("Bearer {key}"));
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    request.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        queue_events: 2,
        ..Config::new(dir.path().to_owned())
    };
    let server = Server::open(config).expect("open");
    let key = add_app(&server, "busy").await;
    let (status, retry_after, body) = call(&server, ingest(&key, None, batch("busy", 3))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error"], "busy");
    let (status, _, body) = call(&server, ingest(&key, None, batch("busy", 2))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a batch that fits still goes in: {body}"
    );
}

#[tokio::test]
async fn zstd_bodies_are_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::open(Config::new(dir.path().to_owned())).expect("open");
    let key = add_app(&server, "zstd").await;
    let body = zstd::encode_all(&batch("zstd", 5)[..], 3).expect("zstd");
    let (status, _, answer) = call(&server, ingest(&key, Some("zstd"), body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 5);
}

#[tokio::test]
async fn adding_an_app_needs_the_admin_token_and_a_valid_unique_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::open(Config::new(dir.path().to_owned())).expect("open");
    let key = add_app(&server, "first").await;
    let post = |token: &str, name: &str| {
        Request::post("/api/v1/apps")
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(Body::from(json!({ "name": name }).to_string()))
            .expect("request")
    };
    let admin = server.admin_token().to_owned();
    assert_eq!(
        call(&server, post(&key, "second")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&server, post(&admin, "first")).await.0,
        StatusCode::CONFLICT
    );
    let (status, _, body) = call(&server, post(&admin, "no spaces")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "name");
}
