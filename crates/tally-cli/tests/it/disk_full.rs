//! A full disk under a running server, and a server started on one: ingest
//! is refused 507 with a reason, the server never stops, and once there is
//! room every acknowledged event is stored, each once.
//!
//! The data dir is on a tmpfs of fixed size (mounting one needs root, which
//! CI has; elsewhere the tests say so and pass), filled by a file but for a
//! little room, which the server's ingest then uses up.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tally_protocol::Event;
use tally_testkit::disk::Tmpfs;
use tally_testkit::events::fresh;
use tally_testkit::eventually;

use crate::support::{TestServer, add_app, export, ids};

/// Room enough for the journal's first two segments (16 MiB each), the
/// database and the filler.
const DISK: &str = "64m";
/// What the filler leaves free: the room ingest then fills.
const LEFT_FREE: u64 = 2 << 20;
const APP: &str = "full";
/// The server looks for room every 2 s; loading what waited takes a few.
const RECOVERY: Duration = Duration::from_secs(60);

/// Sends batches until the server refuses one; a report after each makes
/// the loader commit, so that the database, not only the journal, meets
/// the full disk. Returns the ids acknowledged and the batch refused.
fn ingest_until_refused(server: &TestServer, key: &str) -> (HashSet<String>, Vec<Event>) {
    let token = server.admin_token();
    let mut acked = HashSet::new();
    for _ in 0..2000 {
        let batch: Vec<Event> = (0..500).map(|_| fresh(APP)).collect();
        let (status, body) = server.send(key, &batch);
        if status != 200 {
            assert_disk_full(status, &body);
            return (acked, batch);
        }
        acked.extend(batch.iter().map(|e| e.id.to_string()));
        server.get(&format!("/api/v1/reports/commands?app={APP}"), Some(&token));
    }
    panic!("the server never refused a batch on a full disk");
}

fn assert_disk_full(status: u16, body: &Value) {
    assert_eq!(status, 507, "a full disk is 507: {body}");
    assert_eq!(body["error"], "disk_full", "{body}");
    let reason = body["reason"].as_str().expect("a reason");
    assert!(reason.contains("disk is full"), "{reason}");
}

/// The server says it cannot take events (naming no file, as anyone may
/// ask): failing in `/healthz`, not
/// ready in `/readyz`, as a load balancer checks.
fn assert_failing(server: &TestServer) {
    let health = eventually(RECOVERY, "the server shows its full disk", || {
        let (_, health) = server.get("/healthz", None);
        (health.contains("\"failing\"") && health.contains("disk is full")).then_some(health)
    });
    let data = server.data.to_string_lossy();
    assert!(
        !health.contains(&*data),
        "/healthz is open: no paths {health}"
    );
    assert_eq!(server.get_status("/readyz"), Some(503));
}

fn assert_running(server: &mut TestServer) {
    let exited = server.child.try_wait().expect("try_wait");
    assert!(exited.is_none(), "the server exited: {exited:?}");
}

/// Makes room, then resends `refused` as a client does until it is taken;
/// then every event acknowledged is stored, each once.
fn make_room_and_check(
    server: &mut TestServer,
    key: &str,
    filler: &Path,
    mut acked: HashSet<String>,
    refused: &[Event],
) {
    std::fs::remove_file(filler).expect("remove the filler");
    eventually(RECOVERY, "ingest takes events again", || {
        let (status, body) = server.send(key, refused);
        match status {
            200 => Some(()),
            _ => {
                assert_disk_full(status, &body);
                None
            }
        }
    });
    acked.extend(refused.iter().map(|e| e.id.to_string()));
    assert_eq!(server.get_status("/readyz"), Some(200));
    let stored = ids(&export(&server.data, APP));
    let unique: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "no event stored twice");
    let lost = acked.difference(&unique).count();
    assert_eq!(lost, 0, "{lost} acknowledged events lost");
    assert_eq!(unique, acked, "only what was acknowledged is stored");
    assert_running(server);
}

#[test]
fn a_full_disk_refuses_ingest_507_and_loads_everything_once_there_is_room() {
    let Some(disk) = Tmpfs::mount(DISK) else {
        return;
    };
    let data = disk.path().join("data");
    let mut server = TestServer::start_with(&data, &["--client-requests-per-second", "100000"]);
    let key = add_app(&data, APP);
    let filler = disk.fill_but(LEFT_FREE);
    let (acked, refused) = ingest_until_refused(&server, &key);
    assert!(
        !acked.is_empty(),
        "some batches fitted before the disk was full"
    );
    assert_failing(&server);
    let (status, body) = server.send(&key, &refused);
    assert_disk_full(status, &body);
    assert_running(&mut server);
    make_room_and_check(&mut server, &key, &filler, acked, &refused);
}

#[test]
fn a_server_killed_on_a_full_disk_starts_on_it_and_loads_once_there_is_room() {
    let Some(disk) = Tmpfs::mount(DISK) else {
        return;
    };
    let data = disk.path().join("data");
    let args = ["--client-requests-per-second", "100000"];
    let mut server = TestServer::start_with(&data, &args);
    let key = add_app(&data, APP);
    let filler = disk.fill_but(LEFT_FREE);
    let (acked, refused) = ingest_until_refused(&server, &key);
    server.signal("KILL");
    server.wait();

    // The journal holds acknowledged events the database has no room for:
    // the server starts all the same, and refuses until there is room.
    let mut server = TestServer::start_with(&data, &args);
    let (status, body) = server.send(&key, &refused);
    assert_disk_full(status, &body);
    assert_failing(&server);
    assert_running(&mut server);
    make_room_and_check(&mut server, &key, &filler, acked, &refused);
}
