//! Accepting connections from the open internet: a cap on how many are open
//! (beyond it, a fast 503 and close), a deadline for a request's headers
//! that also ends idle keep-alive connections, and a drain deadline at
//! shutdown, so neither a slowloris nor a client that never finishes can
//! exhaust the file descriptors or hold a stop forever.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::stall::StallTimeout;

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
    /// Most connections one client address (an IPv6 client's /64) may have
    /// open at once, so that one host cannot take them all; one more is
    /// refused as above. Not applied to loopback, nor behind a proxy
    /// (`RateLimits::client_header` set), where every connection comes
    /// from the proxy.
    pub max_connections_per_client: usize,
    /// How long a client may take to send a request's headers, counted from
    /// when the connection opens or its previous response was written: it is
    /// also the idle timeout of keep-alive connections.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body, in all.
    pub body_timeout: Duration,
    /// After [`body_grace`](Self::body_grace), how fast a body must keep
    /// arriving on average, in bytes a second (0: any speed); slower is a
    /// 408, so a trickled body holds its connection for seconds, not for
    /// the whole body timeout.
    pub min_body_bytes_per_second: u32,
    /// How long a body may take before the minimum rate applies.
    pub body_grace: Duration,
    /// How long a client may take nothing of a response it is sent before
    /// its connection is closed (one that stops reading would otherwise
    /// hold it with no timer running).
    pub write_timeout: Duration,
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
            // An office or a CI farm behind one NAT opens a connection per
            // CLI run that reports, each for a moment.
            max_connections_per_client: 128,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            // A 1 MiB body on a link of 1 KiB/s; CLIs send kilobytes.
            min_body_bytes_per_second: 1024,
            body_grace: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
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

/// Connections open per client, for [`ConnectionLimits::max_connections_per_client`].
struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// One connection counted against its client; uncounted on drop.
struct ClientSlot(Arc<PerClient>, IpAddr);

impl PerClient {
    /// Counts a connection from `peer` (not on loopback), or `None` when
    /// its client has as many open as it may.
    fn open(self: &Arc<Self>, peer: IpAddr) -> Option<ClientSlot> {
        let client = crate::rate::network(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(client).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot(Arc::clone(self), client))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.0.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// open requests finish for at most the drain timeout. `per_client` says
/// whether connections are capped per client address.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ConnectionLimits,
    per_client: bool,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let room = Arc::new(Semaphore::new(limits.max_connections));
    let idle = Arc::new(Idle::default());
    let clients = per_client.then(|| {
        Arc::new(PerClient {
            open: Mutex::default(),
            max: limits.max_connections_per_client,
        })
    });
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
        // Loopback is not capped per client (a proxy on this machine).
        let slot = match &clients {
            Some(clients) if !addr.ip().is_loopback() => {
                let Some(slot) = clients.open(addr.ip()) else {
                    metrics.count_connection_refused();
                    refuse(&stream);
                    continue;
                };
                Some(slot)
            }
            _ => None,
        };
        // At the cap, a new connection takes the place of the one idle
        // the longest (a slowloris, or a keep-alive between requests),
        // rather than being refused while idle ones hold every place.
        let permit = match Arc::clone(&room).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if idle.evict() => {
                metrics.count_connection_evicted();
                None
            }
            Err(_) => {
                metrics.count_connection_refused();
                refuse(&stream);
                continue;
            }
        };
        // Known as idle from its accept on, before its task runs: the next
        // accept may need to evict it. One still waiting for its place is
        // not (evicting it would free none), until it has it.
        let (id, tracked) = match permit {
            Some(_) => idle.add(),
            None => (UNLISTED, Arc::default()),
        };
        let place = Place {
            room: Arc::clone(&room),
            permit,
            _slot: slot,
            idle: Arc::clone(&idle),
            id,
            tracked,
        };
        let builder = Arc::clone(&builder);
        let stop = stop_rx.clone();
        let metrics = metrics.clone();
        let service = router.clone();
        let write_timeout = limits.write_timeout;
        connections.spawn(async move {
            let Some(place) = place.taken().await else {
                metrics.count_connection_refused();
                refuse(&stream);
                return;
            };
            let _open = metrics.connection_opened();
            let _ = stream.set_nodelay(true);
            let stream = StallTimeout::new(stream, write_timeout);
            connection(stream, addr, service, &builder, &place, stop).await;
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

/// Serves one connection until it ends, the server stops (then it may
/// finish its request) or it is evicted (then it closes, unless a request
/// began meanwhile, which it finishes first).
async fn connection(
    stream: StallTimeout,
    addr: SocketAddr,
    router: Router,
    builder: &hyper::server::conn::http1::Builder,
    place: &Place,
    mut stop: watch::Receiver<()>,
) {
    let tracked = &place.tracked;
    let busy = Arc::clone(tracked);
    let service = router
        .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(PeerAddr(addr));
            request
        })
        .map_future(move |answering| {
            let guard = Busy::enter(&busy);
            async move {
                let answer = answering.await;
                drop(guard);
                answer
            }
        });
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => log_end(result),
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            log_end(conn.await);
        }
        () = tracked.evict.notified() => {
            if tracked.busy.load(Ordering::SeqCst) > 0 {
                conn.as_mut().graceful_shutdown();
                log_end(conn.await);
            }
        }
    }
}

