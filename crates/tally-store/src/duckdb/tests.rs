//! What the conformance suite (`tests/it/duckdb.rs`) cannot see from
//! outside: reopening, the journal after a crash, compaction, the writer's
//! memory of ids.

use tally_testkit::events::{sample, varied};

use super::*;
use crate::Caches;
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
    let store = DuckDbStore::open_with(dir.path(), caches(2)).expect("open");
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
    // Small caches, so that retries are also looked up in the database,
    // installs too, and rollups are written within transactions.
    let small = Caches {
        recent_ids: 100,
        installs: 64,
        rollups: 50,
    };
    let store = DuckDbStore::open_with(dir.path(), small).expect("open");
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
    // In slices smaller than a day, so that some merge in several.
    rollups::compact_in_slices(&mut store.connection().expect("conn"), &days, 37).expect("compact");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM rollups", [], |r| r.get(0))
        .expect("count");
    let keys: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT DISTINCT app, kind, day, version, os, env, source, d1, d2, d3, d4 FROM rollups)",
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

/// A store whose custom events were stored before Tally rolled them up
/// gets their rollups when it opens, and only theirs: the runs' rollups
/// are not counted twice.
#[test]
fn custom_events_stored_before_their_rollups_are_rolled_up_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = varied(400);
    let ask = |store: &DuckDbStore, report| {
        let query = tally_report::Query::from_params(
            report,
            &[("app".to_owned(), "varied".to_owned())].into(),
        )
        .expect("query");
        store.report(&query).expect("report")
    };
    let (events_before, commands_before) = {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store
            .writer()
            .expect("w")
            .insert(&mut events.to_vec().into())
            .expect("insert");
        let answers = (
            ask(&store, tally_report::ReportName::Events),
            ask(&store, tally_report::ReportName::Commands),
        );
        assert!(
            !answers.0.tables[0].rows.is_empty(),
            "varied has custom events"
        );
        store
            .connection()
            .expect("conn")
            .execute(
                "DELETE FROM rollups WHERE kind IN ('event', 'event_property')",
                [],
            )
            .expect("delete");
        answers
    };
    let store = DuckDbStore::open(dir.path()).expect("reopen");
    assert_eq!(ask(&store, tally_report::ReportName::Events), events_before);
    assert_eq!(
        ask(&store, tally_report::ReportName::Commands),
        commands_before
    );
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
/// known ones keep theirs, also when the cache of numbers has long
/// forgotten them and after the store is opened again.
#[test]
fn installs_keep_their_numbers_beyond_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = time::macros::datetime!(2026-11-20 10:00:00 UTC);
    let mut next_id = 0;
    let mut run = |installs: &[u128]| -> Vec<StoredEvent> {
        installs
            .iter()
            .map(|&install| {
                next_id += 1;
                let mut stored = sample(next_id, "numbers", at);
                stored.event.install_id = uuid::Uuid::from_u128(install);
                // Reports count invocations, not custom events.
                stored.event.name = None;
                stored
            })
            .collect()
    };
    let small = Caches {
        installs: 4,
        ..Caches::default()
    };
    let numbers = |store: &DuckDbStore| -> Vec<(u128, i32)> {
        let conn = store.connection().expect("conn");
        let mut stmt = conn
            .prepare("SELECT install_id, n FROM installs ORDER BY n")
            .expect("prepare");
        stmt.query_map([], |r| {
            Ok((r.get::<_, uuid::Uuid>(0)?.as_u128(), r.get(1)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    };
    {
        let store = DuckDbStore::open_with(dir.path(), small).expect("open");
        store.add_app("numbers").expect("add");
        let mut writer = store.writer().expect("writer");
        writer
            .insert(&mut run(&[0xb, 0xa, 0xb]).into())
            .expect("first");
        // Ten more installs push 0xa and 0xb out of a cache of four ...
        let many: Vec<u128> = (0x100..0x10a).collect();
        writer.insert(&mut run(&many).into()).expect("many");
        // ... and they come back with their numbers.
        writer
            .insert(&mut run(&[0xa, 0xc, 0xb]).into())
            .expect("again");
        drop(writer);
        assert!(
            store.installs_in_memory() <= 4,
            "{}",
            store.installs_in_memory()
        );
        let held = numbers(&store);
        assert_eq!(held.len(), 13, "{held:x?}");
        assert_eq!(&held[..2], [(0xb, 0), (0xa, 1)]);
        assert_eq!(held[12], (0xc, 12));
    }
    let store = DuckDbStore::open_with(dir.path(), small).expect("reopen");
    let mut writer = store.writer().expect("writer");
    writer
        .insert(&mut run(&[0xa, 0xd]).into())
        .expect("after reopen");
    drop(writer);
    let held = numbers(&store);
    assert_eq!(held.len(), 14, "{held:x?}");
    assert_eq!(held[13], (0xd, 13));
    // Every install counted once in the reports: 14 new that week.
    let params = [
        ("app", "numbers"),
        ("since", "2026-11-16"),
        ("until", "2026-11-23"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let query = tally_report::Query::from_params(tally_report::ReportName::Installs, &params)
        .expect("query");
    let report = store.report(&query).expect("report");
    let new = report.table("new").expect("new installs");
    assert_eq!(new.rows.len(), 1, "{new:?}");
    assert_eq!(new.rows[0][1], tally_report::Cell::Int(14), "{new:?}");
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
             DELETE FROM tally_schema WHERE version >= 5;
             ALTER TABLE apps DROP COLUMN salt;
             ALTER TABLE events DROP COLUMN source;
             ALTER TABLE rollups DROP COLUMN source;",
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

fn caches(recent_ids: usize) -> Caches {
    Caches {
        recent_ids,
        ..Caches::default()
    }
}

/// Apps made before salts existed get one each when the store is
/// migrated, and keep it.
#[test]
fn apps_made_before_salts_get_one_that_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store.add_app("one").expect("add");
        store.add_app("two").expect("add");
    }
    {
        let conn = Connection::open(dir.path().join("tally.duckdb")).expect("db");
        conn.execute_batch(
            "ALTER TABLE apps DROP COLUMN salt; DELETE FROM tally_schema WHERE version >= 6;
             ALTER TABLE events DROP COLUMN source; ALTER TABLE rollups DROP COLUMN source;",
        )
        .expect("schema 5");
    }
    let apps = DuckDbStore::open(dir.path())
        .expect("migrate")
        .apps()
        .expect("apps");
    assert!(apps.iter().all(|a| a.salt.len() == 64), "{apps:?}");
    assert_ne!(apps[0].salt, apps[1].salt);
    let again = DuckDbStore::open(dir.path())
        .expect("reopen")
        .apps()
        .expect("apps");
    assert_eq!(again, apps);
}

/// Events stored before the source column are the SDKs', whatever their
/// properties say (anyone with an ingest key could have sent
/// `source = "gateway"`), and the reports count them so.
#[test]
fn events_stored_before_the_source_column_are_the_sdks() {
    use tally_protocol::{PropertyValue, Source};
    let dir = tempfile::tempdir().expect("tempdir");
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    {
        let store = DuckDbStore::open(dir.path()).expect("open");
        store.add_app("old").expect("add");
        let mut events = vec![sample(1, "old", at), sample(2, "old", at)];
        for e in &mut events {
            e.event.name = None;
        }
        events[1]
            .event
            .properties
            .insert("source".into(), PropertyValue::String("gateway".into()));
        store
            .writer()
            .expect("w")
            .insert(&mut events.into())
            .expect("insert");
    }
    {
        let conn = Connection::open(dir.path().join("tally.duckdb")).expect("db");
        conn.execute_batch(
            "DELETE FROM tally_schema WHERE version >= 7;
             ALTER TABLE events DROP COLUMN source; ALTER TABLE rollups DROP COLUMN source;",
        )
        .expect("schema 6");
    }
    let store = DuckDbStore::open(dir.path()).expect("migrate");
    let mut sources = Vec::new();
    store
        .export(&ExportFilter::default(), &mut |e| {
            sources.push(e.event.source);
            std::ops::ControlFlow::Continue(())
        })
        .expect("export");
    assert_eq!(sources, [Source::Sdk, Source::Sdk]);
    let runs = |source: &str| {
        let params = std::collections::BTreeMap::from([
            ("app".to_owned(), "old".to_owned()),
            ("source".to_owned(), source.to_owned()),
        ]);
        let query = tally_report::Query::from_params(tally_report::ReportName::Commands, &params)
            .expect("query");
        let report = store.report(&query).expect("report");
        report.tables[0]
            .rows
            .iter()
            .map(|r| match &r[1] {
                tally_report::Cell::Int(n) => *n,
                other => panic!("runs: {other:?}"),
            })
            .sum::<i64>()
    };
    assert_eq!((runs("sdk"), runs("gateway"), runs("all")), (2, 0, 2));
}
