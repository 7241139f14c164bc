//! The behaviour every [`Store`] backend must show, as checks a backend's
//! tests run on a fresh, empty store each: [`store_tests!`](crate::store_tests)
//! makes one test of each, and one of each report over
//! [`reports::data`](crate::reports::data).
//!
//! ```ignore
//! struct Fixture { _dir: tempfile::TempDir, store: DuckDbStore }
//! impl tally_testkit::conformance::TestStore for Fixture {
//!     fn store(&self) -> &dyn Store { &self.store }
//! }
//! fn open() -> Fixture { ... }
//! tally_testkit::store_tests!(open);
//! ```

use std::ops::ControlFlow;

use tally_protocol::StoredEvent;
use tally_report::{Query, Report, ReportName};
use tally_rollup::{from_micros, micros};
use tally_store::{ExportFilter, Store, StoreError};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::events::{bare, sample, varied};

/// A store for one test, with what must live as long as it (its data dir,
/// its server).
pub trait TestStore {
    /// The store.
    fn store(&self) -> &dyn Store;
}

/// Inserts `events` with a new writer.
pub fn insert(store: &dyn Store, events: Vec<StoredEvent>) -> Vec<bool> {
    store
        .writer()
        .expect("writer")
        .insert(&mut store.stage(events))
        .expect("insert")
}

/// Every stored event `filter` selects.
pub fn export(store: &dyn Store, filter: &ExportFilter) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    store
        .export(filter, &mut |e| {
            out.push(e);
            ControlFlow::Continue(())
        })
        .expect("export");
    out
}

fn app_filter(app: &str) -> ExportFilter {
    ExportFilter {
        app: Some(app.into()),
        ..Default::default()
    }
}

/// `fixture`'s store with [`reports::data`](crate::reports::data) in it, as
/// the reports' checks ask it.
pub fn asking<F: TestStore>(fixture: F) -> impl Fn(&Query) -> Report {
    insert(fixture.store(), crate::reports::data());
    move |query: &Query| fixture.store().report(query).expect("report")
}

/// Every field survives the trip in and out; an event without optional
/// fields comes back without them.
pub fn events_round_trip(store: &dyn Store) {
    let at = datetime!(2026-11-20 10:00:00.123456 UTC);
    let mut full = sample(1, "roundtrip", at);
    full.event.name = Some("cache.hit".into());
    let bare = bare(2, "roundtrip", at + time::Duration::seconds(1));
    assert_eq!(
        insert(store, vec![full.clone(), bare.clone()]),
        [true, true]
    );
    assert_eq!(export(store, &app_filter("roundtrip")), [full, bare]);
}

/// A retried event is stored once, in one batch, across batches, and across
/// writers (as after a restart).
pub fn duplicates_are_stored_once(store: &dyn Store) {
    let at = datetime!(2026-11-21 10:00:00 UTC);
    let events: Vec<_> = (10..20).map(|n| sample(n, "dedupe", at)).collect();
    let mut writer = store.writer().expect("writer");
    let first = writer
        .insert(&mut store.stage(events[..6].to_vec()))
        .expect("insert");
    assert!(first.iter().all(|&new| new));
    let mut retry = events.clone();
    retry.push(events[9].clone());
    let second = writer.insert(&mut store.stage(retry)).expect("insert");
    assert_eq!(second.iter().filter(|&&new| new).count(), 4);
    assert!(!second[10], "a repeat inside one batch is a duplicate");
    drop(writer);
    assert!(
        insert(store, events).iter().all(|&new| !new),
        "a new writer knows what the last one stored"
    );
    assert_eq!(export(store, &app_filter("dedupe")).len(), 10);
}

/// Exports select by app and half-open time range, in time order.
pub fn export_filters(store: &dyn Store) {
    let base = datetime!(2026-11-22 00:00:00 UTC);
    let events: Vec<_> = (30..40)
        .map(|n| {
            sample(
                n,
                "filters",
                base + time::Duration::hours(i64::from(40 - n)),
            )
        })
        .collect();
    insert(store, events);
    let all = export(store, &app_filter("filters"));
    assert_eq!(all.len(), 10);
    assert!(
        all.windows(2)
            .all(|w| w[0].event.timestamp <= w[1].event.timestamp)
    );
    let window = ExportFilter {
        app: Some("filters".into()),
        since: Some(base + time::Duration::hours(2)),
        until: Some(base + time::Duration::hours(5)),
    };
    let hours: Vec<_> = export(store, &window)
        .iter()
        .map(|e| (e.event.timestamp - base).whole_hours())
        .collect();
    assert_eq!(hours, [2, 3, 4]);
    assert!(export(store, &app_filter("nobody")).is_empty());
}

