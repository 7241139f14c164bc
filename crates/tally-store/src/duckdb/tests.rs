use super::*;
use crate::conformance;

#[test]
fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DuckDbStore::open(dir.path()).expect("open");
    conformance::run_all(&store);
}

#[test]
fn survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = time::macros::datetime!(2026-11-20 10:00:00 UTC);
    let event = conformance::sample(1, "reopen", at);
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store.add_app("reopen").expect("add");
        assert_eq!(
            store
                .writer()
                .expect("w")
                .insert(std::slice::from_ref(&event))
                .expect("insert"),
            [true]
        );
    }
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.apps().expect("apps").len(), 1);
    let again = store.writer().expect("w").insert(&[event]).expect("insert");
    assert_eq!(again, [false], "a retry after restart is a duplicate");
}

/// Regression: with a memory of only two ids, an old event that fell out of
/// memory must still be found in the database, not stored twice.
#[test]
fn dedupe_falls_back_to_the_database_beyond_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DuckDbStore::open_with(dir.path(), 2).expect("open");
    let at = time::macros::datetime!(2026-11-20 10:00:00 UTC);
    let events: Vec<_> = (0..5)
        .map(|n| conformance::sample(n, "tiny", at + time::Duration::minutes(n.into())))
        .collect();
    let mut writer = store.writer().expect("writer");
    for e in &events {
        assert_eq!(
            writer.insert(std::slice::from_ref(e)).expect("insert"),
            [true]
        );
    }
    assert_eq!(writer.insert(&events).expect("insert"), [false; 5]);
    let mut count = 0;
    store
        .export(&ExportFilter::default(), &mut |_| {
            count += 1;
            ControlFlow::Continue(())
        })
        .expect("export");
    assert_eq!(count, 5);
}
