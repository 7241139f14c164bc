//! What the conformance suite (`tests/it/duckdb.rs`) cannot see from
//! outside: reopening, the journal after a crash, compaction, the writer's
//! memory of ids.

use tally_testkit::events::{sample, varied};

use super::*;
use crate::journal::Journal;

#[test]
fn survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = time::macros::datetime!(2026-11-20 10:00:00 UTC);
    let event = sample(1, "reopen", at);
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store.add_app("reopen").expect("add");
        assert_eq!(
            store
                .writer()
                .expect("w")
                .insert(&mut vec![event.clone()].into())
                .expect("insert"),
            [true]
        );
    }
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.apps().expect("apps").len(), 1);
    let again = store
        .writer()
        .expect("w")
        .insert(&mut vec![event].into())
        .expect("insert");
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
        .map(|n| sample(n, "tiny", at + time::Duration::minutes(n.into())))
        .collect();
    let mut writer = store.writer().expect("writer");
    for e in &events {
        assert_eq!(
            writer.insert(&mut vec![e.clone()].into()).expect("insert"),
            [true]
        );
    }
    assert_eq!(
        writer.insert(&mut events.to_vec().into()).expect("insert"),
        [false; 5]
    );
    assert_eq!(stored(&store), 5);
}

/// How many events an export of the whole store gives.
fn stored(store: &DuckDbStore) -> usize {
    let mut count = 0;
    store
        .export(&ExportFilter::default(), &mut |_| {
            count += 1;
            ControlFlow::Continue(())
        })
        .expect("export");
    count
}

/// The stored rollups (appended per batch, compacted or not, with raw edges
/// for ranges that cut days) give every report exactly the answer of
/// rolling up the raw events, for many filters.
#[test]
fn stored_rollups_answer_as_the_raw_events_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A small memory of ids, so that retries are also looked up in the
    // database.
    let store = DuckDbStore::open_with(dir.path(), 100).expect("open");
    let events = varied(3_000);
    let mut writer = store.writer().expect("writer");
    for chunk in events.chunks(97) {
        writer
            .insert(&mut store.stage(chunk.to_vec()))
            .expect("insert");
    }
    // Retries add nothing.
    writer
        .insert(&mut events[..500].to_vec().into())
        .expect("retry");
    let conn = store.connection().expect("conn");
    let check = |phase: &str| {
        tally_testkit::reports::answers_match_events(
            &|query| store.report(query).expect("report"),
            &events,
            phase,
        );
    };
    check("appended");
    store.handoff.wait_loaded();
    let days = conn
        .prepare("SELECT DISTINCT day FROM rollups")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("days");
    rollups::compact(&mut store.connection().expect("conn"), &days).expect("compact");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM rollups", [], |r| r.get(0))
        .expect("count");
    let keys: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT DISTINCT app, kind, day, version, os, env, d1, d2, d3, d4 FROM rollups)",
            [],
            |r| r.get(0),
        )
        .expect("keys");
    assert_eq!(rows, keys, "compaction leaves one row per key");
    check("compacted");
}

/// A store written before rollups existed gets them when it opens.
#[test]
fn rollups_are_rebuilt_when_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = varied(400);
    let query = tally_report::Query::from_params(
        tally_report::ReportName::Commands,
        &[("app".to_owned(), "varied".to_owned())].into(),
    )
    .expect("query");
    let before = {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store
            .writer()
            .expect("w")
            .insert(&mut events.to_vec().into())
            .expect("insert");
        let answer = store.report(&query).expect("report");
        store
            .connection()
            .expect("conn")
            .execute("DELETE FROM rollups", [])
            .expect("delete");
        answer
    };
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(store.report(&query).expect("report"), before);
}

