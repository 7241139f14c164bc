//! The load: client threads sending realistic batches with fresh ids.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::LoadArgs;

/// What a load run measured.
pub struct Report {
    pub events: u64,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Report {
    pub fn print(&self, what: &str, args: &LoadArgs, rss_mb: Option<f64>) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{what}: batch={} concurrency={} gzip={} rate={} -> {:.0} events/s, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}, peak RSS {}",
            args.batch,
            args.concurrency,
            !args.plain,
            if args.rate == 0 {
                "max".to_owned()
            } else {
                args.rate.to_string()
            },
            self.events as f64 / secs,
            self.requests as f64 / secs,
            self.p50_ms,
            self.p99_ms,
            self.errors,
            rss_mb.map_or("n/a".to_owned(), |mb| format!("{mb:.0} MB")),
        );
    }
}

/// One event as JSON, with fresh ids and a realistic spread of values.
fn event_json(app: &str, n: u64, now: &str) -> String {
    const COMMANDS: [&str; 5] = ["build", "deploy create", "deploy list", "login", "status"];
    const OS: [(&str, &str); 3] = [
        ("linux", "x86_64"),
        ("macos", "aarch64"),
        ("windows", "x86_64"),
    ];
    let (os, arch) = OS[(n % 3) as usize];
    serde_json::json!({
        "id": Uuid::now_v7(),
        "timestamp": now,
        "app": app,
        "app_version": format!("2.{}.0", n % 4),
        "install_id": Uuid::from_u128(u128::from(n % 5000) | 0x6f96_19ff_8b86_4d01_b42d_0000_0000_0000),
        "command": COMMANDS[(n % 5) as usize],
        "flags": if n.is_multiple_of(2) { vec!["--verbose"] } else { vec!["--force", "--region"] },
        "exit_code": i32::from(n.is_multiple_of(10)),
        "duration_ms": 50 + n % 3000,
        "os": os, "arch": arch, "os_version": "14.4",
        "ci": if n.is_multiple_of(4) { Some("github-actions") } else { None },
        "tty": !n.is_multiple_of(4),
        "properties": {"regions": n % 3},
    })
    .to_string()
}

/// A request body of `batch` fresh events.
pub fn body(app: &str, batch: usize, counter: &AtomicU64, gzip: bool) -> Vec<u8> {
    let now = time_now();
    let events: Vec<String> = (0..batch)
        .map(|_| event_json(app, counter.fetch_add(1, Ordering::Relaxed), &now))
        .collect();
    let json = format!(
        "{{\"sent_at\":\"{now}\",\"events\":[{}]}}",
        events.join(",")
    );
    if !gzip {
        return json.into_bytes();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(json.as_bytes());
    encoder.finish().unwrap_or_default()
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Loads `url` with `args` and measures.
pub fn run(url: &str, key: &str, app: &str, args: &LoadArgs) -> Report {
    let counter = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (events, requests, errors) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    let mut latencies: Vec<u32> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.concurrency)
            .map(|_| {
                s.spawn(|| {
                    let agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .new_agent();
                    let mut mine = Vec::new();
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let body = body(app, args.batch, &counter, !args.plain);
                        if let Some(interval) = interval {
                            next += interval;
                            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                        let sent = Instant::now();
                        let mut request = agent
                            .post(format!("{url}/v1/batch"))
                            .header("Authorization", format!("Bearer {key}"))
                            .header("Content-Type", "application/json");
                        if !args.plain {
                            request = request.header("Content-Encoding", "gzip");
                        }
                        let ok = request
                            .send(&body[..])
                            .is_ok_and(|r| r.status().is_success());
                        mine.push(sent.elapsed().as_micros() as u32);
                        requests.fetch_add(1, Ordering::Relaxed);
                        if ok {
                            events.fetch_add(args.batch as u64, Ordering::Relaxed);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    Report {
        events: events.into_inner(),
        requests: requests.into_inner(),
        errors: errors.into_inner(),
        elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}
