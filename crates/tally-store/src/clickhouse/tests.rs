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

/// The same events in give the same export and the same report answers
/// out of ClickHouse as out of the embedded store.
#[cfg(feature = "duckdb")]
#[test]
fn answers_as_the_embedded_store_does() {
    let server = LocalServer::start();
    let clickhouse = ClickHouseStore::open(&server.store_url("same")).expect("open");
    let dir = tempfile::tempdir().expect("tempdir");
    let duckdb = crate::DuckDbStore::open(dir.path()).expect("open");
    let events = conformance::varied(2_000);
    for store in [&clickhouse as &dyn Store, &duckdb] {
        let mut writer = store.writer().expect("writer");
        for chunk in events.chunks(300) {
            writer.insert(&mut chunk.to_vec().into()).expect("insert");
        }
        assert!(
            writer
                .insert(&mut events[..100].to_vec().into())
                .expect("retry")
                .iter()
                .all(|new| !new),
            "a retry is a duplicate"
        );
    }
    let export = |store: &dyn Store| {
        let mut out = Vec::new();
        store
            .export(&ExportFilter::default(), &mut |e| {
                out.push(e);
                ControlFlow::Continue(())
            })
            .expect("export");
        out
    };
    let exported = export(&clickhouse);
    assert_eq!(exported.len(), events.len());
    assert_eq!(exported, export(&duckdb));
    for query in conformance::varied_queries() {
        assert_eq!(
            clickhouse.report(&query).expect("clickhouse"),
            duckdb.report(&query).expect("duckdb"),
            "{query:?}"
        );
    }
}

/// A group commit as large as the server makes (tens of thousands of
/// events) goes in, and its retry is recognised, in one lookup each.
#[test]
fn a_large_group_commit_is_stored_and_recognised() {
    let server = LocalServer::start();
    let store = ClickHouseStore::open(&server.store_url("large")).expect("open");
    let at = time::macros::datetime!(2026-11-20 10:00 UTC);
    let events: Vec<StoredEvent> = (0..25_000)
        .map(|n| conformance::sample(n, "large", at))
        .collect();
    let mut writer = store.writer().expect("writer");
    assert!(
        writer
            .insert(&mut events.to_vec().into())
            .expect("insert")
            .iter()
            .all(|new| *new)
    );
    assert!(
        writer
            .insert(&mut events.to_vec().into())
            .expect("retry")
            .iter()
            .all(|new| !new)
    );
}
