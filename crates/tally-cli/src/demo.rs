//! Realistic synthetic data: what a popular CLI's telemetry looks like after
//! 90 days, so the dashboard has something to show the moment it opens, and
//! benchmarks have data of any size.
//!
//! The story in the data: installs grow over the quarter; five releases,
//! each adopted with a lag; 1.2.0 broke `deploy` (failures and a crash) and
//! 1.2.1 fixed it; `--legacy-output` is phased out and gone in 2.0.0; a
//! third of the traffic is CI and a tenth AI agents.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tally_protocol::{ErrorInfo, Event, Outcome, StoredEvent};
use tally_store::{Store, Writer};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Days of history.
const DAYS: i64 = 90;

/// Releases: version and the day (from the start) it shipped.
const RELEASES: [(&str, i64); 5] = [
    ("1.0.0", 0),
    ("1.1.0", 25),
    ("1.2.0", 50),
    ("1.2.1", 56),
    ("2.0.0", 80),
];

/// A command of the demo CLI: its share of runs, flags (with the chance
/// each is typed) and typical duration.
struct Spec {
    path: &'static str,
    share: f64,
    flags: &'static [(&'static str, f64)],
    typical_ms: f64,
}

const COMMANDS: [Spec; 8] = [
    Spec {
        path: "build",
        share: 0.34,
        flags: &[
            ("--release", 0.4),
            ("--verbose", 0.15),
            ("--target", 0.2),
            ("--legacy-output", 0.12),
        ],
        typical_ms: 2400.0,
    },
    Spec {
        path: "test",
        share: 0.22,
        flags: &[
            ("--watch", 0.1),
            ("--filter", 0.3),
            ("--legacy-output", 0.08),
        ],
        typical_ms: 5200.0,
    },
    Spec {
        path: "deploy",
        share: 0.10,
        flags: &[("--region", 0.9), ("--force", 0.2), ("--dry-run", 0.15)],
        typical_ms: 9000.0,
    },
    Spec {
        path: "deploy create",
        share: 0.05,
        flags: &[("--region", 1.0), ("--size", 0.5)],
        typical_ms: 12000.0,
    },
    Spec {
        path: "lint",
        share: 0.12,
        flags: &[("--fix", 0.35)],
        typical_ms: 800.0,
    },
    Spec {
        path: "init",
        share: 0.04,
        flags: &[("--template", 0.6)],
        typical_ms: 300.0,
    },
    Spec {
        path: "login",
        share: 0.03,
        flags: &[("--sso", 0.3)],
        typical_ms: 1500.0,
    },
    Spec {
        path: "status",
        share: 0.10,
        flags: &[("--json", 0.4)],
        typical_ms: 120.0,
    },
];

