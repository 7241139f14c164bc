//! What must stay private: the data dir from other users of the machine.

use tally_testkit::events::fresh;

use crate::support::{TestServer, add_app, data_dir, export};

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
