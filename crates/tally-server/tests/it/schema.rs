//! Apps that declare what their CLIs may send: the rest is refused with
//! its reason, or dropped and counted, and the schema is public.

use axum::http::StatusCode;
use serde_json::json;
use tally_protocol::schema::{Schema, Undeclared};
use tally_testkit::events::{batch_body, fresh};

use crate::support::Harness;

fn schema(undeclared: Undeclared) -> Schema {
    let mut schema: Schema = serde_json::from_value(json!({
        "properties": {"profile": {"type": "string", "values": ["dev", "prod"]}},
        "events": {"cache.hit": {
            "description": "A build found its cache",
            "properties": {"layer": {"type": "string", "values": ["memory", "disk"], "report": true}}
        }}
    }))
    .expect("schema");
    schema.undeclared = undeclared;
    schema
}

fn event(name: Option<&str>, properties: &[(&str, &str)]) -> tally_protocol::Event {
    let mut e = fresh("strict");
    e.name = name.map(str::to_owned);
    e.properties = properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    e
}

#[tokio::test]
async fn what_the_schema_does_not_declare_is_refused_with_its_reason() {
    let server = Harness::with(|config| {
        config
            .schemas
            .insert("strict".into(), schema(Undeclared::Reject));
    });
    let key = server.add_app("strict").await;
    let events = [
        event(Some("cache.hit"), &[("layer", "disk")]),
        event(Some("cache.miss"), &[]),
        event(None, &[("profile", "dev")]),
        event(None, &[("user", "bob")]),
        event(Some("cache.hit"), &[("layer", "tape")]),
    ];
    let answer = server.ingest(&key, &[], batch_body(&events)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // The run with an undeclared property is kept without it.
    assert_eq!(answer.body["accepted"], 3);
    let rejected: Vec<(u64, String)> = answer.body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().expect("reason");
            assert!(
                reason.contains("schema") || reason.contains("declared"),
                "{reason}"
            );
            (
                r["index"].as_u64().expect("index"),
                r["field"].as_str().expect("field").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [(1, "name".to_owned()), (4, "properties.layer".to_owned())]
    );
    let stored = server.export("strict").await;
    assert_eq!(stored.len(), 3);
    assert!(
        stored.iter().all(|e| e["properties"].get("user").is_none()),
        "{stored:?}"
    );
    // A batch refused whole is a 400 naming every event.
    let all_bad = server
        .ingest(&key, &[], batch_body(&[event(Some("nope"), &[])]))
        .await;
    assert_eq!(all_bad.status, StatusCode::BAD_REQUEST, "{}", all_bad.body);
    assert_eq!(all_bad.body["rejected"][0]["field"], "name");
}

#[tokio::test]
async fn with_drop_what_is_undeclared_is_left_out_and_counted() {
    let server = Harness::with(|config| {
        config
            .schemas
            .insert("strict".into(), schema(Undeclared::Drop));
    });
    let key = server.add_app("strict").await;
    let events = [
        event(
            Some("cache.hit"),
            &[("layer", "disk"), ("path", "/home/bob")],
        ),
        event(Some("cache.miss"), &[]),
    ];
    let answer = server.ingest(&key, &[], batch_body(&events)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 1);
    assert_eq!(answer.body["rejected"], json!([]));
    let stored = server.export("strict").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["properties"], json!({"layer": "disk"}));
    let metrics = server.get("/metrics", None).await;
    let text = metrics.body.as_str().expect("text").to_owned();
    for what in ["event", "property"] {
        let line = format!("tally_schema_dropped_total{{app=\"strict\",what=\"{what}\"}} 1");
        assert!(text.contains(&line), "{line} not in {text}");
    }
}

#[tokio::test]
async fn the_schema_is_published_without_a_token() {
    let server = Harness::with(|config| {
        config
            .schemas
            .insert("strict".into(), schema(Undeclared::Reject));
    });
    server.add_app("strict").await;
    server.add_app("open").await;
    let published = server.get("/v1/apps/strict/schema", None).await;
    assert_eq!(published.status, StatusCode::OK);
    assert_eq!(
        published.body["schema"]["events"]["cache.hit"]["properties"]["layer"]["values"],
        json!(["memory", "disk"])
    );
    assert_eq!(published.body["schema"]["undeclared"], "reject");
    // No schema, and no such app: the same answer.
    let open = server.get("/v1/apps/open/schema", None).await;
    let none = server.get("/v1/apps/nothing-here/schema", None).await;
    assert_eq!(open.body["schema"], serde_json::Value::Null);
    assert_eq!(open.body["note"], none.body["note"]);
    assert_eq!(open.status, none.status);
}
