//! CLIs instrumented with PostHog's or Segment's own client libraries,
//! from PyPI and npm, sending to a real server on loopback through a proxy
//! that loses the first answer: each client sends its batch again, and
//! every event is stored once, mapped as docs/compat.md says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tally_testkit::clients;
use tally_testkit::proxy::LosingAnswers;
use tally_testkit::server::RunningServer;

const POSTHOG_PYTHON: &[&str] = &["posthog==7.91.1"];
const SEGMENT_PYTHON: &[&str] = &["segment-analytics-python==2.4.0"];
const POSTHOG_NODE: &[&str] = &["posthog-node@5.70.0"];
const SEGMENT_NODE: &[&str] = &["@segment/analytics-node@3.1.0"];

/// The user id every client sends: an e-mail, which must never be stored.
const USER: &str = "ada@example.com";

/// A client library, as its registry has it.
enum Client {
    /// PyPI packages; the script runs with `python -c`.
    Python(&'static [&'static str]),
    /// npm packages; the script runs with `node -e` beside them.
    Node(&'static [&'static str]),
    /// A Cargo package under tests/clients, and its binary (no script).
    Rust(&'static str, &'static str),
}

/// Runs `script` with `client` against a fresh server with app `mycli`,
/// through a proxy that loses the server's first answer, and returns the
/// app's events once `n` are stored; `None` (the test skips, loudly) when
/// the client's registry is out of reach. The script finds the server's
/// URL, the app's key and the user id in `HOST`, `KEY` and `USER_ID`.
fn deliver(client: Client, script: &str, n: usize) -> Option<Vec<Value>> {
    let mut command = match client {
        Client::Python(packages) => {
            let mut command = Command::new(clients::python(packages)?);
            command.args(["-c", script]);
            command
        }
        Client::Node(packages) => {
            let mut command = Command::new("node");
            command
                .current_dir(clients::node(packages)?)
                .args(["-e", script]);
            command
        }
        Client::Rust(package, binary) => {
            // Cargo runs a test in its package's directory; the path
            // compiled in would be wherever the binary was first built (a
            // target dir outlives the checkouts that share it).
            let dir = Path::new("tests/clients").join(package);
            Command::new(clients::rust(&dir, binary)?)
        }
    };
    let server = RunningServer::start();
    let key = server.add_app("mycli");
    let addr = server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("server address");
    let proxy = LosingAnswers::start(addr, 1);
    let output = command
        .env("HOST", &proxy.url)
        .env("KEY", &key)
        .env("USER_ID", USER)
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "the client script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(proxy.lost(), 1, "the first answer was lost");
    Some(stored(&server, n))
}

/// The app's events once `n` are stored, by name ("" for invocations).
fn stored(server: &RunningServer, n: usize) -> Vec<Value> {
    tally_testkit::eventually(Duration::from_secs(20), "the events stored", || {
        let events = server.export("mycli");
        (events.len() >= n).then_some(events)
    });
    // Give a late duplicate the time to land, were dedupe to fail.
    std::thread::sleep(Duration::from_millis(300));
    let events = server.export("mycli");
    assert_eq!(events.len(), n, "{events:#?}");
    let text = server.export_text("mycli");
    assert!(!text.contains(USER), "the user id is stored raw: {text}");
    events
}

fn named<'a>(events: &'a [Value], name: Option<&str>) -> &'a Value {
    events
        .iter()
        .find(|e| e["name"].as_str() == name)
        .unwrap_or_else(|| panic!("no event named {name:?} in {events:#?}"))
}

/// What every client's invocation event says (see the scripts).
fn assert_invocation(event: &Value, os: &str) {
    assert_eq!(event["command"], "deploy", "{event}");
    assert_eq!(event["exit_code"], 1, "{event}");
    assert_eq!(event["duration_ms"], 1234, "{event}");
    assert_eq!(
        event["flags"],
        serde_json::json!(["--force", "--token"]),
        "{event}"
    );
    assert_eq!(event["app_version"], "1.2.0", "{event}");
    assert_eq!(event["os"], os, "{event}");
    assert_eq!(event["properties"]["region"], "eu", "{event}");
    let install = event["install_id"].as_str().expect("install id");
    assert_eq!(
        uuid::Uuid::parse_str(install)
            .expect("uuid")
            .get_version_num(),
        8,
        "a user id that is no UUID is stored as its keyed hash: {install}"
    );
}

/// The properties every client's invocation event sends.
const PROPERTIES: &str = r#"{"command": "deploy", "exit_code": 1, "duration_ms": 1234,
    "flags": ["--force", "--token=abc"], "app_version": "1.2.0", "region": "eu"}"#;

