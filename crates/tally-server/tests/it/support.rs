//! A server's router over a fresh data dir, and requests to it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tally_server::{Config, Server};
use tower::ServiceExt;

/// An answer: status, `Retry-After` and `Connection` if any, and the body
/// as JSON (the text as a JSON string when it is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub connection: Option<String>,
    pub body: Value,
}

/// A server that is open but not listening, and its data dir.
pub struct Harness {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// A server with the default settings.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A server with the default settings as `configure` changes them.
    pub fn with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path().to_owned());
        configure(&mut config);
        Self {
            server: Server::open(config).expect("open"),
            dir,
        }
    }

    pub fn admin_token(&self) -> String {
        self.server.admin_token().to_owned()
    }

    /// Sends `request` through the router.
    pub async fn call(&self, request: Request<Body>) -> Answer {
        let response = self
            .server
            .router()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        };
        let (retry_after, connection) = (header("retry-after"), header("connection"));
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            retry_after,
            connection,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// GET `path`, with `token` as the bearer if given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.call(request.body(Body::empty()).expect("request"))
            .await
    }

    /// Registers `name` and returns its ingest key.
    pub async fn add_app(&self, name: &str) -> String {
        let answer = self.call(add_app_request(&self.admin_token(), name)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["ingest_key"].as_str().expect("key").to_owned()
    }

    /// POSTs `body` to `/v1/batch` with `key` and `headers`.
    pub async fn ingest(&self, key: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let bearer = format!("Bearer {key}");
        let mut all = vec![("Authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        self.post("/v1/batch", &all, body).await
    }

    /// POSTs `body` to `path` with `headers`.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut request = Request::post(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.call(request.body(Body::from(body)).expect("request"))
            .await
    }

    /// The stored events of `app`, through the export API.
    pub async fn export(&self, app: &str) -> Vec<Value> {
        let answer = self
            .get(
                &format!("/api/v1/export?app={app}"),
                Some(&self.admin_token()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        match &answer.body {
            Value::String(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).expect("ndjson"))
                .collect(),
            // One line of NDJSON is a JSON value of its own.
            Value::Object(_) => vec![answer.body.clone()],
            other => panic!("not NDJSON: {other}"),
        }
    }
}

/// `POST /api/v1/apps` of `name` with `token`.
pub fn add_app_request(token: &str, name: &str) -> Request<Body> {
    Request::post("/api/v1/apps")
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(Body::from(json!({ "name": name }).to_string()))
        .expect("request")
}
