//! Sends, with posthog-rs' blocking client, an invocation event and a
//! custom event of the user in `USER_ID` to the PostHog host in `HOST`
//! with the project token in `KEY`, and exits once they are delivered.

use serde_json::json;

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (host, key, user) = (var("HOST"), var("KEY"), var("USER_ID"));
    let client = posthog_rs::client((key.as_str(), host.as_str()));
    let mut run = posthog_rs::Event::new("invocation", &user);
    for (name, value) in [
        ("command", json!("deploy")),
        ("exit_code", json!(1)),
        ("duration_ms", json!(1234)),
        ("flags", json!(["--force", "--token=abc"])),
        ("app_version", json!("1.2.0")),
        ("region", json!("eu")),
    ] {
        run.insert_prop(name, value).expect("property");
    }
    let mut hit = posthog_rs::Event::new("cache.hit", &user);
    hit.insert_prop("size", 3).expect("property");
    client
        .capture_batch_immediate(vec![run, hit], false)
        .expect("delivered");
}