#[test]
fn posthog_python_events_arrive_once_through_a_lost_answer() {
    let script = format!(
        r#"
import os
from posthog import Posthog
p = Posthog(os.environ["KEY"], host=os.environ["HOST"], gzip=True, flush_at=10, max_retries=5)
user = os.environ["USER_ID"]
p.capture("invocation", distinct_id=user, properties={PROPERTIES})
p.capture("cache.hit", distinct_id=user, properties={{"size": 3}})
p.set(distinct_id=user, properties={{"email": user}})
p.shutdown()
"#
    );
    let Some(events) = deliver(Client::Python(POSTHOG_PYTHON), &script, 2) else {
        return;
    };
    assert_invocation(named(&events, None), "linux");
    let custom = named(&events, Some("cache.hit"));
    assert_eq!(custom["properties"]["size"], 3, "{custom}");
    assert_eq!(custom["properties"]["lib"], "posthog-python", "{custom}");
    assert_eq!(
        custom["install_id"],
        named(&events, None)["install_id"],
        "one user, one install"
    );
}

/// PostHog's newer capture (per-event results, a bearer token, deflate),
/// which posthog-python takes with `capture_mode="v1"`.
#[test]
fn posthog_python_v1_capture_arrives_once_through_a_lost_answer() {
    let script = format!(
        r#"
import os
from posthog import Posthog
p = Posthog(os.environ["KEY"], host=os.environ["HOST"], capture_mode="v1",
    capture_compression="deflate", flush_at=10, max_retries=5)
user = os.environ["USER_ID"]
p.capture("invocation", distinct_id=user, properties={PROPERTIES})
p.capture("cache.hit", distinct_id=user, properties={{"size": 3}})
p.shutdown()
"#
    );
    let Some(events) = deliver(Client::Python(POSTHOG_PYTHON), &script, 2) else {
        return;
    };
    assert_invocation(named(&events, None), "linux");
    assert_eq!(named(&events, Some("cache.hit"))["properties"]["size"], 3);
}

#[test]
fn segment_python_events_arrive_once_through_a_lost_answer() {
    let script = format!(
        r#"
import os
from segment.analytics import Client
c = Client(os.environ["KEY"], host=os.environ["HOST"], gzip=True, max_retries=5)
user = os.environ["USER_ID"]
c.track(user_id=user, event="invocation", properties={PROPERTIES},
    context={{"os": {{"name": "Mac OS X", "version": "14.4"}}}})
c.identify(user_id=user, traits={{"email": user}})
c.page(user_id=user, name="Docs", properties={{"url": "https://example.com/?e=" + user}})
c.flush()
c.join()
"#
    );
    let Some(events) = deliver(Client::Python(SEGMENT_PYTHON), &script, 2) else {
        return;
    };
    let invocation = named(&events, None);
    assert_invocation(invocation, "macos");
    assert_eq!(invocation["os_version"], "14.4", "{invocation}");
    let page = named(&events, Some("page"));
    assert_eq!(page["properties"]["name"], "Docs", "{page}");
    assert!(page["properties"].get("url").is_none(), "{page}");
}

#[test]
fn posthog_node_events_arrive_once_through_a_lost_answer() {
    let script = format!(
        r#"
const {{ PostHog }} = require('posthog-node');
const client = new PostHog(process.env.KEY, {{ host: process.env.HOST, flushAt: 10,
    fetchRetryCount: 5, fetchRetryDelay: 200 }});
const user = process.env.USER_ID;
client.capture({{ distinctId: user, event: 'invocation', properties: {PROPERTIES} }});
client.capture({{ distinctId: user, event: 'cache.hit', properties: {{ size: 3 }} }});
client.shutdown().then(() => process.exit(0), (e) => {{ console.error(e); process.exit(1); }});
"#
    );
    let Some(events) = deliver(Client::Node(POSTHOG_NODE), &script, 2) else {
        return;
    };
    assert_invocation(named(&events, None), "unknown");
    assert_eq!(
        named(&events, Some("cache.hit"))["properties"]["lib"],
        "posthog-node"
    );
}

#[test]
fn segment_node_events_arrive_once_through_a_lost_answer() {
    let script = format!(
        r#"
const {{ Analytics }} = require('@segment/analytics-node');
const analytics = new Analytics({{ writeKey: process.env.KEY, host: process.env.HOST,
    maxRetries: 5, flushAt: 10, httpRequestTimeout: 5000 }});
analytics.on('error', (e) => console.error('segment error', e));
const user = process.env.USER_ID;
analytics.track({{ userId: user, event: 'invocation', properties: {PROPERTIES},
    context: {{ os: {{ name: 'Linux', version: '6.1' }} }} }});
analytics.identify({{ userId: user, traits: {{ email: user }} }});
analytics.closeAndFlush().then(() => process.exit(0), (e) => {{ console.error(e); process.exit(1); }});
"#
    );
    let Some(events) = deliver(Client::Node(SEGMENT_NODE), &script, 1) else {
        return;
    };
    assert_invocation(named(&events, None), "linux");
}

/// The posthog-rs crate from crates.io (tests/clients/posthog-rs), built
/// into the clients cache on first use.
#[test]
fn posthog_rs_events_arrive_once_through_a_lost_answer() {
    let Some(events) = deliver(Client::Rust("posthog-rs", "posthog-rs-client"), "", 2) else {
        return;
    };
    assert_invocation(named(&events, None), "linux");
    assert_eq!(named(&events, Some("cache.hit"))["properties"]["size"], 3);
}
