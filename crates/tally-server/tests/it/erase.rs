//! Erasing an install through the server: by the install with its secret,
//! by an admin, and never by anyone else.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tally_protocol::InstallSecret;
use tally_testkit::events::{batch_body, fresh};

use crate::support::{Answer, Harness};

/// `DELETE path` with `headers`.
async fn delete(server: &Harness, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::delete(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    server
        .call(request.body(Body::empty()).expect("request"))
        .await
}

/// Stores `runs` events of `install` in `app`.
async fn store(server: &Harness, key: &str, app: &str, install: uuid::Uuid, runs: usize) {
    let events: Vec<_> = (0..runs)
        .map(|_| {
            let mut e = fresh(app);
            e.install_id = install;
            e
        })
        .collect();
    let answer = server.ingest(key, &[], batch_body(&events)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
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

#[tokio::test]
async fn an_install_erases_itself_with_its_secret() {
    let server = Harness::new();
    let key = server.add_app("mine").await;
    let (leaving, staying) = (InstallSecret::new(), InstallSecret::new());
    store(&server, &key, "mine", leaving.install_id(), 3).await;
    store(&server, &key, "mine", staying.install_id(), 2).await;
    let bearer = format!("Bearer {key}");
    let path = format!("/v1/installs/{}", leaving.install_id());
    let answer = delete(
        &server,
        &path,
        &[
            ("Authorization", &bearer),
            ("Tally-Install-Secret", leaving.as_str()),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["erased_events"], 3);
    let left = server.export("mine").await;
    assert_eq!(installs(&left), [staying.install_id().to_string()]);
    let metrics = server.get("/metrics", None).await;
    let text = metrics.body.as_str().expect("text").to_owned();
    assert!(
        text.contains("tally_erasures_total{app=\"mine\"} 1"),
        "{text}"
    );
}

/// A wrong secret, no secret, or another install's secret: one answer,
/// whether the install exists or not, given before anything is looked up.
#[tokio::test]
async fn a_wrong_secret_is_refused_alike_for_known_and_unknown_installs() {
    let server = Harness::new();
    let key = server.add_app("mine").await;
    let known = InstallSecret::new();
    store(&server, &key, "mine", known.install_id(), 2).await;
    let bearer = format!("Bearer {key}");
    let unknown = uuid::Uuid::new_v4();
    let other = InstallSecret::new();
    let mut answers = Vec::new();
    for install in [known.install_id(), unknown] {
        let path = format!("/v1/installs/{install}");
        for secret in [Some(other.as_str()), Some("0123"), None] {
            let mut headers = vec![("Authorization", bearer.as_str())];
            headers.extend(secret.map(|s| ("Tally-Install-Secret", s)));
            let answer = delete(&server, &path, &headers).await;
            answers.push((answer.status, answer.body));
        }
    }
    assert_eq!(answers[0].0, StatusCode::FORBIDDEN);
    assert_eq!(answers[0].1["error"], "forbidden");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every refusal is the same: {answers:?}"
    );
    assert_eq!(server.export("mine").await.len(), 2, "nothing was erased");
    let metrics = server.get("/metrics", None).await;
    assert!(
        !metrics
            .body
            .as_str()
            .expect("text")
            .contains("tally_erasures_total{"),
        "no erasure ran"
    );
}

#[tokio::test]
async fn erasure_needs_the_apps_key_and_an_install_id() {
    let server = Harness::new();
    server.add_app("mine").await;
    let secret = InstallSecret::new();
    let path = format!("/v1/installs/{}", secret.install_id());
    let with_secret = ("Tally-Install-Secret", secret.as_str());
    let no_key = delete(&server, &path, &[with_secret]).await;
    assert_eq!(no_key.status, StatusCode::UNAUTHORIZED);
    let wrong_key = delete(
        &server,
        &path,
        &[("Authorization", "Bearer tk_nobody"), with_secret],
    )
    .await;
    assert_eq!(wrong_key.status, StatusCode::UNAUTHORIZED);
    let key = server.add_app("other").await;
    let bearer = format!("Bearer {key}");
    let bad = delete(
        &server,
        "/v1/installs/not-a-uuid",
        &[("Authorization", &bearer), with_secret],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["field"], "install_id");
    // The install's own secret for an install that never sent: nothing to
    // erase, and it may know that.
    let none = delete(&server, &path, &[("Authorization", &bearer), with_secret]).await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.body);
    assert_eq!(none.body["erased_events"], 0);
}

/// Anyone with an app's key can make installs to erase: erasures of one
/// app are rate limited on their own.
#[tokio::test]
async fn erasures_of_one_app_are_rate_limited() {
    let server = Harness::new();
    let key = server.add_app("mine").await;
    let bearer = format!("Bearer {key}");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let secret = InstallSecret::new();
        let path = format!("/v1/installs/{}", secret.install_id());
        let answer = delete(
            &server,
            &path,
            &[
                ("Authorization", &bearer),
                ("Tally-Install-Secret", secret.as_str()),
            ],
        )
        .await;
        statuses.push(answer.status);
    }
    assert!(
        statuses[..10].iter().all(|s| *s == StatusCode::OK),
        "a burst of 10 passes: {statuses:?}"
    );
    assert!(
        statuses[10..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "the rest are refused but for one every 10 s: {statuses:?}"
    );
}

#[tokio::test]
async fn an_admin_erases_an_install_of_one_app_or_of_every_app() {
    let server = Harness::new();
    let (a, b) = (server.add_app("a").await, server.add_app("b").await);
    let install = uuid::Uuid::new_v4();
    store(&server, &a, "a", install, 2).await;
    store(&server, &b, "b", install, 1).await;
    let admin = format!("Bearer {}", server.admin_token());
    let path = format!("/api/v1/installs/{install}");
    let refused = delete(&server, &path, &[("Authorization", &format!("Bearer {a}"))]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let one = delete(
        &server,
        &format!("{path}?app=a"),
        &[("Authorization", &admin)],
    )
    .await;
    assert_eq!(one.body["erased_events"], 2, "{}", one.body);
    assert!(server.export("a").await.is_empty());
    assert_eq!(server.export("b").await.len(), 1);
    let all = delete(&server, &path, &[("Authorization", &admin)]).await;
    assert_eq!(all.body["erased_events"], 1, "{}", all.body);
    assert!(server.export("b").await.is_empty());
    let unknown = delete(
        &server,
        &format!("{path}?app=nope"),
        &[("Authorization", &admin)],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