/// A connection's place among those open: its permit (none yet when it
/// evicted an idle one, whose permit is on its way back), and its count
/// against its client.
struct Place {
    room: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    /// Held for its drop, which uncounts the connection.
    _slot: Option<ClientSlot>,
    idle: Arc<Idle>,
    /// Its entry among the open connections, removed on drop.
    id: u64,
    tracked: Arc<Tracked>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.idle.remove(self.id);
    }
}

/// How long a connection that evicted another waits for its permit.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// The id of a place not among the open connections yet.
const UNLISTED: u64 = u64::MAX;

impl Place {
    /// The place with its permit, or `None` if the evicted connection did
    /// not give it back in time.
    async fn taken(mut self) -> Option<Self> {
        if self.permit.is_none() {
            let waiting = Arc::clone(&self.room).acquire_owned();
            self.permit = Some(
                tokio::time::timeout(EVICTION_WAIT, waiting)
                    .await
                    .ok()?
                    .ok()?,
            );
            (self.id, self.tracked) = self.idle.add();
        }
        Some(self)
    }
}

/// The open connections, oldest first, and whether each is in a request.
#[derive(Default)]
struct Idle {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Tracked>>>,
}

#[derive(Default)]
struct Tracked {
    /// Requests being answered (0 or 1 on HTTP/1.1).
    busy: AtomicUsize,
    evict: Notify,
}

impl Idle {
    fn add(&self) -> (u64, Arc<Tracked>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let tracked = Arc::new(Tracked::default());
        self.lock().insert(id, Arc::clone(&tracked));
        (id, tracked)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Tells the connection idle the longest to close; false if none is.
    fn evict(&self) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter()
            .find(|(_, t)| t.busy.load(Ordering::SeqCst) == 0)
            .map(|(&id, _)| id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some(tracked) => {
                tracked.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Tracked>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request being answered on a connection, while it lives.
struct Busy(Arc<Tracked>);

impl Busy {
    fn enter(tracked: &Arc<Tracked>) -> Self {
        tracked.busy.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(tracked))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tells a connection over the cap to come back later, without waiting for
/// it: the answer fits in a fresh socket's buffer. What the client sent
/// already is read first, as closing a socket with unread data resets the
/// connection, and a reset may reach the client before the answer does.
fn refuse(stream: &TcpStream) {
    let mut sent = [0; 8192];
    let _ = stream.try_read(&mut sent);
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
    use super::*;

    /// A connection in a request is never evicted; of the idle ones, the
    /// oldest is; with none idle, a new connection is refused.
    #[test]
    fn the_oldest_idle_connection_is_evicted_never_a_busy_one() {
        let idle = Idle::default();
        let (_, first) = idle.add();
        let (_, second) = idle.add();
        let (_, third) = idle.add();
        let _answering = Busy::enter(&first);
        assert!(idle.evict(), "an idle one is there");
        let notified = |t: &Arc<Tracked>| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            std::pin::pin!(t.evict.notified()).poll(&mut cx).is_ready()
        };
        assert!(!notified(&first), "busy: kept");
        assert!(notified(&second), "the oldest idle one goes");
        assert!(!notified(&third));
        let _answering = Busy::enter(&third);
        assert!(!idle.evict(), "all busy: none goes, the new one is refused");
    }

    #[test]
    fn one_client_may_open_only_its_share_of_connections() {
        let clients = Arc::new(PerClient {
            open: Mutex::default(),
            max: 2,
        });
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let first = clients.open(host(1)).expect("room");
        let _second = clients.open(host(2)).expect("room");
        assert!(clients.open(host(3)).is_none(), "a third from the same /64");
        assert!(
            clients.open([192, 0, 2, 1].into()).is_some(),
            "another client"
        );
        drop(first);
        assert!(clients.open(host(3)).is_some(), "room once one closed");
    }

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
