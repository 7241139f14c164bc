//! Forwarding to real HTTP destinations on loopback that fail, ask to wait
//! and refuse: every stored event reaches each destination once, with only
//! the fields it may have, and what a destination refuses waits as a dead
//! letter until it is replayed.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tally_forward::{Backoff, Destination};
use tally_testkit::events::fresh;
use tally_testkit::eventually;
use tally_testkit::receiver::{Receiver, Reply};
use tally_testkit::server::RunningServer;

/// A webhook secret as Standard Webhooks writes them.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn destination(text: &str) -> Destination {
    toml::from_str(text).expect("a destination")
}

/// A server forwarding app `mycli` to `destinations`, retrying quickly.
fn forwarding(destinations: Vec<Destination>) -> (RunningServer, String) {
    let server = RunningServer::start_with(|config| {
        config.forward.insert("mycli".into(), destinations);
        config.forward_options.backoff = Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_secs(2),
        };
    });
    let key = server.add_app("mycli");
    (server, key)
}

/// Posts `events` to the server's `/v1/batch` and checks it stored them.
fn send(server: &RunningServer, key: &str, events: &[tally_protocol::Event]) {
    let mut answer = ureq::post(format!("{}/v1/batch", server.url))
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(&tally_testkit::events::batch_body(events))
        .expect("send");
    let body: Value = answer.body_mut().read_json().expect("json");
    assert_eq!(body["rejected"], json!([]), "{body}");
}

/// How many times each event id reached `receiver` in an answer it gave
/// 200 to, with the events' bodies by id; `events` reads a request's
/// events, `id` an event's id.
fn delivered(
    receiver: &Receiver,
    events: impl Fn(&Value) -> Vec<Value>,
    id: &str,
) -> HashMap<String, (usize, Value)> {
    let mut seen: HashMap<String, (usize, Value)> = HashMap::new();
    for request in receiver.received().iter().filter(|r| r.status == 200) {
        for event in events(&request.json()) {
            let entry = seen
                .entry(event[id].as_str().expect("an id").to_owned())
                .or_insert((0, event.clone()));
            entry.0 += 1;
        }
    }
    seen
}