/// A crash after a batch was journaled (and acknowledged) but before the
/// loader stored it: the next open stores it, once, however often the store
/// is opened again.
#[test]
fn events_journaled_before_a_crash_are_stored_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = time::macros::datetime!(2026-11-20 10:00:00 UTC);
    let events: Vec<_> = (0..4).map(|n| sample(n, "crash", at)).collect();
    let loaded = {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store
            .writer()
            .expect("w")
            .insert(&mut events[..1].to_vec().into())
            .expect("insert");
        loader::loaded_position(&store.connection().expect("conn")).expect("position")
    };
    // What a writer killed before its loader ran leaves behind:
    let journal_dir = dir.path().join(JOURNAL_DIR);
    let mut journal = Journal::create(&journal_dir, loaded.segment).expect("journal");
    for events in [&events[1..3], &events[3..]] {
        let encoded = Encoded::new(events);
        journal.append([encoded.bytes()]).expect("append");
    }
    drop(journal);
    for _ in 0..2 {
        let store = DuckDbStore::open(dir.path()).expect("reopen");
        assert_eq!(stored(&store), 4);
        let again = store
            .writer()
            .expect("w")
            .insert(&mut events.to_vec().into())
            .expect("insert");
        assert_eq!(
            again, [false; 4],
            "journaled events are known after the crash"
        );
    }
    // Reopened after a clean close, the store still held 4: the segments
    // kept for reuse are not loaded again. They are few, whatever was
    // written.
    let left = std::fs::read_dir(&journal_dir).expect("dir").count();
    assert!(left <= 3, "{left} journal segments left");
}

/// One writer at a time: a second would write a journal of its own that
/// the first's loader knows nothing of.
#[test]
fn a_second_writer_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DuckDbStore::open(dir.path()).expect("open");
    let first = store.writer().expect("first");
    assert!(store.writer().is_err());
    drop(first);
    store.writer().expect("after the first closed");
}

/// New installs get the next numbers, once each, in order of first sight;
/// known ones keep theirs.
#[test]
fn installs_are_numbered_in_order_of_first_sight() {
    let at = time::macros::datetime!(2026-11-20 10:00:00 UTC);
    let with_install = |install: u128| {
        let mut stored = sample(1, "numbers", at);
        stored.event.install_id = uuid::Uuid::from_u128(install);
        stored
    };
    let mut installs = tally_rollup::Installs::default();
    installs.insert(0xa, 0);
    let events: Vec<_> = [0xb, 0xa, 0xb, 0xc].map(with_install).into();
    let (numbers, fresh) = rollups::number_installs(&mut installs, &events);
    assert_eq!(numbers, [1, 0, 1, 2]);
    let ids = |n: u128| uuid::Uuid::from_u128(n);
    assert_eq!(fresh, [(ids(0xb), 1), (ids(0xc), 2)]);
    assert_eq!(installs.len(), 3);
}

/// Regression: a client time of year 0, stored by a Tally that did not
/// check it, stopped every export at its row; migrating the store clamps it.
#[test]
fn client_times_stored_unchecked_are_clamped_so_exports_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = time::macros::datetime!(2026-11-20 10:00:00 UTC);
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store.add_app("old").expect("add");
        let events = vec![sample(1, "old", at), sample(2, "old", at)];
        store
            .writer()
            .expect("w")
            .insert(&mut events.into())
            .expect("insert");
    }
    {
        // What an older Tally left behind (years 0 and 9999), at the
        // schema before the clamp.
        let conn = Connection::open(dir.path().join("tally.duckdb")).expect("db");
        conn.execute_batch(
            "UPDATE events SET client_timestamp = make_timestamp(-62167219200000000) WHERE id = (SELECT min(id) FROM events);
             UPDATE events SET client_timestamp = make_timestamp(253402300799000000) WHERE id = (SELECT max(id) FROM events);
             DELETE FROM tally_schema WHERE version = 5;",
        )
        .expect("old rows");
    }
    let store = DuckDbStore::open(dir.path()).expect("migrate");
    let mut times = Vec::new();
    store
        .export(&ExportFilter::default(), &mut |e| {
            times.push(e.client_timestamp.year());
            std::ops::ControlFlow::Continue(())
        })
        .expect("every row exports");
    times.sort_unstable();
    assert_eq!(times, [1970, 2099]);
}
