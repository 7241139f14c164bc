//! What Tally's tests share, so that each thing a test needs is made one
//! way: the events ([`events`]), the hand-counted report answers
//! ([`reports`], and [`report_tests!`] to run them), the store conformance
//! suite (`conformance`, feature `store`, and `store_tests!`), a private
//! ClickHouse server ([`clickhouse`]), a full disk ([`disk`]), other tools' real client libraries ([`clients`]),
//! a proxy that loses answers ([`proxy`]), Tally servers in the test process
//! (`server`, feature `server`), a destination that records what it is
//! forwarded (`receiver`, feature `receiver`), and [`eventually`] in place of hand-written
//! poll loops.
//!
//! A dev-dependency only: nothing here is for production.
//!
//! ```
//! use std::time::Duration;
//! let mut tries = 0;
//! let got = tally_testkit::eventually(Duration::from_secs(5), "the third try", || {
//!     tries += 1;
//!     (tries == 3).then_some(tries)
//! });
//! assert_eq!(got, 3);
//! ```

pub mod clickhouse;
pub mod clients;
#[cfg(feature = "store")]
pub mod conformance;
#[cfg(unix)]
pub mod disk;
pub mod events;
pub mod proxy;
#[cfg(feature = "receiver")]
pub mod receiver;
pub mod reports;
#[cfg(feature = "server")]
pub mod server;

use std::time::{Duration, Instant};

/// How often [`eventually`] checks again.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Calls `check` until it gives a value, and returns it; panics naming
/// `what` if `limit` passes first. For background work a test cannot be
/// told about (another process, a server's threads): where the code under
/// test can say when it is done, a test should ask it instead.
#[track_caller]
pub fn eventually<T>(limit: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    match within(limit, check) {
        Some(value) => value,
        None => panic!("{what}: not within {limit:?}"),
    }
}

/// Calls `check` until it gives a value, and returns it, or `None` once
/// `limit` has passed: [`eventually`] for a test that says more when it
/// fails.
pub fn within<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}
