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