/// App names are unique and validated; keys are distinct.
pub fn apps_are_unique(store: &dyn Store) {
    let a = store.add_app("conformance-a").expect("add");
    let b = store.add_app("conformance-b").expect("add");
    assert_ne!(a.ingest_key, b.ingest_key);
    assert!(matches!(
        store.add_app("conformance-a"),
        Err(StoreError::AppExists(_))
    ));
    assert!(matches!(
        store.add_app("bad name"),
        Err(StoreError::InvalidAppName(_))
    ));
    let apps = store.apps().expect("apps");
    assert!(apps.contains(&a) && apps.contains(&b));
}

/// The runs the commands report counts for the query `params`.
pub fn runs(store: &dyn Store, params: &[(&str, &str)]) -> i64 {
    commands_sum(store, params, 1)
}

/// The installs the commands report counts for the query `params`,
/// summed over its commands.
pub fn installs(store: &dyn Store, params: &[(&str, &str)]) -> i64 {
    commands_sum(store, params, 2)
}

/// The sum over the commands report's rows of column `column` (1: runs,
/// 2: installs) for the query `params`.
fn commands_sum(store: &dyn Store, params: &[(&str, &str)], column: usize) -> i64 {
    let params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let query = Query::from_params(ReportName::Commands, &params).expect("query");
    let report = store.report(&query).expect("report");
    report.tables[0]
        .rows
        .iter()
        .map(|r| match r[column] {
            tally_report::Cell::Int(n) => n,
            _ => 0,
        })
        .sum()
}

/// Keeping 30 days forgets an event from 100 days ago, with its rollups,
/// and keeps one from yesterday.
pub fn retention_forgets_old_events(store: &dyn Store) {
    // Stores keep microseconds.
    let now = from_micros(micros(OffsetDateTime::now_utc()));
    let mut old = sample(40, "retention", now - time::Duration::days(100));
    let mut recent = sample(41, "retention", now - time::Duration::days(1));
    for e in [&mut old, &mut recent] {
        e.event.name = None;
        e.client_timestamp = e.event.timestamp;
    }
    insert(store, vec![old, recent.clone()]);
    let runs = || runs(store, &[("app", "retention")]);
    assert_eq!(runs(), 2);
    store.retain_days(30).expect("retain");
    assert_eq!(export(store, &app_filter("retention")), [recent]);
    assert_eq!(runs(), 1, "the old event's rollups are gone too");
}

/// Per app: events kept 10 days and rollups 30 forget an event of 100
/// days ago entirely, keep one of 20 days ago in the reports only (its
/// rollups outlive it), keep yesterday's, and touch no other app.
pub fn retention_per_app_keeps_rollups_longer(store: &dyn Store) {
    let now = from_micros(micros(OffsetDateTime::now_utc()));
    let at = |n: u32, app: &str, days: i64| {
        let mut e = sample(n, app, now - time::Duration::days(days));
        e.event.name = None;
        e.client_timestamp = e.event.timestamp;
        e.received_at = e.event.timestamp;
        e
    };
    let (old, middle, recent) = (at(50, "kept", 100), at(51, "kept", 20), at(52, "kept", 1));
    let other = at(53, "other", 100);
    insert(store, vec![old, middle, recent.clone(), other.clone()]);
    // Whole days only: the reports' own days, not the raw events of today.
    let until = (now - time::Duration::days(1)).date().to_string();
    let runs = |app: &str| runs(store, &[("app", app), ("until", &until)]);
    assert_eq!((runs("kept"), runs("other")), (2, 1));
    store
        .retain_app("kept", Some(10), Some(30))
        .expect("retain");
    // Days past any calendar keep everything, never forget it.
    store
        .retain_app("other", Some(u32::MAX), Some(u32::MAX))
        .expect("retain for ever");
    assert_eq!(export(store, &app_filter("kept")), [recent]);
    assert_eq!(export(store, &app_filter("other")), [other]);
    assert_eq!(
        (runs("kept"), runs("other")),
        (1, 1),
        "20 days ago is still counted from its rollups; 100 days ago is not"
    );
}

