//! `democli telemetry forget` against a real server: the install's events
//! are erased, the spool goes, and the next runs come under a new id.

use serde_json::Value;

use crate::support::{Server, User, closed_port};

/// The install id of `user`'s config file.
fn install_id(user: &User) -> String {
    let path = user.config_home().join("democli").join("telemetry.json");
    let settings: Value =
        serde_json::from_slice(&std::fs::read(path).expect("config")).expect("json");
    settings["install_id"].as_str().expect("id").to_owned()
}

fn installs(events: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| e["install_id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn forget_erases_the_install_on_the_server_and_starts_a_new_one() {
    let server = Server::start();
    let (leaving, staying) = (
        User::consenting(&server.url, &server.key),
        User::consenting(&server.url, &server.key),
    );
    for user in [&leaving, &staying, &leaving] {
        assert!(user.democli(&["build"]).output.status.success());
        user.wait_spool_empty();
    }
    let old = install_id(&leaving);
    assert_eq!(installs(&server.wait_for(3)).len(), 2);

    let forget = leaving.democli(&["telemetry", "forget"]);
    assert!(forget.output.status.success(), "{}", forget.stderr());
    let said = forget.stdout();
    assert!(
        said.contains(&format!("erased 2 event(s) of install {old}")),
        "{said}"
    );
    let new = install_id(&leaving);
    assert_ne!(new, old);
    assert!(said.contains(&format!("has a new id, {new}")), "{said}");
    assert_eq!(installs(&server.events()), [install_id(&staying)]);

    assert!(leaving.democli(&["build"]).output.status.success());
    leaving.wait_spool_empty();
    let mut expected = vec![install_id(&staying), new];
    expected.sort();
    assert_eq!(installs(&server.wait_for(2)), expected);
}

/// A server that cannot be reached changes nothing: the id (and the
/// secret that proves it) stay, for another try.
#[test]
fn forget_without_the_server_keeps_the_install() {
    let server = Server::start();
    let mut user = User::consenting(&server.url, &server.key);
    let before = install_id(&user);
    user.set_endpoint(&closed_port());
    let forget = user.democli(&["telemetry", "forget"]);
    assert!(!forget.output.status.success());
    let stderr = forget.stderr();
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(install_id(&user), before);
}