#[test]
fn every_event_reaches_each_destination_once_through_failures() {
    let (posthog, segment, webhook) = (Receiver::start(), Receiver::start(), Receiver::start());
    posthog.script([
        Reply::status(503),
        Reply {
            retry_after: Some(1),
            ..Reply::status(429)
        },
    ]);
    segment.script([Reply::status(500), Reply::status(502)]);
    webhook.script([Reply::status(408)]);
    let (server, key) = forwarding(vec![
        destination(&format!(
            "name = \"posthog\"\nkind = \"posthog\"\nurl = \"{}\"\nkey = \"phc_test\"",
            posthog.url
        )),
        destination(&format!(
            "name = \"segment\"\nkind = \"segment\"\nurl = \"{}\"\nkey = \"wk\"\nbatch_events = 40",
            segment.url
        )),
        destination(&format!(
            "name = \"hooks\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nsecret = \"{SECRET}\"\nfields = [\"command\", \"error.message\"]",
            webhook.url
        )),
    ]);
    let events: Vec<_> = (0..300)
        .map(|i| {
            let mut e = fresh("mycli");
            if i % 10 == 0 {
                e.error = Some(tally_protocol::ErrorInfo {
                    kind: "io".into(),
                    message: "cannot open <path>".into(),
                    location: None,
                });
            }
            e
        })
        .collect();
    for batch in events.chunks(100) {
        send(&server, &key, batch);
    }
    // A retry of a stored batch is no new event for anyone.
    send(&server, &key, &events[..100]);

    let posthog_events = |body: &Value| body["batch"].as_array().cloned().unwrap_or_default();
    let webhook_events = |body: &Value| body["data"].as_array().cloned().unwrap_or_default();
    for (receiver, read, id) in [
        (
            &posthog,
            &posthog_events as &dyn Fn(&Value) -> Vec<Value>,
            "uuid",
        ),
        (&segment, &posthog_events, "messageId"),
        (&webhook, &webhook_events, "id"),
    ] {
        let got = eventually(Duration::from_secs(30), "every event delivered", || {
            let got = delivered(receiver, read, id);
            (got.len() == events.len()).then_some(got)
        });
        for e in &events {
            let (times, _) = &got[&e.id.to_string()];
            assert_eq!(*times, 1, "{} reached {} {times} times", e.id, receiver.url);
        }
    }

    // Only the fields each may have.
    let posthog_got = delivered(&posthog, posthog_events, "uuid");
    let (_, first) = &posthog_got[&events[0].id.to_string()];
    assert_eq!(first["distinct_id"], json!(events[0].install_id));
    assert_eq!(first["event"], "invocation");
    assert_eq!(first["properties"]["command"], json!(events[0].command));
    assert_eq!(first["properties"]["error_kind"], "io");
    assert_eq!(first["properties"]["$geoip_disable"], true);
    assert!(
        first["properties"].get("error_message").is_none(),
        "{first}"
    );
    let requests = posthog.received();
    assert_eq!(requests[0].path, "/batch/");
    assert_eq!(requests[0].json()["api_key"], "phc_test");
    let segment_requests = segment.received();
    assert_eq!(segment_requests[0].path, "/v1/batch");
    assert_eq!(
        segment_requests[0].header("authorization"),
        Some("Basic d2s6")
    );
    assert!(
        segment_requests
            .iter()
            .all(|r| r.json()["batch"].as_array().is_some_and(|b| b.len() <= 40))
    );
    let hooks = delivered(&webhook, webhook_events, "id");
    let (_, hooked) = &hooks[&events[0].id.to_string()];
    let mut keys: Vec<&str> = hooked
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "app",
            "command",
            "error_message",
            "id",
            "install_id",
            "name",
            "timestamp"
        ]
    );
    // The same batch keeps its webhook-id on every attempt.
    let hook_requests = webhook.received();
    assert_eq!(hook_requests[0].status, 408);
    assert_eq!(
        hook_requests[0].header("webhook-id"),
        hook_requests[1].header("webhook-id")
    );

    let metrics = ureq::get(format!("{}/metrics", server.url))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    for line in [
        "tally_forward_events_sent_total{app=\"mycli\",destination=\"posthog\"} 300",
        "tally_forward_retries_total{app=\"mycli\",destination=\"posthog\"} 2",
        "tally_forward_events_dead_total{app=\"mycli\",destination=\"segment\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

#[test]
fn refused_events_become_dead_letters_and_a_replay_delivers_them() {
    let receiver = Receiver::start();
    receiver.otherwise(Reply::status(400));
    let (server, key) = forwarding(vec![destination(&format!(
        "name = \"ph\"\nkind = \"posthog\"\nurl = \"{}\"\nkey = \"phc_test\"",
        receiver.url
    ))]);
    let events: Vec<_> = (0..5).map(|_| fresh("mycli")).collect();
    send(&server, &key, &events);
    let data = server.data_dir();
    let status = eventually(Duration::from_secs(30), "five dead letters", || {
        let status = tally_forward::status(data).expect("status").pop()?;
        (status.state.dead == 5).then_some(status)
    });
    // Halved down to each event: a refusal costs only the events at fault.
    assert_eq!((status.backlog, status.state.sent), (0, 0), "{status:?}");
    assert!(
        status
            .state
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("400"))
    );
    let mut dead = Vec::new();
    tally_forward::dead_letters(data, "mycli", "ph", |letter| dead.push(letter)).expect("dead");
    assert_eq!(dead.len(), 5);
    assert!(dead.iter().all(|d| d.status == 400));

    receiver.otherwise(Reply::status(200));
    assert_eq!(
        tally_forward::replay(data, "mycli", "ph").expect("replay"),
        5
    );
    let got = eventually(Duration::from_secs(30), "the replay delivered", || {
        let got = delivered(
            &receiver,
            |b| b["batch"].as_array().cloned().unwrap_or_default(),
            "uuid",
        );
        (got.len() == 5).then_some(got)
    });
    assert!(got.values().all(|(times, _)| *times == 1));
    let status = eventually(Duration::from_secs(10), "the replay finished", || {
        let status = tally_forward::status(data).expect("status").pop()?;
        (!status.replaying).then_some(status)
    });
    assert_eq!(status.state.sent, 5);
    let mut left = 0;
    tally_forward::dead_letters(data, "mycli", "ph", |_| left += 1).expect("dead");
    assert_eq!(left, 0);
}

