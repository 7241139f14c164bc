//! `posthog-cli build`: prints "built", then reports the run to the
//! PostHog-compatible endpoint in `POSTHOG_ENDPOINT` the way posthog-rs'
//! README shows (a blocking capture), unless `DO_NOT_TRACK` is set.

fn main() {
    println!("built");
    if std::env::var_os("DO_NOT_TRACK").is_some() {
        return;
    }
    let endpoint = std::env::var("POSTHOG_ENDPOINT").unwrap_or_default();
    let options = posthog_rs::ClientOptionsBuilder::default()
        .api_key("phc_bench".to_string())
        .api_endpoint(endpoint)
        .build()
        .expect("options");
    let client = posthog_rs::client(options);
    let mut event = posthog_rs::Event::new("build", "install-1");
    let _ = event.insert_prop("command", "build");
    let _ = client.capture(event);
}
