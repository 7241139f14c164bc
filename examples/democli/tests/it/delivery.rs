//! Runs reach the server exactly once, whatever the endpoint does, and the
//! CLI never waits for it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{DELIVERY_DEADLINE, Mode, Proxy, Server, User, closed_port, flushers};

/// What a democli run may add to its own work, however bad the endpoint.
/// Generous for a loaded 2-core machine; a run that waited on the network
/// would take seconds (the slow endpoint answers after 5).
const BOUND: Duration = Duration::from_millis(1500);

fn ids(events: &[serde_json::Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn runs_arrive_once_with_command_and_flag_names_never_values() {
    let server = Server::start();
    let user = User::consenting(&server.url, &server.key);
    let runs = [
        vec![
            "build",
            "--verbose",
            "--target",
            "secret-target-x",
            "--profile",
            "release",
        ],
        vec!["deploy", "--region", "secret-region-y", "--force"],
        vec!["build"],
    ];
    for args in &runs {
        let run = user.democli(args);
        assert!(run.output.status.success(), "{}", run.stderr());
    }
    // Three runs and the custom event `deploy` tracks.
    let all = server.wait_for(4);
    user.wait_spool_empty();
    let events_after = server.events();
    assert_eq!(events_after.len(), 4, "{events_after:?}");
    assert_eq!(ids(&all).len(), 4);
    let (custom, events): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e["name"].is_string());
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0]["name"], "deploy.plan");
    assert_eq!(custom[0]["command"], "deploy");
    assert_eq!(custom[0]["properties"]["forced"], true);

    let mut by_command: Vec<(String, Vec<String>, i64)> = events
        .iter()
        .map(|e| {
            (
                e["command"].as_str().expect("command").to_owned(),
                e["flags"]
                    .as_array()
                    .expect("flags")
                    .iter()
                    .map(|f| f.as_str().expect("flag").to_owned())
                    .collect(),
                e["exit_code"].as_i64().expect("exit code"),
            )
        })
        .collect();
    by_command.sort();
    assert_eq!(
        by_command,
        [
            ("build".into(), vec![], 0),
            (
                "build".into(),
                vec!["--verbose".into(), "--target".into(), "--profile".into()],
                0
            ),
            (
                "deploy".into(),
                vec!["--region".into(), "--force".into()],
                0
            ),
        ]
    );
    let profiled = events
        .iter()
        .find(|e| e["properties"]["--profile"].is_string())
        .expect("the opted-in enum value is sent");
    assert_eq!(profiled["properties"]["--profile"], "release");
    let stored = server.export_text();
    for secret in ["secret-target-x", "secret-region-y"] {
        assert!(!stored.contains(secret), "{secret} leaked: {stored}");
    }
    let event = &events[0];
    assert_eq!(event["app"], "democli");
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["os"], std::env::consts::OS);
}

/// Three runs against a misbehaving endpoint, each quick; then the endpoint
/// heals and every run (those and the ones after) is stored exactly once.
fn survives(mode: Mode) {
    let server = Server::start();
    let proxy = Proxy::start(&server.url, mode);
    let user = User::consenting(&proxy.url, &server.key);
    let mut runs = 0;
    for _ in 0..3 {
        let run = user.democli(&["build"]);
        runs += 1;
        assert!(run.output.status.success(), "{}", run.stderr());
        assert!(run.took < BOUND, "{mode:?}: a run took {:?}", run.took);
    }
    if mode == Mode::BlackHole {
        // The first run's flusher is stuck on the black hole, in the
        // background, while the runs themselves finished.
        assert!(flushers(&user) >= 1, "no flusher waiting on the black hole");
    }
    proxy.set(Mode::Forward);
    heal(&server, &user, runs);
}

/// Keeps using democli now and then (as a user would) until every run is
/// stored; each run may start a flush once the breaker lets it.
fn heal(server: &Server, user: &User, mut runs: usize) {
    let mut last_run = Instant::now();
    let healed = tally_testkit::within(DELIVERY_DEADLINE, || {
        let events = server.events();
        assert_eq!(ids(&events).len(), events.len(), "an id stored twice");
        if events.len() == runs && user.spooled().is_empty() {
            return Some(());
        }
        if last_run.elapsed() > Duration::from_secs(3) {
            let run = user.democli(&["build"]);
            assert!(run.took < BOUND, "a run took {:?}", run.took);
            runs += 1;
            last_run = Instant::now();
        }
        None
    });
    assert!(
        healed.is_some(),
        "{} of {runs} runs stored; spool: {:?}",
        server.events().len(),
        user.spooled()
    );
    // No flusher outlives its hard limit or piles up, and none still on
    // its way makes a run count twice.
    user.wait_flushers_gone();
    assert_eq!(server.events().len(), runs);
}

#[test]
fn endpoint_down() {
    let server = Server::start();
    let mut user = User::consenting(&closed_port(), &server.key);
    for _ in 0..3 {
        let run = user.democli(&["build"]);
        assert!(run.took < BOUND, "a run took {:?}", run.took);
    }
    user.set_endpoint(&server.url);
    heal(&server, &user, 3);
}

#[test]
fn endpoint_black_holed() {
    survives(Mode::BlackHole);
}

#[test]
fn endpoint_slow() {
    survives(Mode::Slow(Duration::from_secs(5)));
}

#[test]
fn endpoint_answering_500() {
    survives(Mode::Status(500, None));
}

#[test]
fn endpoint_answering_429_with_retry_after() {
    survives(Mode::Status(429, Some(1)));
}

#[test]
fn twenty_parallel_runs_are_twenty_events() {
    let server = Server::start();
    let user = User::consenting(&server.url, &server.key);
    let children: Vec<_> = (0..20)
        .map(|_| user.command(&["build"]).spawn().expect("spawn"))
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    user.wait_spool_empty();
    let events = server.wait_for(20);
    assert_eq!(events.len(), 20);
    assert_eq!(ids(&events).len(), 20);
    // No torn or leftover files: the spool is empty, not merely unreadable.
    assert!(user.spooled().is_empty());
    user.wait_flushers_gone();
    assert_eq!(server.events().len(), 20);
}