/// Erasing an install takes its raw events and its part in every rollup:
/// the reports then answer as the events left do, rolled up from scratch,
/// and the same id in another app is left alone.
pub fn erasure_leaves_no_trace(store: &dyn Store) {
    let events = varied(2_000);
    let gone = events[0].event.install_id;
    let mut twin = sample(9_000, "twin", events[0].event.timestamp);
    twin.event.install_id = gone;
    let mut all = events.clone();
    all.push(twin.clone());
    insert(store, all);
    let (mut left, theirs): (Vec<_>, Vec<_>) =
        events.into_iter().partition(|e| e.event.install_id != gone);
    assert!(theirs.len() > 10, "the install ran on many days");
    assert_eq!(
        store.forget_install(&["varied"], gone).expect("forget"),
        Some(theirs.len() as u64)
    );
    let mut exported = export(store, &app_filter("varied"));
    for list in [&mut exported, &mut left] {
        list.sort_by_key(|e| (e.event.timestamp, e.event.id));
    }
    assert!(
        exported == left,
        "every event of the install went, and no other"
    );
    assert_eq!(export(store, &app_filter("twin")), [twin.clone()]);
    left.push(twin);
    crate::reports::answers_match_events(
        &|query| store.report(query).expect("report"),
        &left,
        "after an erasure",
    );
    assert_eq!(
        store.forget_install(&["varied"], gone).expect("again"),
        None,
        "an erasure done is done: nothing of the install is left"
    );
    assert_eq!(
        store
            .forget_install(&["varied", "twin"], uuid::Uuid::from_u128(0xdead))
            .expect("unknown"),
        None,
        "an install never stored"
    );
}

/// On days whose raw events are past retention, an erased install leaves
/// the rollups' install sets; its runs stay in the counts, which name no
/// one.
pub fn erasure_past_raw_retention_leaves_install_sets(store: &dyn Store) {
    let day = from_micros(micros(OffsetDateTime::now_utc())) - time::Duration::days(60);
    let run = |n: u32, install: u128| {
        let mut e = sample(n, "aged", day);
        e.event.name = None;
        e.event.command = "build".into();
        e.event.install_id = uuid::Uuid::from_u128(install);
        (e.client_timestamp, e.received_at) = (day, day);
        e
    };
    insert(store, vec![run(1, 7), run(2, 7), run(3, 8)]);
    store.retain_app("aged", Some(30), None).expect("retain");
    let since = day.date().to_string();
    let params = [("app", "aged"), ("since", since.as_str())];
    assert_eq!(
        (
            commands_sum(store, &params, 1),
            commands_sum(store, &params, 2)
        ),
        (3, 2)
    );
    let gone = uuid::Uuid::from_u128(7);
    assert_eq!(
        store.forget_install(&["aged"], gone).expect("forget"),
        Some(0),
        "known from the rollups alone"
    );
    assert_eq!(
        (
            commands_sum(store, &params, 1),
            commands_sum(store, &params, 2)
        ),
        (3, 1),
        "the install left the sets; the runs stay"
    );
}

/// Varied events, inserted in batches and partly retried, give every report
/// of [`varied_queries`](crate::reports::varied_queries) the answer of
/// rolling up the stored events on the spot (see
/// [`answers_match_events`](crate::reports::answers_match_events)).
pub fn answers_as_its_events_do(store: &dyn Store) {
    let events = varied(2_000);
    let mut writer = store.writer().expect("writer");
    for chunk in events.chunks(97) {
        writer
            .insert(&mut store.stage(chunk.to_vec()))
            .expect("insert");
    }
    assert!(
        writer
            .insert(&mut store.stage(events[..300].to_vec()))
            .expect("retry")
            .iter()
            .all(|new| !new),
        "a retry is a duplicate"
    );
    let mut exported = export(store, &app_filter("varied"));
    let mut sent = events.clone();
    for list in [&mut exported, &mut sent] {
        list.sort_by_key(|e| (e.event.timestamp, e.event.id));
    }
    assert!(exported == sent, "the export is what was sent, once each");
    crate::reports::answers_match_events(
        &|query| store.report(query).expect("report"),
        &events,
        "inserted",
    );
}

/// One test of each check in [`conformance`](self) and of each report
/// (see [`report_tests!`](crate::report_tests)) against the store that
/// `$open` (a function returning a [`TestStore`]) makes anew for each.
#[macro_export]
macro_rules! store_tests {
    ($open:path) => {
        $crate::store_tests!(@each $open; events_round_trip duplicates_are_stored_once
            export_filters apps_are_unique retention_forgets_old_events
            retention_per_app_keeps_rollups_longer answers_as_its_events_do
            erasure_leaves_no_trace erasure_past_raw_retention_leaves_install_sets);
        mod reports {
            use super::*;
            $crate::report_tests!($crate::conformance::asking($open()));
        }
    };
    (@each $open:path; $($check:ident)*) => {
        $(
            #[test]
            fn $check() {
                let fixture = $open();
                $crate::conformance::$check($crate::conformance::TestStore::store(&fixture));
            }
        )*
    };
}
