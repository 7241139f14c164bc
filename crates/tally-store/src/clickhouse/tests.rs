use super::*;
use crate::conformance::{self, clickhouse::LocalServer};

#[test]
fn passes_the_conformance_suite() {
    let server = LocalServer::start();
    let store = ClickHouseStore::open(&server.store_url("conformance")).expect("open");
    conformance::run_all(&store);
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
