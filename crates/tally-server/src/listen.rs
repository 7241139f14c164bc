//! Accepting connections from the open internet: a cap on how many are open
//! (beyond it, a fast 503 and close), a deadline for a request's headers
//! that also ends idle keep-alive connections, and a drain deadline at
//! shutdown, so neither a slowloris nor a client that never finishes can
//! exhaust the file descriptors or hold a stop forever.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// How connections are accepted and how long each may take.
///
/// ```
/// let limits = tally_server::ConnectionLimits::default();
/// assert_eq!(limits.max_connections, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; one more is answered 503 and closed
    /// without being read.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from
    /// when the connection opens or its previous response was written: it is
    /// also the idle timeout of keep-alive connections.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body, in all.
    pub body_timeout: Duration,
    /// At shutdown, how long requests in progress may take to finish before
    /// their connections are closed (what they sent is committed either way
    /// once it was queued; the client retries the rest).
    pub drain_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(15),
            max_header_bytes: 64 * 1024,
        }
    }
}

/// The address a request came from, for the per-source rate limit; absent
/// when the router is called without a socket (tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<PeerAddr>().map(|p| p.0.ip())))
    }
}

#[derive(Clone, Copy)]
struct PeerAddr(SocketAddr);

/// What a connection over the cap is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 71\r\n\r\n\
{\"error\":\"busy\",\"reason\":\"too many connections; retry after 1 second\"}\n";

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// open requests finish for at most the drain timeout.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ConnectionLimits,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let room = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or the like: wait for some to
                    // close rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&room).try_acquire_owned() else {
            metrics.count_connection_refused();
            refuse(&stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(PeerAddr(addr));
                    request
                });
        let builder = Arc::clone(&builder);
        let mut stop = stop_rx.clone();
        let metrics = metrics.clone();
        connections.spawn(async move {
            let _open = metrics.connection_opened();
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_end(result),
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    log_end(conn.await);
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "Waiting for open requests to finish.");
    }
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            timeout = ?limits.drain_timeout,
            "Closing the connections still open after the drain timeout."
        );
        connections.shutdown().await;
    }
}

/// Tells a connection over the cap to come back later, without reading
/// from it or waiting for it: the answer fits in a fresh socket's buffer,
/// and whatever does not is dropped with the connection.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(REFUSED);
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Timeouts and clients that hang up are routine on the internet.
        tracing::debug!(error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::REFUSED;

    #[test]
    fn the_refusal_is_a_complete_response() {
        let text = std::str::from_utf8(REFUSED).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("length")
            .parse()
            .expect("number");
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(json["error"], "busy");
    }
}