/// The webhook's signature, checked by the Standard Webhooks reference
/// library from PyPI, as a receiver would check it.
#[test]
fn webhooks_pass_the_standard_webhooks_library() {
    let Some(python) = tally_testkit::clients::python(&["standardwebhooks==1.1.0"]) else {
        return;
    };
    let receiver = Receiver::start();
    let (server, key) = forwarding(vec![destination(&format!(
        "name = \"hooks\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nsecret = \"{SECRET}\"",
        receiver.url
    ))]);
    send(&server, &key, &[fresh("mycli"), fresh("mycli")]);
    let request = eventually(Duration::from_secs(30), "the webhook", || {
        receiver.received().into_iter().find(|r| r.status == 200)
    });
    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| ((*h).to_owned(), json!(request.header(h).expect("header"))))
            .collect();
    let script = "import json, os, sys\n\
        from standardwebhooks.webhooks import Webhook\n\
        body = sys.stdin.buffer.read()\n\
        payload = Webhook(os.environ['SECRET']).verify(body, json.loads(os.environ['HEADERS']))\n\
        print(len(payload['data']))\n";
    let check = |body: &[u8]| {
        let mut child = std::process::Command::new(&python)
            .args(["-c", script])
            .env("SECRET", SECRET)
            .env("HEADERS", Value::Object(headers.clone()).to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body)
            .expect("write");
        child.wait_with_output().expect("python")
    };
    let verified = check(&request.body);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&verified.stdout).trim(), "2");
    // A body changed on the way fails the check.
    let mut forged = request.body.to_vec();
    forged.insert(1, b' ');
    let refused = check(&forged);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("WebhookVerificationError"));
}

/// Regression: redirects were followed, and a POST redirected arrives as a
/// GET without the events, whose 200 counted as delivered.
#[test]
fn a_redirect_is_not_a_delivery() {
    let receiver = Receiver::start();
    receiver.script([Reply {
        location: Some("/elsewhere".into()),
        ..Reply::status(302)
    }]);
    let (server, key) = forwarding(vec![destination(&format!(
        "name = \"ph\"\nkind = \"posthog\"\nurl = \"{}\"\nkey = \"phc_test\"",
        receiver.url
    ))]);
    let events: Vec<_> = (0..3).map(|_| fresh("mycli")).collect();
    send(&server, &key, &events);
    let posthog_events = |b: &Value| b["batch"].as_array().cloned().unwrap_or_default();
    eventually(
        Duration::from_secs(30),
        "delivered after the redirect",
        || (delivered(&receiver, posthog_events, "uuid").len() == 3).then_some(()),
    );
    assert!(receiver.received().iter().all(|r| r.path == "/batch/"));
    let status = tally_forward::status(server.data_dir())
        .expect("status")
        .pop()
        .expect("one");
    assert!(
        status
            .state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("redirected")),
        "{status:?}"
    );
}

