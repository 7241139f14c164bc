//! `tally demo-data` tells the story the dashboard is demonstrated with.

use serde_json::Value;

use crate::support::{data_dir, tally};

fn report(data: &str, args: &[&str]) -> Value {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--app", "democli", "--data", data, "--format", "json"]);
    let (ok, stdout, stderr) = tally(&all);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).expect("json")
}

fn rows<'a>(report: &'a Value, table: &str) -> &'a Vec<Value> {
    report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == table)
        .and_then(|t| t["rows"].as_array())
        .expect("rows")
}

#[test]
fn demo_data_has_a_regression_a_phase_out_and_every_audience() {
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8");
    let (ok, _, stderr) = tally(&["demo-data", "--data", data, "--events", "30000"]);
    assert!(ok, "{stderr}");

    let commands = report(data, &["commands"]);
    assert_eq!(rows(&commands, "commands").len(), 8);

    // 1.2.0 broke deploy; 1.2.1 fixed it.
    let health = report(data, &["health"]);
    let deploy = |version: &str| {
        rows(&health, "commands")
            .iter()
            .find(|r| r[0] == "deploy" && r[1] == version)
            .unwrap_or_else(|| panic!("no deploy {version}"))
            .clone()
    };
    assert_eq!(deploy("1.2.0")[8], true, "1.2.0 deploy is flagged");
    assert_eq!(deploy("1.2.1")[8], false);

    // --legacy-output is gone in 2.0.0.
    let legacy = report(
        data,
        &["deprecation", "--flag=--legacy-output", "--days", "120"],
    );
    let versions: Vec<&Value> = rows(&legacy, "by_version").iter().map(|r| &r[0]).collect();
    assert!(!versions.is_empty());
    assert!(!versions.iter().any(|v| *v == "2.0.0"), "{versions:?}");

    let environments = report(data, &["environments"]);
    let envs: Vec<&Value> = rows(&environments, "env").iter().map(|r| &r[0]).collect();
    for env in ["human", "ci", "agent"] {
        assert!(envs.iter().any(|e| *e == env), "{env} missing: {envs:?}");
    }
}
