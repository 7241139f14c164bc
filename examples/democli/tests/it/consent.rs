//! The consent state machine, from the outside: what is shown, written and
//! sent for each combination of settings.

use std::path::Path;

use crate::support::{Server, User, files_in};

/// Everything the SDK wrote under the user's cache dir.
fn written(user: &User) -> Vec<std::path::PathBuf> {
    ["spool", "running"]
        .iter()
        .flat_map(|d| files_in(&user.cache_dir().join(d)))
        .collect()
}

fn config_file(user: &User) -> std::path::PathBuf {
    user.config_home().join("democli").join("telemetry.json")
}

fn status(user: &User) -> String {
    let run = user.democli(&["telemetry", "status"]);
    assert!(run.output.status.success(), "{}", run.stderr());
    run.stdout()
}

/// Runs democli twice and says whether anything was recorded (tests that
/// expect a recording point the user at a closed port, so the spool keeps it).
fn records(user: &User) -> bool {
    for _ in 0..2 {
        let run = user.democli(&["build"]);
        assert!(run.output.status.success(), "{}", run.stderr());
    }
    !written(user).is_empty()
}

#[test]
fn the_first_run_shows_the_notice_and_records_nothing() {
    let server = Server::start();
    let user = User::new(&server.url, &server.key);
    // `status` only looks: no notice, no config file.
    assert!(status(&user).contains("not set up yet"));
    assert!(!config_file(&user).exists());

    let first = user.democli(&["build"]);
    assert!(
        first
            .stderr()
            .contains("democli collects anonymous usage data")
    );
    assert!(first.stderr().contains("DO_NOT_TRACK=1"));
    assert!(
        written(&user).is_empty(),
        "the notice run recorded: {:?}",
        written(&user)
    );
    assert!(config_file(&user).exists());

    let second = user.democli(&["build"]);
    assert!(
        !second.stderr().contains("usage data"),
        "the notice is shown once"
    );
    assert_eq!(server.wait_for(1).len(), 1);
    assert!(status(&user).contains("Telemetry is on"));
}

#[test]
fn every_off_switch_means_nothing_written_or_sent() {
    let server = Server::start();
    let cases: [OffSwitch; 5] = [
        (
            "DO_NOT_TRACK",
            &[("DO_NOT_TRACK", "1")],
            true,
            "DO_NOT_TRACK=1",
        ),
        (
            "DO_NOT_TRACK over an enabled config and the app variable",
            &[
                ("DO_NOT_TRACK", "true"),
                ("DEMOCLI_TELEMETRY_DISABLED", "0"),
            ],
            true,
            "DO_NOT_TRACK=true",
        ),
        (
            "app variable",
            &[("DEMOCLI_TELEMETRY_DISABLED", "1")],
            true,
            "DEMOCLI_TELEMETRY_DISABLED=1",
        ),
        ("config disabled", &[], false, "Telemetry is off"),
        (
            "DO_NOT_TRACK=0 does not disable, but the config does",
            &[("DO_NOT_TRACK", "0")],
            false,
            "Telemetry is off",
        ),
    ];
    for (name, vars, enabled_in_config, says) in cases {
        let mut user = User::consenting(&server.url, &server.key);
        if !enabled_in_config {
            assert!(
                user.democli(&["telemetry", "disable"])
                    .output
                    .status
                    .success()
            );
        }
        for (k, v) in vars {
            user.env(k, v);
        }
        assert!(!records(&user), "{name}: recorded {:?}", written(&user));
        let first = user.democli(&["build"]);
        assert!(
            !first.stderr().contains("usage data"),
            "{name}: notice shown"
        );
        assert!(status(&user).contains(says), "{name}: {}", status(&user));
        // A (wrongly started) flusher would have delivered once it is gone.
        user.wait_flushers_gone();
    }
    assert!(server.events().is_empty(), "{:?}", server.events());
}

#[test]
fn an_unwritable_config_dir_means_off_and_silent() {
    let server = Server::start();
    let user = User::new(&server.url, &server.key);
    // A file where the config dir should be: unwritable even for root.
    std::fs::create_dir_all(user.config_home().parent().expect("parent")).expect("dir");
    std::fs::write(user.config_home(), b"not a dir").expect("write");
    for _ in 0..2 {
        let run = user.democli(&["build"]);
        assert!(run.output.status.success());
        assert!(
            !run.stderr().contains("usage data"),
            "a notice it cannot remember"
        );
    }
    assert!(written(&user).is_empty());
    user.wait_flushers_gone();
    assert!(server.events().is_empty());
}

#[test]
fn enabled_config_records_and_disable_deletes_the_spool() {
    let server = Server::start();
    // An endpoint that refuses connections keeps events in the spool.
    let user = User::consenting(&crate::support::closed_port(), &server.key);
    assert!(records(&user));
    let show = user.democli(&["telemetry", "show"]);
    assert!(
        show.stdout().contains("\"command\": \"build\""),
        "{}",
        show.stdout()
    );
    let disable = user.democli(&["telemetry", "disable"]);
    assert!(
        disable.stdout().contains("deleted 2 unsent event(s)"),
        "{}",
        disable.stdout()
    );
    assert!(user.spooled().is_empty());
    assert!(!records(&user));
}

#[test]
fn debug_mode_prints_events_and_why_a_send_failed() {
    let mut user = User::consenting(&crate::support::closed_port(), "tk_0123456789abcdef");
    user.env("DEMOCLI_TELEMETRY_DEBUG", "1");
    let run = user.democli(&["deploy", "--region", "eu-west-1"]);
    // In debug mode the flusher writes to the run's stderr, and the output
    // is complete only once it has closed it: its line is there too.
    let stderr = run.stderr();
    assert!(stderr.contains("[democli telemetry] {"), "{stderr}");
    assert!(stderr.contains("\"command\":\"deploy\""), "{stderr}");
    let failed = stderr
        .lines()
        .find(|l| l.starts_with("[democli telemetry] sending to http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no line saying why the send failed: {stderr}"));
    assert!(failed.to_lowercase().contains("refused"), "{failed}");
    assert!(
        !user.spooled().is_empty(),
        "the events wait for a later run"
    );
}

#[test]
fn purge_empties_the_spool() {
    let server = Server::start();
    let user = User::consenting(&crate::support::closed_port(), &server.key);
    assert!(records(&user));
    let purge = user.democli(&["telemetry", "purge"]);
    assert!(purge.stdout().contains("Deleted 2"), "{}", purge.stdout());
    assert!(user.spooled().is_empty());
    assert!(Path::new(&user.cache_dir()).exists());
}

/// A way telemetry is switched off: its name, the environment, whether the
/// config file still says "enabled", and what `telemetry status` must say.
type OffSwitch<'a> = (&'a str, &'a [(&'a str, &'a str)], bool, &'a str);
