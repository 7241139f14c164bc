//! `tally privacy-report`: the disclosure names every field an event can
//! carry, the app's retention and its switches.

use crate::support::{data_dir, tally};

#[test]
fn the_privacy_report_names_every_field_the_retention_and_the_switches() {
    let dir = data_dir();
    let config = dir.path().join("tally.toml");
    std::fs::write(
        &config,
        "[apps.my-cli]\nkeep_events_days = 395\nkeep_rollups_days = 1825\n\
         [apps.my-cli.schema.events.\"cache.hit\".properties]\n\
         layer = { type = \"string\", values = [\"memory\", \"disk\"], report = true }\n\
         size_mb = { type = \"number\", min = 0, max = 100000 }\n",
    )
    .expect("config");
    let (ok, page, stderr) = tally(&[
        "privacy-report",
        "--app",
        "my-cli",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{stderr}");
    // What the app's schema declares is listed, and where it is published.
    for line in [
        "| `cache.hit` | `layer` | string: memory, disk | yes |",
        "| `cache.hit` | `size_mb` | number, 0 to 100000 | no |",
        "`/v1/apps/my-cli/schema`",
    ] {
        assert!(page.contains(line), "{line} not in {page}");
    }
    // An event with every field set: each must be explained.
    let mut event = tally_testkit::events::sample(1, "my-cli", time::OffsetDateTime::now_utc());
    let e = &mut event.event;
    e.source = tally_protocol::Source::Gateway;
    e.name = Some("cache.hit".into());
    e.outcome = Some(tally_protocol::Outcome::Crash);
    (e.os_version, e.ci, e.agent) = (
        Some("14.4".into()),
        Some("gitlab".into()),
        Some("cursor".into()),
    );
    (e.tty, e.container, e.wsl) = (Some(true), Some(true), Some(true));
    assert!(e.error.is_some() && !e.deps.is_empty() && !e.properties.is_empty());
    let fields = serde_json::to_value(&event.event).expect("json");
    for field in fields.as_object().expect("object").keys() {
        assert!(
            page.contains(&format!("| `{field}` |")),
            "{field} is not explained:\n{page}"
        );
    }
    for said in [
        "# Telemetry of my-cli",
        "Each event as sent: 395 days",
        "(what the maintainers' reports show): 1825 days",
        "`MY_CLI_TELEMETRY_DISABLED=1`",
        "`DO_NOT_TRACK=1`",
        "## What is never collected",
    ] {
        assert!(page.contains(said), "{said:?} missing:\n{page}");
    }
    assert!(!page.contains("## Requests to the API"), "{page}");
    let (ok, page, _) = tally(&["privacy-report", "--app", "my-cli", "--gateway"]);
    assert!(ok);
    assert!(page.contains("## Requests to the API"), "{page}");
    assert!(page.contains("until the maintainers delete them"), "{page}");
}

/// `tally forget` erases an install through the server that holds the
/// data dir, and on the store itself when no server does.
#[test]
fn tally_forget_erases_an_install_through_the_server_or_the_store() {
    use crate::support::{TestServer, add_app, export};
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8");
    let key = add_app(dir.path(), "app");
    let mut server = TestServer::start(dir.path());
    let installs = [
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    ];
    let events: Vec<_> = [0, 0, 1, 2]
        .into_iter()
        .map(|i| {
            let mut e = tally_testkit::events::fresh("app");
            e.install_id = installs[i];
            e
        })
        .collect();
    let (status, answer) = server.send(&key, &events);
    assert_eq!(status, 200, "{answer}");
    let forget = |install: uuid::Uuid, app: &str| {
        let id = install.to_string();
        tally(&["forget", "--data", data, "--install-id", &id, "--app", app])
    };
    let (ok, said, stderr) = forget(installs[0], "app");
    assert!(ok, "{stderr}");
    assert!(said.contains("2 event(s)"), "{said}");
    assert!(server.terminate().success());
    let (ok, said, stderr) = forget(installs[1], "app");
    assert!(ok, "{stderr}");
    assert!(said.contains("1 event(s)"), "{said}");
    let left: Vec<_> = export(dir.path(), "app")
        .iter()
        .map(|e| e["install_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(left, [installs[2].to_string()]);
    let (ok, _, stderr) = forget(installs[2], "nope");
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no app \"nope\""), "{stderr}");
}
