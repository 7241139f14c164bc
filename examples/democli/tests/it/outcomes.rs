//! Failures, crashes, Ctrl-C and kill -9 each produce the right event, and
//! none carries the user's home dir, name or e-mail addresses.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tally_testkit::eventually;

use crate::support::{Server, USER_NAME, User, files_in};

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Starts `democli sleep` and waits until it is recording (its running
/// marker exists), so the signal hits a run in progress.
fn sleeping(user: &User) -> std::process::Child {
    let child = user
        .command(&["sleep", "30000"])
        .spawn()
        .expect("spawn sleep");
    eventually(Duration::from_secs(20), "a running marker", || {
        files_in(&user.cache_dir().join("running"))
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "json"))
            .then_some(())
    });
    child
}

fn by_command<'a>(events: &'a [Value], command: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["command"] == command)
        .unwrap_or_else(|| panic!("no {command} event in {events:?}"))
}

#[test]
fn failures_crashes_and_signals_report_the_right_outcome_privately() {
    let server = Server::start();
    let user = User::consenting(&server.url, &server.key);

    let fail = user.democli(&["fail"]);
    assert_eq!(fail.output.status.code(), Some(1));
    assert!(
        fail.stderr().contains("example.com"),
        "the user sees the full error"
    );

    let panic = user.democli(&["panic"]);
    assert_eq!(panic.output.status.code(), Some(101));

    let mut interrupted = sleeping(&user);
    signal(interrupted.id(), "INT");
    let status = interrupted.wait().expect("wait");
    assert!(!status.success());

    let mut killed = sleeping(&user);
    signal(killed.id(), "KILL");
    killed.wait().expect("wait");
    // The next run finds the dead run's marker and reports it.
    let next = user.democli(&["build"]);
    assert!(next.output.status.success());

    let events = server.wait_for(5);
    assert_eq!(events.len(), 5, "{events:#?}");

    let fail = by_command(&events, "fail");
    assert_eq!(fail["outcome"], "failure");
    assert_eq!(fail["exit_code"], 1);
    assert_eq!(fail["error"]["kind"], "config.missing");
    assert_eq!(
        fail["error"]["message"],
        "cannot read ~/.democli/credentials; ask <email> for access"
    );

    let crash = by_command(&events, "panic");
    assert_eq!(crash["outcome"], "crash");
    assert_eq!(crash["exit_code"], 101);
    assert_eq!(crash["error"]["kind"], "panic");
    assert_eq!(
        crash["error"]["message"],
        "state file ~/.democli/state is corrupt (report to <email>)"
    );
    assert!(
        crash["error"]["location"]
            .as_str()
            .is_some_and(|l| l.contains("main.rs:")),
        "{crash}"
    );

    let sleeps: Vec<&Value> = events.iter().filter(|e| e["command"] == "sleep").collect();
    let outcomes: Vec<&str> = sleeps
        .iter()
        .map(|e| e["outcome"].as_str().expect("outcome"))
        .collect();
    assert!(outcomes.contains(&"interrupted"), "{outcomes:?}");
    assert!(outcomes.contains(&"killed"), "{outcomes:?}");
    let interrupted = sleeps
        .iter()
        .find(|e| e["outcome"] == "interrupted")
        .expect("interrupted");
    assert_eq!(interrupted["exit_code"], 130);

    let stored = server.export_text();
    let home = user.home.display().to_string();
    for private in [USER_NAME, "example.com", home.as_str()] {
        assert!(
            !stored.contains(private),
            "{private} reached the server: {stored}"
        );
    }
}
