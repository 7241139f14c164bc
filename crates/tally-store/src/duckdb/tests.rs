use super::writer::DuckDbWriter;
use super::*;
use crate::conformance;
use crate::dedupe::micros;

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

/// Every report rolled up from the raw events on the spot, the answer the
/// stored rollups must give.
struct RawSource<'a> {
    conn: &'a duckdb::Connection,
    filter: &'a tally_report::Filter,
}

impl crate::rollup::Source for RawSource<'_> {
    fn rows(
        &self,
        kind: crate::rollup::Kind,
        since: Option<time::OffsetDateTime>,
        until: Option<time::OffsetDateTime>,
    ) -> Result<Vec<crate::rollup::Row>, StoreError> {
        let events = rollups::raw(
            self.conn,
            Some(&self.filter.app),
            since.map_or(0, micros),
            until.map_or(
                micros(time::macros::datetime!(2100-01-01 00:00 UTC)),
                micros,
            ),
        )?;
        Ok(crate::rollup::rows_from_events(
            events.iter().map(|(e, n)| (&e.event, *n)),
            kind,
            self.filter,
        ))
    }
}

/// Varied events over three weeks, from a fixed seed.
fn varied(n: u64) -> Vec<StoredEvent> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let start = time::macros::datetime!(2026-10-20 00:00 UTC);
    (0..n)
        .map(|i| {
            let at = start + time::Duration::seconds(next(21 * 86_400) as i64);
            let mut e = conformance::sample(i as u32, "varied", at);
            let ev = &mut e.event;
            ev.id = uuid::Uuid::from_u128(u128::from(i) << 64 | 0xabc);
            ev.install_id = uuid::Uuid::from_u128(u128::from(next(60)) + 1);
            ev.name = None;
            ev.app_version = ["1.0.0", "1.1.0", "2.0.0"][next(3) as usize].into();
            ev.os = ["linux", "macos", "windows"][next(3) as usize].into();
            ev.command = ["build", "deploy", "deploy create"][next(3) as usize].into();
            ev.exit_code = [0, 0, 0, 1, 101][next(5) as usize];
            ev.outcome = match ev.exit_code {
                0 => Some(tally_protocol::Outcome::Success),
                101 => Some(tally_protocol::Outcome::Crash),
                _ => [None, Some(tally_protocol::Outcome::Killed)][next(2) as usize],
            };
            ev.duration_ms = next(5_000);
            ev.ci = (next(3) == 0).then(|| "github-actions".into());
            ev.agent = (next(5) == 0).then(|| "claude-code".into());
            ev.flags = ["--force", "-v", "--legacy"]
                .into_iter()
                .filter(|_| next(2) == 0)
                .map(String::from)
                .collect();
            if next(4) == 0 {
                ev.deps.clear();
            }
            if ev.exit_code == 0 {
                ev.error = None;
            }
            e
        })
        .collect()
}

/// The stored rollups (appended per batch, compacted or not, with raw edges
/// for ranges that cut days) give every report exactly the answer of
/// rolling up the raw events, for many filters.
#[test]
fn stored_rollups_answer_as_the_raw_events_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DuckDbStore::open(dir.path()).expect("open");
    let events = varied(3_000);
    let mut writer = DuckDbWriter::open(store.connection().expect("conn"), 100).expect("writer");
    for chunk in events.chunks(97) {
        writer.insert(chunk).expect("insert");
    }
    // Retries add nothing.
    writer.insert(&events[..500]).expect("retry");
    let queries: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("since", "2026-10-25"), ("until", "2026-11-03")],
        vec![
            ("since", "2026-10-25T13:30:00Z"),
            ("until", "2026-11-03T08:00:00Z"),
        ],
        vec![
            ("since", "2026-10-28T01:00:00Z"),
            ("until", "2026-10-28T05:00:00Z"),
        ],
        vec![("version", "1.1.0"), ("os", "macos")],
        vec![("env", "ci"), ("since", "2026-10-30")],
        vec![("env", "agent")],
    ];
    let conn = store.connection().expect("conn");
    let check = |phase: &str| {
        for report in tally_report::ReportName::ALL {
            for params in &queries {
                let mut all = vec![("app", "varied")];
                all.extend(params.iter().copied());
                if report == tally_report::ReportName::Deprecation {
                    all.extend([("flag", "--legacy"), ("until", "2026-11-08")]);
                }
                let params = all
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                let query = tally_report::Query::from_params(report, &params).expect("query");
                let stored = store.report(&query).expect("stored");
                let raw = crate::rollup::answer(
                    &RawSource {
                        conn: &conn,
                        filter: &query.filter,
                    },
                    &query,
                )
                .expect("raw");
                assert_eq!(stored, raw, "{phase}: {report:?} {all:?}");
                assert!(
                    stored.tables.iter().any(|t| !t.rows.is_empty()),
                    "{phase}: {report:?} {all:?} is empty, so it proves nothing"
                );
            }
        }
    };
    check("appended");
    writer.compact().expect("compact");
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
        store.writer().expect("w").insert(&events).expect("insert");
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
