//! The ClickHouse store, each test on a private `clickhouse-server`.

use tally_store::{ClickHouseStore, Store};
use tally_testkit::clickhouse::LocalServer;
use tally_testkit::conformance::{TestStore, insert, installs};
use tally_testkit::events::sample;

struct Fixture {
    store: ClickHouseStore,
    _server: LocalServer,
}

impl TestStore for Fixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }
}

fn open() -> Fixture {
    let server = LocalServer::start();
    Fixture {
        store: ClickHouseStore::open(&server.store_url("conformance")).expect("open"),
        _server: server,
    }
}

tally_testkit::store_tests!(open);

/// The same checks against ClickHouse as users run it today (26.x).
mod current {
    use super::*;

    fn open() -> Fixture {
        let server = LocalServer::start_current()
            .expect("the current ClickHouse engine needs PyPI's chdb-core");
        Fixture {
            store: ClickHouseStore::open(&server.store_url("conformance")).expect("open"),
            _server: server,
        }
    }

    tally_testkit::store_tests!(open);
}

/// Two installs whose ids fold to the same 32-bit hash, each run once a
/// day ago and today, as counted over whole days (ClickHouse counts) and
/// over a range that cuts today (sets merged with today's raw events).
fn installs_of_colliding_hashes(store: &ClickHouseStore) -> (i64, i64) {
    let (a, b) = (1u128, 1 | (1 << 32) | (1 << 64));
    let now = time::OffsetDateTime::now_utc();
    let yesterday = now - time::Duration::days(1);
    let mut events = Vec::new();
    for (n, (install, at)) in [(a, yesterday), (b, yesterday), (a, now), (b, now)]
        .into_iter()
        .enumerate()
    {
        let mut e = sample(n as u32, "twins", at - time::Duration::minutes(5));
        e.event.name = None;
        e.event.install_id = uuid::Uuid::from_u128(install);
        events.push(e);
    }
    assert!(insert(store, events).iter().all(|&new| new));
    let (since, until) = (
        (now - time::Duration::days(2)).date().to_string(),
        now.date().to_string(),
    );
    let whole_days = installs(
        store,
        &[("app", "twins"), ("since", &since), ("until", &until)],
    );
    let to_now = installs(store, &[("app", "twins"), ("since", &since)]);
    (whole_days, to_now)
}

/// Databases made on current servers count installs exactly.
#[test]
fn installs_are_exact_on_current_servers() {
    let server = LocalServer::start_current().expect("PyPI's chdb-core");
    let store = ClickHouseStore::open(&server.store_url("exact")).expect("open");
    assert_eq!(installs_of_colliding_hashes(&store), (2, 2));
}

/// On 18.16 two installs of one hash count once, as docs/scaling.md says.
#[test]
fn installs_of_one_hash_count_once_on_18_16() {
    let server = LocalServer::start();
    let store = ClickHouseStore::open(&server.store_url("hashed")).expect("open");
    assert_eq!(installs_of_colliding_hashes(&store), (1, 1));
}

#[test]
fn opening_twice_migrates_once() {
    let server = LocalServer::start();
    let url = server.store_url("twice");
    let first = ClickHouseStore::open(&url).expect("open");
    first.add_app("mycli").expect("add");
    let second = ClickHouseStore::open(&url).expect("reopen");
    assert_eq!(second.apps().expect("apps"), first.apps().expect("apps"));
}

/// A group commit as large as the server makes (tens of thousands of
/// events) goes in, and its retry is recognised, in one lookup each.
#[test]
fn a_large_group_commit_is_stored_and_recognised() {
    let fixture = open();
    let at = time::macros::datetime!(2026-11-20 10:00 UTC);
    let events: Vec<_> = (0..25_000).map(|n| sample(n, "large", at)).collect();
    assert!(
        insert(fixture.store(), events.clone())
            .iter()
            .all(|new| *new)
    );
    assert!(insert(fixture.store(), events).iter().all(|new| !new));
}

/// What ClickHouse answers to `sql` on `server`, as text.
fn ask(server: &LocalServer, sql: &str) -> String {
    let url = server.store_url("");
    let base = url
        .trim_end_matches('/')
        .replace("clickhouse://", "http://");
    let mut response = ureq::post(format!("{base}/"))
        .send(sql)
        .expect("ClickHouse answers");
    response.body_mut().read_to_string().expect("text")
}

/// Regression: partitions went by the client's day, so a clock that read
/// 1970 had acknowledged events dropped by the next retention run, and
/// clocks spread over more than 100 months made the INSERT fail. They go by
/// the day the server received the event, the client's time kept as data.
#[test]
fn client_clocks_choose_neither_partition_nor_retention() {
    let server = LocalServer::start();
    let store = ClickHouseStore::open(&server.store_url("clocks")).expect("open");
    let at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let events: Vec<_> = (0..150u32)
        .map(|n| {
            let mut e = sample(n, "clocks", at);
            // 1970, then a month apart from 2000 on: 150 client months.
            let months = if n == 0 { 0 } else { 360 + i64::from(n) };
            e.client_timestamp =
                time::macros::datetime!(1970-01-01 0:00 UTC) + time::Duration::days(months * 30);
            e
        })
        .collect();
    assert!(insert(&store, events.clone()).iter().all(|&new| new));
    let partitions = ask(
        &server,
        "SELECT DISTINCT partition FROM system.parts
         WHERE database = 'clocks' AND table = 'events' AND active",
    );
    let received = at + time::Duration::milliseconds(250);
    let month = format!("{}{:02}", received.year(), u8::from(received.month()));
    assert_eq!(
        partitions.trim(),
        month,
        "one partition, the server's month"
    );
    store.retain_days(30).expect("retain");
    let kept = tally_testkit::conformance::export(&store, &Default::default());
    assert_eq!(kept.len(), events.len(), "no acknowledged event is dropped");
    assert!(
        insert(&store, events).iter().all(|&new| !new),
        "and each is still recognised"
    );
}
