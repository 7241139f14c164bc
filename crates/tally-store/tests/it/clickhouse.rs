//! The ClickHouse store, each test on a private `clickhouse-server`.

use tally_store::{ClickHouseStore, Store};
use tally_testkit::clickhouse::LocalServer;
use tally_testkit::conformance::{TestStore, insert};
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
