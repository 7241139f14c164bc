//! The behaviour every [`Store`] backend must show, as functions a backend's
//! tests call with a fresh, empty store.
//!
//! ```
//! # #[cfg(feature = "duckdb")] {
//! let dir = tempfile::tempdir()?;
//! let store = tally_store::DuckDbStore::open(dir.path())?;
//! tally_store::conformance::run_all(&store);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ops::ControlFlow;

use tally_protocol::{ErrorInfo, Event, Outcome, PropertyValue};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use crate::{ExportFilter, Store, StoredEvent};

#[cfg(feature = "clickhouse")]
pub mod clickhouse;
mod reports;

pub use reports::reports_answer_known_questions;

/// Varied invocation events of the app "varied" over three weeks (from
/// 2026-10-20), 60 installs, made from a fixed seed: the data backends are
/// compared on.
///
/// ```
/// let events = tally_store::conformance::varied(10);
/// assert_eq!(events.len(), 10);
/// assert!(events.iter().all(|e| e.event.app == "varied"));
/// ```
pub fn varied(n: u64) -> Vec<StoredEvent> {
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
            let mut e = sample(i as u32, "varied", at);
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

/// Every report over [`varied`] data, unfiltered and with filters that
/// cut days, pick versions, OSes and environments.
pub fn varied_queries() -> Vec<tally_report::Query> {
    let filters: [&[(&str, &str)]; 7] = [
        &[],
        &[("since", "2026-10-25"), ("until", "2026-11-03")],
        &[
            ("since", "2026-10-25T13:30:00Z"),
            ("until", "2026-11-03T08:00:00Z"),
        ],
        &[
            ("since", "2026-10-28T01:00:00Z"),
            ("until", "2026-10-28T05:00:00Z"),
        ],
        &[("version", "1.1.0"), ("os", "macos")],
        &[("env", "ci"), ("since", "2026-10-30")],
        &[("env", "agent")],
    ];
    let mut queries = Vec::new();
    for report in tally_report::ReportName::ALL {
        for filter in filters {
            let mut params: std::collections::BTreeMap<String, String> = filter
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            params.insert("app".into(), "varied".into());
            if report == tally_report::ReportName::Deprecation {
                params.insert("flag".into(), "--legacy".into());
                params.insert("until".into(), "2026-11-08".into());
            }
            queries.push(tally_report::Query::from_params(report, &params).expect("valid query"));
        }
    }
    queries
}

/// Runs every check against `store`, which must start empty.
pub fn run_all(store: &dyn Store) {
    events_round_trip(store);
    duplicates_are_stored_once(store);
    export_filters(store);
    apps_are_unique(store);
    retention_forgets_old_events(store);
    reports_answer_known_questions(store);
}

/// Keeping 30 days forgets an event from 100 days ago, with its rollups,
/// and keeps one from yesterday.
pub fn retention_forgets_old_events(store: &dyn Store) {
    // Stores keep microseconds.
    let now = crate::dedupe::from_micros(crate::dedupe::micros(OffsetDateTime::now_utc()));
    let mut old = sample(40, "retention", now - time::Duration::days(100));
    let mut recent = sample(41, "retention", now - time::Duration::days(1));
    for e in [&mut old, &mut recent] {
        e.event.name = None;
        e.client_timestamp = e.event.timestamp;
    }
    let mut writer = store.writer().expect("writer");
    writer
        .insert(&mut vec![old.clone(), recent.clone()].into())
        .expect("insert");
    let runs = || {
        let query = tally_report::Query::from_params(
            tally_report::ReportName::Commands,
            &[("app".to_owned(), "retention".to_owned())].into(),
        )
        .expect("query");
        let report = store.report(&query).expect("report");
        report.tables[0]
            .rows
            .iter()
            .map(|r| match r[1] {
                tally_report::Cell::Int(n) => n,
                _ => 0,
            })
            .sum::<i64>()
    };
    assert_eq!(runs(), 2);
    store.retain_days(30).expect("retain");
    assert_eq!(export(store, &app_filter("retention")), [recent]);
    assert_eq!(runs(), 1, "the old event's rollups are gone too");
}

/// An event with every field set, made from `n`.
pub fn sample(n: u32, app: &str, at: OffsetDateTime) -> StoredEvent {
    let event = Event {
        id: Uuid::from_u128(0x0195_f3a4_6c1e_7cc2_9d61_0000_0000_0000 | u128::from(n)),
        timestamp: at,
        app: app.to_owned(),
        app_version: format!("1.{}.0", n % 3),
        install_id: Uuid::from_u128(0x6f96_19ff_8b86_4d01_b42d_0000_0000_0000 | u128::from(n % 7)),
        command: "deploy create".into(),
        flags: vec!["--force".into(), "-v".into()],
        exit_code: (n % 2) as i32,
        outcome: Some(if n.is_multiple_of(2) {
            Outcome::Success
        } else {
            Outcome::Failure
        }),
        duration_ms: 1200 + u64::from(n),
        os: "linux".into(),
        arch: "x86_64".into(),
        os_version: Some("Debian 12".into()),
        ci: n.is_multiple_of(3).then(|| "github-actions".into()),
        agent: None,
        tty: Some(n.is_multiple_of(2)),
        container: Some(n.is_multiple_of(5)),
        wsl: n.is_multiple_of(7).then_some(true),
        name: n.is_multiple_of(4).then(|| format!("custom.{n}")),
        error: (n % 2 == 1).then(|| ErrorInfo {
            kind: "http.timeout".into(),
            message: "timed out after 30s".into(),
            location: Some("src/deploy.rs:42:9".into()),
        }),
        deps: [("git".to_owned(), "2.43.0".to_owned())].into(),
        properties: [
            ("count".to_owned(), PropertyValue::Int(3)),
            ("mode".to_owned(), PropertyValue::String("fast".into())),
            ("ratio".to_owned(), PropertyValue::Float(0.25)),
            ("dry".to_owned(), PropertyValue::Bool(false)),
        ]
        .into(),
    };
    StoredEvent {
        client_timestamp: at - time::Duration::hours(1),
        received_at: at + time::Duration::milliseconds(250),
        event,
    }
}

/// An event with none of the optional fields set, made from `n`.
pub fn bare(n: u32, app: &str, at: OffsetDateTime) -> StoredEvent {
    let mut bare = sample(n, app, at);
    let e = &mut bare.event;
    (e.outcome, e.os_version, e.ci, e.tty, e.error) = (None, None, None, None, None);
    (e.container, e.wsl, e.name) = (None, None, None);
    e.flags.clear();
    e.deps.clear();
    e.properties.clear();
    bare
}

fn export(store: &dyn Store, filter: &ExportFilter) -> Vec<StoredEvent> {
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

/// Every field survives the trip in and out; an event without optional
/// fields comes back without them.
pub fn events_round_trip(store: &dyn Store) {
    let at = datetime!(2026-11-20 10:00:00.123456 UTC);
    let mut full = sample(1, "roundtrip", at);
    full.event.name = Some("cache.hit".into());
    let bare = bare(2, "roundtrip", at + time::Duration::seconds(1));
    let mut writer = store.writer().expect("writer");
    assert_eq!(
        writer
            .insert(&mut vec![full.clone(), bare.clone()].into())
            .expect("insert"),
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
        .insert(&mut events[..6].to_vec().into())
        .expect("insert");
    assert!(first.iter().all(|&new| new));
    let mut retry = events.clone();
    retry.push(events[9].clone());
    let second = writer.insert(&mut retry.to_vec().into()).expect("insert");
    assert_eq!(second.iter().filter(|&&new| new).count(), 4);
    assert!(!second[10], "a repeat inside one batch is a duplicate");
    drop(writer);
    let mut restarted = store.writer().expect("writer");
    assert!(
        restarted
            .insert(&mut events.to_vec().into())
            .expect("insert")
            .iter()
            .all(|&new| !new)
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
    store
        .writer()
        .expect("writer")
        .insert(&mut events.to_vec().into())
        .expect("insert");
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
        Err(crate::StoreError::AppExists(_))
    ));
    assert!(matches!(
        store.add_app("bad name"),
        Err(crate::StoreError::InvalidAppName(_))
    ));
    let apps = store.apps().expect("apps");
    assert!(apps.contains(&a) && apps.contains(&b));
}
