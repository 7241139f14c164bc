//! An app's public page: only what it publishes, to anyone, without a
//! token, and no group of fewer installs than it says.

use axum::http::StatusCode;
use tally_report::ReportName;
use tally_testkit::events::{batch_body, fresh};

use crate::support::Harness;

#[tokio::test]
async fn a_public_page_shows_only_what_is_published_and_no_small_group() {
    let server = Harness::with(|config| {
        config.public.insert(
            "shown".into(),
            tally_server::Public {
                reports: vec![ReportName::Platforms],
                min_installs: 2,
            },
        );
    });
    let key = server.add_app("shown").await;
    server.add_app("private").await;
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let events: Vec<_> = [("linux", 1), ("linux", 2), ("macos", 3)]
        .into_iter()
        .map(|(os, n)| {
            let mut e = fresh("shown");
            (e.os, e.install_id, e.timestamp) = (os.into(), uuid::Uuid::from_u128(n), yesterday);
            e
        })
        .collect();
    let answer = server.ingest(&key, &[], batch_body(&events)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let json = server.get("/public/shown/platforms.json", None).await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    let os = json.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "os")
        .expect("os");
    assert_eq!(os["rows"].as_array().map(Vec::len), Some(1), "{os}");
    assert_eq!(os["rows"][0][0], "linux");
    assert!(!json.body.to_string().contains("macos"));
    assert!(json.body["hidden"]["groups"].as_u64() >= Some(1));

    let page = server.get("/public/shown", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().expect("html").to_owned();
    assert!(
        html.contains("<td>linux</td>") && !html.contains("macos"),
        "{html}"
    );

    // Not published, not public, no such app: one answer.
    let mut answers = Vec::new();
    for path in [
        "/public/shown/commands.json",
        "/public/private/platforms.json",
        "/public/nothing/platforms.json",
        "/public/private",
    ] {
        let answer = server.get(path, None).await;
        answers.push((answer.status, answer.body));
    }
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // The window is one of three: no narrowing down to a day.
    let narrow = server
        .get("/public/shown/platforms.json?days=1", None)
        .await;
    assert_eq!(narrow.status, StatusCode::BAD_REQUEST);
    assert_eq!(narrow.body["field"], "days");
}
