//! What an attacker holding a public ingest key sends, read back by the
//! maintainer: it must not act on their spreadsheet, terminal or secrets.

use tally_testkit::events::fresh;

use crate::support::{TestServer, add_app, data_dir, tally};

/// Writes the reader's clipboard when printed raw (OSC 52).
const OSC_52: &str = "\u{1b}]52;c;cHdu\u{7}";

#[test]
fn reports_neutralise_formulas_and_terminal_escapes() {
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let key = add_app(dir.path(), "hostile");
    let mut event = fresh("hostile");
    event.command = "=HYPERLINK(\"http://x\")".into();
    event.flags = vec![format!("--x{OSC_52}"), "--y\u{1b}[2J".into()];
    let server = TestServer::start(dir.path());
    let (status, body) = server.send(&key, &[event]);
    assert_eq!(status, 200, "{body}");

    let report = |name: &str, format: &str| {
        let (ok, stdout, stderr) = tally(&[
            "report", name, "--app", "hostile", "--data", &data, "--format", format,
        ]);
        assert!(ok, "report {name} --format {format}: {stderr}");
        stdout
    };
    let csv = report("commands", "csv");
    assert!(
        csv.contains("\n\"'=HYPERLINK(\"\"http://x\"\")\",1,"),
        "the command is text to a spreadsheet: {csv}"
    );
    let flags_csv = report("flags", "csv");
    assert!(
        flags_csv.contains(",'--x\\u{1b}]52;c;cHdu\\u{7},") && !flags_csv.contains('\u{1b}'),
        "{flags_csv}"
    );
    let commands = report("commands", "table");
    let flags = report("flags", "table");
    for table in [&commands, &flags] {
        assert!(!table.contains(['\u{1b}', '\u{7}']), "{table:?}");
    }
    assert!(flags.contains("--x\\u{1b}]52;c;cHdu\\u{7}"), "{flags}");
    assert!(flags.contains("--y\\u{1b}[2J"), "{flags}");
    // JSON keeps the exact text, in escapes that are safe to print.
    let json = report("flags", "json");
    assert!(json.contains("--x\\u001b]52;c;cHdu\\u0007"), "{json}");
}

/// Under the common limit of 1024 open files (here 300), a full cap of
/// connections would leave the server no descriptor to accept with or to
/// open its store's files: it lowers the cap to fit, and keeps answering.
#[test]
fn connections_past_the_open_file_limit_take_turns_not_fatal() {
    let data = crate::support::data_dir();
    let server = TestServer::start_with_open_files(data.path(), 300);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let held: Vec<std::net::TcpStream> = (0..400)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    // Over the lowered cap (44 here, not 1024): a new connection takes the
    // place of an idle one, and the server never runs out of descriptors.
    // (Each connection over the cap waits for the one it evicted; under
    // load the chain of 356 may outlast a wait, and that one is refused.)
    tally_testkit::eventually(std::time::Duration::from_secs(30), "answered", || {
        (server.get("/healthz", None).0 == 200).then_some(())
    });
    let (_, metrics) = server.get("/metrics", None);
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tally_connections_evicted_total "))
        .and_then(|n| n.trim().parse::<f64>().ok());
    assert!(evicted.is_some_and(|n| n > 0.0), "{metrics}");
    drop(held);
    let key = add_app(data.path(), "limited");
    let (status, body) = server.send(&key, &[fresh("limited")]);
    assert_eq!(status, 200, "{body}");
}