struct Install {
    id: Uuid,
    first_day: i64,
    last_day: i64,
    /// Days it takes this install to pick up a release.
    lag: i64,
    os: (&'static str, &'static str, &'static str),
    env: (Option<&'static str>, Option<&'static str>),
    git: &'static str,
    container: bool,
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

fn install(rng: &mut StdRng) -> Install {
    // Growth: more installs start later in the quarter.
    let first_day = (f64::from(DAYS as i32) * rng.random::<f64>().sqrt()) as i64;
    let churned = rng.random::<f64>() < 0.3;
    let last_day = if churned {
        (first_day + rng.random_range(1..40)).min(DAYS - 1)
    } else {
        DAYS - 1
    };
    let os = *pick(
        rng,
        &[
            (("linux", "x86_64", "ubuntu 24.04"), 0.30),
            (("linux", "x86_64", "debian 12"), 0.14),
            (("linux", "aarch64", "ubuntu 22.04"), 0.06),
            (("macos", "aarch64", "15.1"), 0.24),
            (("macos", "x86_64", "14.6"), 0.08),
            (("windows", "x86_64", "10.0.22631"), 0.18),
        ],
    );
    let env = *pick(
        rng,
        &[
            ((None, None), 0.58),
            ((Some("github-actions"), None), 0.2),
            ((Some("gitlab"), None), 0.07),
            ((Some("circleci"), None), 0.04),
            ((None, Some("claude-code")), 0.06),
            ((None, Some("cursor")), 0.03),
            ((Some("github-actions"), Some("codex")), 0.02),
        ],
    );
    Install {
        id: Uuid::from_u128(rng.random::<u128>() & !(0xf000 << 64) | (0x4000 << 64)),
        first_day,
        last_day,
        lag: if env.0.is_some() {
            rng.random_range(0..3)
        } else {
            rng.random_range(0..25)
        },
        os,
        env,
        git: pick::<&str>(rng, &[("2.43.0", 0.4), ("2.45.2", 0.35), ("2.39.5", 0.25)]),
        container: env.0.is_some() && rng.random::<f64>() < 0.6,
    }
}

fn version_on(day: i64, lag: i64) -> &'static str {
    RELEASES
        .iter()
        .rev()
        .find(|(_, shipped)| *shipped + lag <= day)
        .map_or("1.0.0", |(v, _)| v)
}

/// Generates `events` events of `app` ending at `end`, deterministic for a
/// `seed`, handing them to `write` in chunks.
pub fn generate(
    app: &str,
    events: u64,
    end: OffsetDateTime,
    seed: u64,
    write: &mut dyn FnMut(Vec<StoredEvent>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let install_count = (events / 40).clamp(50, 2_000_000) as usize;
    let mut installs: Vec<Install> = (0..install_count).map(|_| install(&mut rng)).collect();
    installs.sort_by_key(|i| i.first_day);
    let start = end - Duration::days(DAYS);
    let commands: Vec<(usize, f64)> = COMMANDS
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.share))
        .collect();
    const CHUNK: usize = 50_000;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut made = 0;
    // Day by day, in time order, as a live server would receive them (so
    // the writer's memory of recent ids decides every dedupe). Activity
    // grows over the quarter: by the end of day d, ((d+1)/DAYS)² of all.
    let mut today: Vec<StoredEvent> = Vec::new();
    for day in 0..DAYS {
        let quota = (events as f64 * ((day + 1) as f64 / DAYS as f64).powi(2)) as u64;
        let quota = if day == DAYS - 1 { events } else { quota };
        let eligible = installs.partition_point(|i| i.first_day <= day);
        let active = installs[..eligible].iter().any(|i| i.last_day >= day);
        while active && made < quota {
            let who = &installs[rng.random_range(0..eligible)];
            if who.last_day < day {
                continue;
            }
            let at = start + Duration::days(day);
            let run = run(&mut rng, app, who, &commands, (day, at));
            // A build looks its cache up: a custom event beside the run.
            if run.event.command == "build" && rng.random::<f64>() < 0.6 {
                today.push(cache_lookup(&mut rng, &run));
            }
            today.push(run);
            made += 1;
        }
        today.sort_by_key(|e| e.event.timestamp);
        for event in today.drain(..) {
            chunk.push(event);
            if chunk.len() == CHUNK {
                write(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))?;
            }
        }
    }
    if !chunk.is_empty() {
        write(chunk)?;
    }
    Ok(())
}

/// One run by `who` on `day` (from the start; `midnight` is its start),
/// of a command picked by `commands`' weights.
fn run(
    rng: &mut StdRng,
    app: &str,
    who: &Install,
    commands: &[(usize, f64)],
    (day, midnight): (i64, OffsetDateTime),
) -> StoredEvent {
    let version = version_on(day, who.lag);
    let spec = &COMMANDS[*pick(rng, commands)];
    let flags = flags(rng, spec, version, day);
    let broken = version == "1.2.0" && spec.path.starts_with("deploy");
    let (exit_code, outcome, error) = result(rng, broken);
    let duration_ms = (spec.typical_ms
        * (0.3 + rng.random::<f64>() * 1.4)
        * if rng.random::<f64>() < 0.05 { 4.0 } else { 1.0 }) as u64;
    let at = midnight + Duration::seconds(rng.random_range(0..86_400));
    let mut event = Event {
        id: Uuid::from_u128(rng.random::<u128>() & !(0xf000 << 64) | (0x4000 << 64)),
        timestamp: at,
        app: app.to_owned(),
        app_version: version.to_owned(),
        install_id: who.id,
        name: None,
        command: spec.path.to_owned(),
        flags,
        exit_code,
        outcome: Some(outcome),
        duration_ms,
        os: who.os.0.to_owned(),
        arch: who.os.1.to_owned(),
        os_version: Some(who.os.2.to_owned()),
        ci: who.env.0.map(str::to_owned),
        agent: who.env.1.map(str::to_owned),
        tty: Some(who.env == (None, None)),
        container: Some(who.container),
        wsl: Some(who.os.0 == "linux" && who.env == (None, None) && who.lag % 7 == 0),
        error,
        deps: BTreeMap::from([("git".to_owned(), who.git.to_owned())]),
        properties: BTreeMap::new(),
        source: tally_protocol::Source::Sdk,
    };
    if event.command == "build" && rng.random::<f64>() < 0.3 {
        event
            .properties
            .insert("targets".into(), (rng.random_range(1..6) as i64).into());
    }
    StoredEvent {
        client_timestamp: at,
        received_at: at,
        event,
    }
}

