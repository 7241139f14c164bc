//! `<APP>_TELEMETRY_DEBUG=1` in a real process: this test binary is also a
//! small CLI built on the SDK (and so that CLI's flusher too). Run with the
//! debug variable and an endpoint that cannot be reached, it must say on
//! its stderr why the send failed, and keep the event for a later run; the
//! next run, held back by the breaker, says why it sends nothing.
//!
//! `harness = false`: the flusher is started as this executable with the
//! SDK's own arguments, which libtest would take for a test filter.

use std::path::Path;
use std::process::{Command, ExitCode, Output};

/// Set when this binary runs as the CLI.
const CLI: &str = "TALLY_DEBUG_MODE_TEST_CLI";

fn main() -> ExitCode {
    if std::env::var_os(CLI).is_some() {
        return cli();
    }
    if cfg!(not(unix)) {
        // HOME does not move the config and cache dirs there.
        println!("debug_mode: skipped (not unix)");
        return ExitCode::SUCCESS;
    }
    a_failed_send_says_why_on_stderr_and_keeps_the_event("http");
    if cfg!(not(feature = "tls")) {
        a_failed_send_says_why_on_stderr_and_keeps_the_event("https");
    }
    ExitCode::SUCCESS
}

/// The CLI: `enable`, `status`, or one recorded run of `deploy --force`.
fn cli() -> ExitCode {
    let telemetry = tally::Tally::builder("debugcli", "1.0.0").build();
    let action = match std::env::args().nth(1).as_deref() {
        Some("enable") => tally::Action::Enable,
        Some("status") => tally::Action::Status,
        _ => {
            telemetry.start("deploy", &["--force"]).finish(0);
            return ExitCode::SUCCESS;
        }
    };
    match telemetry.telemetry_command(action, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("debugcli: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(home: &Path, endpoint: &str, args: &[&str]) -> Output {
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env(CLI, "1")
        .env("DEBUGCLI_TELEMETRY_ENDPOINT", endpoint)
        .env("DEBUGCLI_TELEMETRY_KEY", "tk_0123456789abcdef")
        .env("DEBUGCLI_TELEMETRY_DEBUG", "1")
        .output()
        .expect("run the cli");
    assert!(output.status.success(), "{args:?}: {output:?}");
    output
}

fn a_failed_send_says_why_on_stderr_and_keeps_the_event(scheme: &str) {
    let home = tempfile::tempdir().expect("tempdir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    drop(listener);
    run_cli(home.path(), &endpoint, &["enable"]);

    // The flusher writes to the run's stderr, so the output, complete once
    // every writer has closed it, holds the flusher's line too.
    let run = run_cli(home.path(), &endpoint, &["deploy", "--force"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("[debugcli telemetry] {") && stderr.contains(r#""command":"deploy""#),
        "the event is printed: {stderr}"
    );
    let failed = format!("[debugcli telemetry] sending to {endpoint}/v1/batch failed: ");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&failed))
        .unwrap_or_else(|| panic!("no line saying the send failed: {stderr}"));
    let why = if scheme == "https" {
        "https needs the SDK's `tls` feature"
    } else {
        "refused"
    };
    assert!(line.to_lowercase().contains(&why.to_lowercase()), "{line}");

    // The next run starts no flusher while the breaker is open, and says why.
    let again = run_cli(home.path(), &endpoint, &["deploy"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    let waiting = format!(
        "[debugcli telemetry] not sending to {endpoint} yet: 1 send(s) in a row failed, the last with: "
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&waiting))
        .unwrap_or_else(|| panic!("no line saying why nothing is sent: {stderr}"));
    assert!(line.to_lowercase().contains(&why.to_lowercase()), "{line}");

    let status = run_cli(home.path(), &endpoint, &["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("Waiting to be sent: 2 event(s)"),
        "{status}"
    );
    println!("debug_mode: a failed {scheme} send says why on stderr ... ok");
}