/// A destination refusing everything (a wrong path, a receiver failing
/// every signature) does not turn the whole stream into dead letters.
#[test]
fn a_destination_refusing_everything_keeps_the_events_waiting() {
    let receiver = Receiver::start();
    receiver.otherwise(Reply::status(400));
    let (server, key) = forwarding(vec![destination(&format!(
        "name = \"ph\"\nkind = \"posthog\"\nurl = \"{}\"\nkey = \"phc_test\"\nbatch_events = 5",
        receiver.url
    ))]);
    let events: Vec<_> = (0..30).map(|_| fresh("mycli")).collect();
    send(&server, &key, &events);
    let data = server.data_dir();
    let status = eventually(
        Duration::from_secs(30),
        "the destination taken to refuse all",
        || {
            let status = tally_forward::status(data).expect("status").pop()?;
            status
                .state
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("everything refused"))
                .then_some(status)
        },
    );
    assert_eq!(status.state.dead, 10, "{status:?}");
    assert_eq!(status.backlog, 20, "{status:?}");
}

/// A destination that hangs holds back neither ingest nor the other
/// destinations; with `max_attempts`, its events become dead letters once
/// they have had their attempts.
#[test]
fn a_hanging_destination_holds_back_neither_ingest_nor_the_others() {
    let (hung, healthy) = (Receiver::start(), Receiver::start());
    hung.otherwise(Reply {
        delay: Duration::from_secs(5),
        ..Reply::status(200)
    });
    let server = RunningServer::start_with(|config| {
        config.forward.insert(
            "mycli".into(),
            vec![
                destination(&format!(
                    "name = \"hung\"\nkind = \"posthog\"\nurl = \"{}\"\nkey = \"k\"\nbatch_events = 10\nmax_attempts = 2",
                    hung.url
                )),
                destination(&format!(
                    "name = \"healthy\"\nkind = \"posthog\"\nurl = \"{}\"\nkey = \"k\"",
                    healthy.url
                )),
            ],
        );
        config.forward_options.backoff = Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(100),
        };
        config.forward_options.timeout = Duration::from_millis(300);
    });
    let key = server.add_app("mycli");
    let events: Vec<_> = (0..30).map(|_| fresh("mycli")).collect();
    for batch in events.chunks(10) {
        send(&server, &key, batch);
    }
    let posthog_events = |b: &Value| b["batch"].as_array().cloned().unwrap_or_default();
    eventually(
        Duration::from_secs(30),
        "the healthy destination has all",
        || (delivered(&healthy, posthog_events, "uuid").len() == 30).then_some(()),
    );
    let data = server.data_dir();
    let status = eventually(
        Duration::from_secs(60),
        "the hung one's events dead",
        || {
            let all = tally_forward::status(data).expect("status");
            all.into_iter()
                .find(|s| s.destination == "hung" && s.state.dead == 30)
        },
    );
    assert!(
        status
            .state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("given up after 2 attempts")),
        "{status:?}"
    );
    let mut dead = Vec::new();
    tally_forward::dead_letters(data, "mycli", "hung", |d| dead.push(d)).expect("dead");
    assert!(
        dead.iter().all(|d| d.status == 0),
        "no HTTP status: none came"
    );
    let metrics = ureq::get(format!("{}/metrics", server.url))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    for line in [
        "tally_forward_backlog_events{app=\"mycli\",destination=\"healthy\"} 0",
        "tally_forward_backlog_events{app=\"mycli\",destination=\"hung\"} 0",
        "tally_forward_events_dead_total{app=\"mycli\",destination=\"hung\"} 30",
        "tally_forward_lag_seconds{app=\"mycli\",destination=\"healthy\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

/// An erasure is passed on after the install's events: PostHog's persons
/// API, a Segment regulation, a signed webhook message; a destination
/// that refuses it keeps no dead letter of the install.
#[test]
fn erasures_are_passed_on_after_the_installs_events() {
    let (posthog, segment, webhook, refusing) = (
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
    );
    refusing.otherwise(Reply::status(400));
    let (server, key) = forwarding(vec![
        destination(&format!(
            "name = \"posthog\"\nkind = \"posthog\"\nurl = \"{}\"\nkey = \"phc_test\"\n\
             erasure_key = \"phx_personal\"\nproject_id = \"42\"",
            posthog.url
        )),
        destination(&format!(
            "name = \"segment\"\nkind = \"segment\"\nurl = \"{0}\"\nkey = \"wk\"\n\
             erasure_url = \"{0}/public\"\nerasure_key = \"sgp_token\"",
            segment.url
        )),
        destination(&format!(
            "name = \"hooks\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nsecret = \"{SECRET}\"",
            webhook.url
        )),
        destination(&format!(
            "name = \"refusing\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nsecret = \"{SECRET}\"",
            refusing.url
        )),
    ]);
    let (gone, kept) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let events: Vec<_> = [gone, gone, kept]
        .into_iter()
        .map(|install| {
            let mut e = fresh("mycli");
            e.install_id = install;
            e
        })
        .collect();
    send(&server, &key, &events);
    let data = server.data_dir();
    eventually(Duration::from_secs(30), "dead letters", || {
        let mut n = 0;
        tally_forward::dead_letters(data, "mycli", "refusing", |_| n += 1).expect("dead");
        (n == 3).then_some(())
    });
    let erased = ureq::delete(format!("{}/api/v1/installs/{gone}", server.url))
        .header("Authorization", &format!("Bearer {}", server.admin_token()))
        .call()
        .expect("erase")
        .body_mut()
        .read_json::<Value>()
        .expect("json");
    assert_eq!(erased["erased_events"], 2);

    let erasure = |receiver: &Receiver, path: &str| {
        eventually(Duration::from_secs(30), path, || {
            let received = receiver.received();
            let at = received.iter().position(|r| r.path == path)?;
            assert!(
                received[..at].iter().any(|r| r.status == 200),
                "the events went first"
            );
            Some(received[at].clone())
        })
    };
    let to_posthog = erasure(&posthog, "/api/projects/42/persons/bulk_delete/");
    assert_eq!(
        to_posthog.header("authorization"),
        Some("Bearer phx_personal")
    );
    assert_eq!(
        to_posthog.json(),
        json!({"distinct_ids": [gone.to_string()], "delete_events": true})
    );
    let to_segment = erasure(&segment, "/public/regulations");
    assert_eq!(to_segment.header("authorization"), Some("Bearer sgp_token"));
    assert_eq!(
        to_segment.json(),
        json!({"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID",
               "subjectIds": [gone.to_string()]})
    );
    let to_hook = eventually(Duration::from_secs(30), "the webhook's erasure", || {
        webhook
            .received()
            .into_iter()
            .find(|r| r.json()["type"] == "erasure")
    });
    assert_eq!(
        to_hook.json()["data"],
        json!({"app": "mycli", "install_id": gone.to_string()})
    );
    assert!(to_hook.header("webhook-signature").is_some());
    eventually(Duration::from_secs(30), "the refused erasure", || {
        let mut left = Vec::new();
        tally_forward::dead_letters(data, "mycli", "refusing", |d| {
            left.push(d.event.event.install_id)
        })
        .expect("dead");
        (left == [kept]).then_some(())
    });
    let status = tally_forward::status(data).expect("status");
    let refusing_status = status
        .iter()
        .find(|s| s.destination == "refusing")
        .expect("refusing");
    assert!(
        refusing_status
            .state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("erasure was refused")),
        "{refusing_status:?}"
    );
    // Nothing left to pass on: no install id is kept for it.
    for name in ["posthog", "segment", "hooks", "refusing"] {
        let file = tally_forward::forward_dir(data)
            .join("mycli")
            .join(name)
            .join("erasures.ndjson");
        eventually(Duration::from_secs(30), "erasures done", || {
            std::fs::read_to_string(&file)
                .map_or(true, |text| text.is_empty())
                .then_some(())
        });
    }
}
