//! A destination for forwarding tests: a real HTTP server on a loopback
//! port of its own that records every request and answers as scripted
//! (a failure, a `Retry-After`, a refusal), else 200.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its path.
    pub path: String,
    /// Its headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// The header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// An answer the receiver gives.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Its status.
    pub status: u16,
    /// `Retry-After` in seconds, if any.
    pub retry_after: Option<u64>,
    /// How long to wait before answering.
    pub delay: Duration,
    /// A `Location` to send (with a 3xx).
    pub location: Option<String>,
}

impl Reply {
    /// A plain answer with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            location: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    /// The answer once the script is used up (200 unless set).
    otherwise: Option<Reply>,
}

/// The receiver; it stops when dropped.
///
/// ```no_run
/// use tally_testkit::receiver::{Receiver, Reply};
/// let receiver = Receiver::start();
/// receiver.script([Reply::status(503)]);
/// // ... point a destination at receiver.url ...
/// assert!(receiver.received().is_empty());
/// ```
pub struct Receiver {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver answering 200 to everything until scripted otherwise.
    pub fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = Arc::clone(&inner);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let app = axum::Router::new().fallback(
                    move |uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = Arc::clone(&state);
                        async move { answer(&state, uri, headers, body).await }
                    },
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr = addr_rx.recv().expect("receiver address");
        Self {
            url: format!("http://{addr}"),
            inner,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next answers, in order, before the usual one.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// The answer once the script is used up.
    pub fn otherwise(&self, reply: Reply) {
        self.lock().otherwise = Some(reply);
    }

    /// Every request so far, in the order they came.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }
}

async fn answer(state: &Mutex<Inner>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let mut inner = state.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = inner
            .script
            .pop_front()
            .or_else(|| inner.otherwise.clone())
            .unwrap_or(Reply::status(200));
        inner.received.push(Received {
            path: uri.path().to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body,
            status: reply.status,
        });
        reply
    };
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(reply.status).expect("a status");
    let mut response = (status, r#"{"status": 1}"#).into_response();
    if let Some(location) = &reply.location {
        response
            .headers_mut()
            .insert("location", location.parse().expect("a header value"));
    }
    if let Some(seconds) = reply.retry_after {
        response.headers_mut().insert(
            "retry-after",
            seconds.to_string().parse().expect("a header value"),
        );
    }
    response
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