/// The custom event a build `run` records as it looks its cache up.
fn cache_lookup(rng: &mut StdRng, run: &StoredEvent) -> StoredEvent {
    let mut lookup = run.clone();
    let e = &mut lookup.event;
    e.id = Uuid::from_u128(rng.random::<u128>() & !(0xf000 << 64) | (0x4000 << 64));
    let hit = rng.random::<f64>() < 0.7;
    e.name = Some(if hit { "cache.hit" } else { "cache.miss" }.to_owned());
    e.properties = BTreeMap::from([(
        "layer".to_owned(),
        if rng.random::<f64>() < 0.8 {
            "memory"
        } else {
            "disk"
        }
        .into(),
    )]);
    e.error = None;
    (e.exit_code, e.outcome) = (0, Some(tally_protocol::Outcome::Success));
    lookup
}

/// The flags typed on a run of `spec` in `version` on `day`.
fn flags(rng: &mut StdRng, spec: &Spec, version: &str, day: i64) -> Vec<String> {
    let mut flags = Vec::new();
    for (flag, p) in spec.flags {
        // --legacy-output fades out and is gone in 2.0.0.
        let p = if *flag == "--legacy-output" {
            if version == "2.0.0" {
                0.0
            } else {
                p * (1.0 - day as f64 / DAYS as f64)
            }
        } else {
            *p
        };
        if rng.random::<f64>() < p {
            flags.push((*flag).to_owned());
        }
    }
    flags
}

/// How a run ended: `broken` runs (deploy on 1.2.0) fail and crash more.
fn result(rng: &mut StdRng, broken: bool) -> (i32, Outcome, Option<ErrorInfo>) {
    let roll = rng.random::<f64>();
    if broken && roll < 0.04 {
        let error = ErrorInfo {
            kind: "panic".into(),
            message: "called `Option::unwrap()` on a `None` value".into(),
            location: Some("src/deploy/plan.rs:88:14".into()),
        };
        return (101, Outcome::Crash, Some(error));
    }
    if roll < if broken { 0.22 } else { 0.05 } {
        let (kind, message) = *pick(rng, ERRORS);
        let error = ErrorInfo {
            kind: kind.into(),
            message: message.into(),
            location: None,
        };
        return (1, Outcome::Failure, Some(error));
    }
    if roll > 0.995 {
        (130, Outcome::Interrupted, None)
    } else {
        (0, Outcome::Success, None)
    }
}

/// The errors runs fail with (kind and message), and how often.
const ERRORS: &[((&str, &str), f64)] = &[
    (
        ("http.timeout", "request to the API timed out after 30s"),
        0.4,
    ),
    (
        (
            "config.missing",
            "no config file at ~/.config/democli/config.toml",
        ),
        0.25,
    ),
    (
        ("auth.expired", "the session expired; run `democli login`"),
        0.2,
    ),
    (("io.permission", "permission denied writing ./dist"), 0.15),
];

/// The app and size of `serve --demo`'s data.
pub const APP: &str = "democli";
pub const EVENTS: u64 = 100_000;

/// What [`APP`]'s CLI may send beyond every event's fields: the demo's
/// custom events, their cache layer shown in reports, and the number of
/// targets a build names.
pub fn schema() -> tally_protocol::schema::Schema {
    use tally_protocol::schema::{EventSpec, PropertySpec, PropertyType, Schema};
    let layer = PropertySpec {
        kind: PropertyType::String,
        values: vec!["memory".into(), "disk".into()],
        min: None,
        max: None,
        report: true,
        description: Some("Where the build found (or missed) its cache".into()),
    };
    let lookup = |description: &str| EventSpec {
        description: Some(description.into()),
        properties: BTreeMap::from([("layer".to_owned(), layer.clone())]),
    };
    Schema {
        properties: BTreeMap::from([(
            "targets".to_owned(),
            PropertySpec {
                kind: PropertyType::Integer,
                values: Vec::new(),
                min: Some(1.0),
                max: Some(100.0),
                report: false,
                description: Some("How many targets a build names".into()),
            },
        )]),
        events: BTreeMap::from([
            ("cache.hit".to_owned(), lookup("A build found its cache")),
            ("cache.miss".to_owned(), lookup("A build did not")),
        ]),
        ..Schema::default()
    }
}

/// Fills a store that has no apps yet with [`EVENTS`] events of [`APP`];
/// `place` names the store in what it prints.
pub fn fill_if_empty(store: &dyn Store, place: &str) -> anyhow::Result<()> {
    if !store.apps()?.is_empty() {
        eprintln!("{place} has apps already; not adding demo data.");
        return Ok(());
    }
    store.add_app(APP)?;
    eprintln!("Adding 90 days of demo data for the app {APP}...");
    fill(&mut *store.writer()?, APP, EVENTS, 1)
}

/// Fills `writer` with `events` demo events of `app`, ending now.
pub fn fill(writer: &mut dyn Writer, app: &str, events: u64, seed: u64) -> anyhow::Result<()> {
    generate(app, events, OffsetDateTime::now_utc(), seed, &mut |chunk| {
        writer.insert(&mut chunk.into())?;
        Ok(())
    })
}
