//! Rate limits on ingest, so that one app's key (shipped in every copy of
//! its CLI, so anyone's) or one client cannot fill the commit queue that
//! every app shares: a token bucket of events per app, configurable per
//! app, and one of requests per client address.
//!
//! No address is kept: a client is known by a hash of its address salted
//! with a key made at start and never written anywhere, and only for as
//! long as its bucket is not full again (idle clients are forgotten every
//! minute).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};

use crate::error::ApiError;

/// A token bucket: a sustained rate and the burst it allows above it.
///
/// ```
/// let rate = tally_server::Rate::per_second(100, 1000);
/// assert_eq!(rate.burst, 1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// What is let through per second, sustained.
    pub per_second: u32,
    /// What may come at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// `per_second` sustained with bursts of `burst`.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn quota(self, at_least: u32) -> Quota {
        let nonzero = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(nonzero(self.per_second)).allow_burst(nonzero(self.burst.max(at_least)))
    }
}

/// The rate limits of ingest.
///
/// ```
/// let limits = tally_server::RateLimits::default();
/// assert_eq!(limits.events_per_app.per_second, 50_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Events one app's key may send, unless [`apps`](Self::apps) names it.
    pub events_per_app: Rate,
    /// Events of the apps that have a rate of their own, by app name.
    pub apps: HashMap<String, Rate>,
    /// Ingest requests one client address may make. Clients on loopback
    /// are not limited (a reverse proxy on the same machine, or the
    /// operator), unless [`client_header`](Self::client_header) is set.
    pub requests_per_client: Rate,
    /// Behind a reverse proxy: the header in which it passes the client's
    /// address (e.g. `X-Forwarded-For`), whose last entry, the one the proxy
    /// added, is then the client. Only set it when every request comes
    /// through such a proxy, or clients can pick their own address.
    pub client_header: Option<String>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            // Half of what one small machine ingests: one app cannot take it all.
            events_per_app: Rate::per_second(50_000, 200_000),
            apps: HashMap::new(),
            // A CLI sends a batch or two per run; a whole office behind one
            // address runs far fewer than 20 commands a second.
            requests_per_client: Rate::per_second(20, 200),
            client_header: None,
        }
    }
}

/// Erasures one app's installs may ask for: each costs the store a pass
/// over the app's events of the install's days (mutations on ClickHouse),
/// and anyone with the app's key can make installs to erase, so they are
/// few, whatever the other limits say: one every 10 seconds, 10 at once.
/// Far more than installs that really leave ask for; one refused is told
/// when to come back, and an admin can always erase.
const ERASURE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
const ERASURE_BURST: u32 = 10;

/// The buckets of a running server.
pub(crate) struct Limiter {
    apps: DefaultKeyedRateLimiter<Arc<str>>,
    own: HashMap<String, DefaultDirectRateLimiter>,
    clients: DefaultKeyedRateLimiter<u64>,
    erasures: DefaultKeyedRateLimiter<Arc<str>>,
    salt: std::hash::RandomState,
    client_header: Option<axum::http::HeaderName>,
}

impl Limiter {
    /// Buckets for `limits`; no app bucket is smaller than one batch of
    /// `max_batch` events, or such a batch could never pass.
    pub(crate) fn new(limits: &RateLimits, max_batch: usize) -> Self {
        let at_least = u32::try_from(max_batch).unwrap_or(u32::MAX);
        Self {
            apps: RateLimiter::keyed(limits.events_per_app.quota(at_least)),
            own: limits
                .apps
                .iter()
                .map(|(app, rate)| (app.clone(), RateLimiter::direct(rate.quota(at_least))))
                .collect(),
            clients: RateLimiter::keyed(limits.requests_per_client.quota(1)),
            erasures: RateLimiter::keyed(
                Quota::with_period(ERASURE_EVERY)
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(ERASURE_BURST).unwrap_or(NonZeroU32::MIN)),
            ),
            salt: std::hash::RandomState::new(),
            // `Config::check` refused a name that is not one.
            client_header: limits
                .client_header
                .as_deref()
                .and_then(|name| axum::http::HeaderName::try_from(name).ok()),
        }
    }

    /// The address of the client that sent a request from `peer` with
    /// `headers`: the proxy's header when one is configured, else the peer
    /// unless it is on loopback.
    pub(crate) fn client_of(
        &self,
        peer: Option<IpAddr>,
        headers: &axum::http::HeaderMap,
    ) -> Option<IpAddr> {
        match &self.client_header {
            Some(name) => headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|last| last.trim().parse().ok())
                // Without the proxy's word, the peer is all there is: a
                // request that skips the header is not left unlimited.
                .or_else(|| peer.filter(|ip| !ip.is_loopback())),
            None => peer.filter(|ip| !ip.is_loopback()),
        }
    }

    /// Lets one request of the client at `client` (see
    /// [`Limiter::client_of`]) through, or says when to come back.
    pub(crate) fn client(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = client else { return Ok(()) };
        let client = self.salt.hash_one(network(ip));
        self.clients
            .check_key(&client)
            .map_err(|wait| limited("this client", &wait))
    }

    /// Lets `events` events of `app` through, or says when to come back.
    pub(crate) fn app(&self, app: &Arc<str>, events: usize) -> Result<(), ApiError> {
        let Some(n) = u32::try_from(events).ok().and_then(NonZeroU32::new) else {
            return Ok(());
        };
        let checked = match self.own.get(&**app) {
            Some(own) => own.check_n(n),
            None => self.apps.check_key_n(app, n),
        };
        match checked {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(limited("this ingest key", &wait)),
            // Not reachable (buckets hold a whole batch); refused all the same.
            Err(_) => Err(ApiError::RateLimited {
                what: "this ingest key",
                retry_after_s: 1,
            }),
        }
    }

    /// Lets one erasure of an install of `app` through, or says when to
    /// come back.
    pub(crate) fn erasure(&self, app: &Arc<str>) -> Result<(), ApiError> {
        self.erasures
            .check_key(app)
            .map_err(|wait| limited("erasing installs of this app", &wait))
    }

    /// Forgets the clients and apps whose buckets are full again.
    pub(crate) fn forget_idle(&self) {
        self.clients.retain_recent();
        self.clients.shrink_to_fit();
        self.apps.retain_recent();
        self.erasures.retain_recent();
    }

    /// Client addresses remembered now.
    pub(crate) fn clients_remembered(&self) -> usize {
        self.clients.len()
    }
}

