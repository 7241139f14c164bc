//! What must stay private: the data dir from other users of the machine,
//! the ClickHouse password from messages and `ps`.

use std::process::Command;

use tally_testkit::events::fresh;

use crate::support::{TALLY, TestServer, add_app, data_dir, export, tally};

/// Every folder in `dir` (and itself) as `0700`, every file as `0600`.
#[cfg(unix)]
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[cfg(unix)]
#[test]
fn the_data_dir_is_its_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = data_dir();
    let data = parent.path().join("data");
    let key = add_app(&data, "private");
    let server = TestServer::start(&data);
    assert_eq!(server.send(&key, &[fresh("private")]).0, 200);
    let names: Vec<String> = std::fs::read_dir(&data)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for made in ["admin-token", "journal", "server.json", "tally.duckdb"] {
        assert!(names.iter().any(|n| n == made), "{made} in {names:?}");
    }
    assert_private(&data);
    drop(server);

    // A data dir an older Tally left open is closed when it is opened.
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(&data, open.clone()).expect("chmod");
    std::fs::set_permissions(data.join("journal"), open).expect("chmod");
    assert_eq!(export(&data, "private").len(), 1);
    assert_private(&data);
}

/// Runs `tally` with `env` set; returns exit status, stdout, stderr.
fn tally_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(TALLY)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run tally");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_clickhouse_password_is_never_shown() {
    // Nothing listens on port 1: every attempt fails, and says so.
    let in_url = "clickhouse://ana:s3cret@127.0.0.1:1/tally";
    let report = ["report", "commands", "--app", "mycli", "--store"];
    let (ok, _, stderr) = tally(&[&report[..], &[in_url]].concat());
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ana:***@127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let dir = data_dir();
    let file = dir.path().join("password");
    std::fs::write(&file, "fr0m-file\n").expect("write");
    let file = file.to_str().expect("utf-8");
    let apart = "clickhouse://ana@127.0.0.1:1/tally";
    let (ok, _, stderr) =
        tally(&[&report[..], &[apart, "--clickhouse-password-file", file]].concat());
    assert!(!ok);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("fr0m-file"), "{stderr}");
    let (ok, _, stderr) = tally_with_env(
        &[&report[..], &[apart]].concat(),
        &[("TALLY_CLICKHOUSE_PASSWORD", "fr0m-env")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("127.0.0.1:1") && !stderr.contains("fr0m-env"),
        "{stderr}"
    );
    let (ok, _, stderr) =
        tally(&[&report[..], &[in_url, "--clickhouse-password-file", file]].concat());
    assert!(!ok);
    assert!(stderr.contains("give one"), "two passwords: {stderr}");
    assert!(
        !stderr.contains("s3cret") && !stderr.contains("fr0m-file"),
        "{stderr}"
    );

    // --help shows where the store comes from, not the URL in it.
    let (ok, help, _) = tally_with_env(&["report", "--help"], &[("TALLY_STORE", in_url)]);
    assert!(ok);
    assert!(
        help.contains("TALLY_STORE") && !help.contains("s3cret"),
        "{help}"
    );
}
