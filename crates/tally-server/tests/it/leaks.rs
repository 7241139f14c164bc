//! A deliberately careless client: secrets and personal data planted in
//! every free-text field, sent as Tally's own batch and through the
//! PostHog-compatible ingest. None of it is stored, or exported.

use axum::http::StatusCode;
use serde_json::json;
use tally_testkit::events::{batch_body, fresh};

use crate::support::Harness;

/// What must never be stored, each in a sentence that carries it.
const PLANTED: &[(&str, &str)] = &[
    (
        "bob.smith@example.com",
        "mail bob.smith@example.com for access",
    ),
    ("AKIAIOSFODNN7EXAMPLE", "key AKIAIOSFODNN7EXAMPLE rejected"),
    (
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 expired",
    ),
    (
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    ("hunter2", "ran with --password=hunter2"),
    ("203.0.113.77", "connect 203.0.113.77:443 refused"),
    ("415 555 0132", "call +1 415 555 0132"),
    ("/home/bob", "cannot open /home/bob/.ssh/id_rsa"),
    ("bobs-mbp", "no route to bobs-mbp.local"),
    ("s3cr3t-t0k3n", "Authorization: Bearer s3cr3t-t0k3n"),
];

/// Every planted secret, in each free-text field of an event.
fn careless(app: &str) -> tally_protocol::Event {
    let mut e = fresh(app);
    let all: Vec<&str> = PLANTED.iter().map(|(_, sentence)| *sentence).collect();
    e.error = Some(tally_protocol::ErrorInfo {
        kind: "io".into(),
        message: all.join("; "),
        location: Some(PLANTED[7].1.into()),
    });
    e.properties = PLANTED
        .iter()
        .enumerate()
        .map(|(i, (_, sentence))| (format!("note{i}"), (*sentence).into()))
        .collect();
    e
}

fn assert_clean(exported: &str) {
    for (secret, _) in PLANTED {
        assert!(
            !exported.contains(secret),
            "{secret} was stored: {exported}"
        );
    }
}

#[tokio::test]
async fn planted_secrets_in_a_tally_batch_are_never_stored() {
    let server = Harness::new();
    let key = server.add_app("careless").await;
    let answer = server
        .ingest(&key, &[], batch_body(&[careless("careless")]))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let stored = server.export("careless").await;
    assert_eq!(stored.len(), 1);
    assert_clean(&json!(stored).to_string());
}

#[tokio::test]
async fn planted_secrets_through_the_posthog_ingest_are_never_stored() {
    let server = Harness::new();
    let key = server.add_app("careless").await;
    let mut properties = serde_json::Map::new();
    for (i, (_, sentence)) in PLANTED.iter().enumerate() {
        properties.insert(format!("note{i}"), json!(sentence));
    }
    properties.insert("command".into(), json!("deploy"));
    properties.insert("exit_code".into(), json!(1));
    properties.insert(
        "error_message".into(),
        json!(
            PLANTED
                .iter()
                .map(|(_, s)| *s)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    let body = json!({
        "api_key": key,
        "batch": [{
            "event": "command_run",
            "distinct_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
            "uuid": uuid::Uuid::new_v4(),
            "timestamp": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .expect("time"),
            "properties": properties,
        }],
    });
    let answer = server
        .post(
            "/batch/",
            &[("Content-Type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let stored = server.export("careless").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_clean(&json!(stored).to_string());
}
