//! The events tests are made of, and request bodies of them.

use tally_protocol::{ErrorInfo, Event, Outcome, PropertyValue, StoredEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// An event with every field set, made from `n` (the same `n` makes the
/// same event): its id and install, version, exit code and the fields set
/// or not vary with `n`. Its client timestamp is an hour before `at`, and
/// it was received a quarter second after.
///
/// ```
/// use time::macros::datetime;
/// let stored = tally_testkit::events::sample(1, "mycli", datetime!(2026-11-20 10:00 UTC));
/// assert_eq!(stored.event.command, "deploy create");
/// assert!(stored.event.error.is_some(), "odd runs fail");
/// ```
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
        source: tally_protocol::Source::Sdk,
    };
    StoredEvent {
        client_timestamp: at - time::Duration::hours(1),
        received_at: at + time::Duration::milliseconds(250),
        event,
    }
}

/// [`sample`] without any of the optional fields.
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

/// Varied invocation events of the app "varied" over three weeks (from
/// 2026-10-20), 60 installs, made from a fixed seed: the data backends are
/// compared on.
///
/// ```
/// let events = tally_testkit::events::varied(10);
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
            ev.id = Uuid::from_u128(u128::from(i) << 64 | 0xabc);
            ev.install_id = Uuid::from_u128(u128::from(next(60)) + 1);
            ev.name = None;
            ev.app_version = ["1.0.0", "1.1.0", "2.0.0"][next(3) as usize].into();
            ev.os = ["linux", "macos", "windows"][next(3) as usize].into();
            ev.command = ["build", "deploy", "deploy create"][next(3) as usize].into();
            ev.exit_code = [0, 0, 0, 1, 101][next(5) as usize];
            ev.outcome = match ev.exit_code {
                0 => Some(Outcome::Success),
                101 => Some(Outcome::Crash),
                _ => [None, Some(Outcome::Killed)][next(2) as usize],
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
            // A request of a gateway's log now and then, beside the runs.
            if next(4) == 0 {
                ev.source = tally_protocol::Source::Gateway;
            } else if next(6) == 0 {
                // And a custom event of the SDK's.
                ev.name = Some(["cache.hit", "cache.miss"][next(2) as usize].into());
                ev.properties = [
                    (
                        "layer".to_owned(),
                        ["memory", "disk"][next(2) as usize].into(),
                    ),
                    ("warm".to_owned(), (next(2) == 0).into()),
                    ("size_mb".to_owned(), (next(100) as i64).into()),
                ]
                .into();
            }
            e
        })
        .collect()
}

/// A realistic invocation event of `app` as an SDK sends it, every field
/// set, with fresh ids and a timestamp two seconds ago.
pub fn fresh(app: &str) -> Event {
    Event {
        id: Uuid::now_v7(),
        timestamp: OffsetDateTime::now_utc() - time::Duration::seconds(2),
        app: app.to_owned(),
        app_version: "2.4.0".into(),
        install_id: Uuid::new_v4(),
        command: "deploy create".into(),
        flags: vec!["--force".into(), "--region".into()],
        exit_code: 1,
        outcome: Some(Outcome::Failure),
        duration_ms: 812,
        os: "linux".into(),
        arch: "x86_64".into(),
        os_version: Some("Debian 12".into()),
        ci: Some("github-actions".into()),
        agent: Some("claude-code".into()),
        tty: Some(false),
        container: Some(true),
        wsl: Some(false),
        name: None,
        error: Some(ErrorInfo {
            kind: "http.timeout".into(),
            message: "timed out after 30s".into(),
            location: Some("src/deploy.rs:42:9".into()),
        }),
        deps: [("git".to_owned(), "2.43.0".to_owned())].into(),
        properties: [
            ("regions".to_owned(), PropertyValue::Int(3)),
            ("mode".to_owned(), PropertyValue::String("fast".into())),
            ("dry".to_owned(), PropertyValue::Bool(false)),
            ("ratio".to_owned(), PropertyValue::Float(0.5)),
        ]
        .into(),
        source: tally_protocol::Source::Sdk,
    }
}

/// The JSON body of `POST /v1/batch` with `events` (typed events, or JSON
/// values a test has broken on purpose), sent now.
pub fn batch_body<T: serde::Serialize>(events: &[T]) -> Vec<u8> {
    let sent_at = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::to_vec(&serde_json::json!({ "sent_at": sent_at, "events": events }))
        .unwrap_or_default()
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}