/// What one client is known by: its IPv4 address, or the /64 network of
/// its IPv6 address. One IPv6 host is given a /64 of its own, 2^64
/// addresses to take a fresh one per request from; an address mapped from
/// IPv4 is the IPv4 address it maps.
pub(crate) fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
    }
}

fn limited(what: &'static str, wait: &NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait: Duration = wait.wait_time_from(DefaultClock::default().now());
    ApiError::RateLimited {
        what,
        retry_after_s: u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(app: Rate, client: Rate) -> Limiter {
        let limits = RateLimits {
            events_per_app: app,
            apps: HashMap::from([("big".to_owned(), Rate::per_second(1, 10_000))]),
            requests_per_client: client,
            client_header: None,
        };
        Limiter::new(&limits, 100)
    }

    #[test]
    fn one_app_over_its_rate_does_not_stop_another() {
        let limiter = limiter(Rate::per_second(1, 150), Rate::per_second(1, 1));
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        limiter.app(&a, 100).expect("within the burst");
        let refused = limiter.app(&a, 100).expect_err("over the burst");
        assert!(matches!(
            refused,
            ApiError::RateLimited { what: "this ingest key", retry_after_s } if retry_after_s >= 1
        ));
        limiter
            .app(&b, 100)
            .expect("another app has its own bucket");
    }

    #[test]
    fn an_app_with_its_own_rate_gets_it() {
        let limiter = limiter(Rate::per_second(1, 150), Rate::per_second(1, 1));
        let big: Arc<str> = "big".into();
        for _ in 0..100 {
            limiter.app(&big, 100).expect("10,000 at once for this app");
        }
        assert!(limiter.app(&big, 100).is_err());
    }

    #[test]
    fn a_batch_larger_than_the_burst_can_still_pass() {
        let limiter = limiter(Rate::per_second(1, 10), Rate::per_second(1, 1));
        limiter
            .app(&"a".into(), 100)
            .expect("the bucket holds a batch");
    }

    #[test]
    fn clients_are_limited_each_by_address() {
        let limiter = limiter(Rate::per_second(1, 150), Rate::per_second(1, 2));
        let (one, two) = (Some([10, 0, 0, 1].into()), Some([10, 0, 0, 2].into()));
        limiter.client(one).expect("first");
        limiter.client(one).expect("second");
        assert!(limiter.client(one).is_err(), "third within a second");
        limiter.client(two).expect("another address");
        limiter.client(None).expect("no address: not limited here");
    }

    #[test]
    fn the_addresses_of_one_ipv6_network_are_one_client() {
        let limiter = limiter(Rate::per_second(1, 150), Rate::per_second(1, 2));
        let host = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
        limiter.client(host(1)).expect("first");
        limiter.client(host(2)).expect("second, another address");
        assert!(limiter.client(host(3)).is_err(), "third from the same /64");
        let next_network = Some(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]));
        limiter.client(next_network).expect("another /64");
        let mapped = Some(IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0x0a00, 1]));
        limiter.client(mapped).expect("10.0.0.1, mapped");
        limiter.client(mapped).expect("again");
        assert!(
            limiter.client(Some([10, 0, 0, 1].into())).is_err(),
            "10.0.0.1 itself is the same client"
        );
    }

    #[test]
    fn the_client_is_the_peer_or_what_the_proxy_says() {
        let mut limits = RateLimits::default();
        let direct = Limiter::new(&limits, 100);
        let peer: IpAddr = [203, 0, 113, 7].into();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 192.0.2.9".parse().expect("value"),
        );
        assert_eq!(
            direct.client_of(Some(peer), &headers),
            Some(peer),
            "no proxy is trusted"
        );
        let local: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(direct.client_of(Some(local), &headers), None);
        limits.client_header = Some("X-Forwarded-For".into());
        let proxied = Limiter::new(&limits, 100);
        assert_eq!(
            proxied.client_of(Some(local), &headers),
            Some([192, 0, 2, 9].into()),
            "the entry the proxy added"
        );
    }
}
