//! The load: client threads sending realistic batches with fresh ids.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::LoadArgs;
use crate::server::Observed;
use crate::stats::{Latencies, Outcomes};

/// What a load run measured.
pub struct Report {
    pub events: u64,
    pub requests: u64,
    /// The requests that failed, by how.
    pub errors: Outcomes,
    pub elapsed: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Report {
    pub fn print(&self, what: &str, args: &LoadArgs, server: &Observed) {
        let secs = self.elapsed.as_secs_f64();
        let cpu = server
            .cpu_seconds
            .filter(|_| self.events > 0)
            .map_or("n/a".to_owned(), |s| {
                format!("{:.1} µs/event", s * 1e6 / self.events as f64)
            });
        println!(
            "{what}: batch={} concurrency={} gzip={} rate={} -> {:.0} events/s, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {} ({}), peak RSS {}, server CPU {cpu}",
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
            self.errors.total(),
            self.errors,
            server
                .peak_rss_mb
                .map_or("n/a".to_owned(), |mb| format!("{mb:.0} MB")),
        );
    }
}

/// One event as JSON, with fresh ids and a realistic spread of values.
fn event_json(out: &mut String, app: &str, n: u64, now: &str) {
    use std::fmt::Write as _;
    const COMMANDS: [&str; 5] = ["build", "deploy create", "deploy list", "login", "status"];
    const OS: [(&str, &str); 3] = [
        ("linux", "x86_64"),
        ("macos", "aarch64"),
        ("windows", "x86_64"),
    ];
    let (os, arch) = OS[(n % 3) as usize];
    let install = Uuid::from_u128(u128::from(n % 5000) | 0x6f96_19ff_8b86_4d01_b42d_0000_0000_0000);
    let flags = if n.is_multiple_of(2) {
        r#"["--verbose"]"#
    } else {
        r#"["--force","--region"]"#
    };
    let ci = if n.is_multiple_of(4) {
        r#""github-actions""#
    } else {
        "null"
    };
    let _ = write!(
        out,
        r#"{{"id":"{}","timestamp":"{now}","app":"{app}","app_version":"2.{}.0","install_id":"{install}","command":"{}","flags":{flags},"exit_code":{},"duration_ms":{},"os":"{os}","arch":"{arch}","os_version":"14.4","ci":{ci},"tty":{},"properties":{{"regions":{}}}}}"#,
        Uuid::now_v7(),
        n % 4,
        COMMANDS[(n % 5) as usize],
        i32::from(n.is_multiple_of(10)),
        50 + n % 3000,
        !n.is_multiple_of(4),
        n % 3,
    );
}

/// A request body of `batch` fresh events.
pub fn body(app: &str, batch: usize, counter: &AtomicU64, gzip: bool) -> Vec<u8> {
    let now = time_now();
    let mut json = String::with_capacity(batch * 420 + 64);
    json.push_str(&format!("{{\"sent_at\":\"{now}\",\"events\":["));
    for i in 0..batch {
        if i > 0 {
            json.push(',');
        }
        event_json(
            &mut json,
            app,
            counter.fetch_add(1, Ordering::Relaxed),
            &now,
        );
    }
    json.push_str("]}");
    if !gzip {
        return json.into_bytes();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(json.as_bytes());
    encoder.finish().unwrap_or_default()
}

/// Bodies for a whole run, made before the clock starts so that the load
/// generator, which shares the machine's two cores with the server, spends
/// them on sending. Enough for the run at `rate`, or at 400k events/s (more
/// than the target) when there is no rate, capped at 50k requests/s.
fn bodies(app: &str, args: &LoadArgs) -> Vec<Vec<u8>> {
    let per_second = if args.rate > 0 {
        args.rate
    } else {
        (400_000 / args.batch as u64).clamp(1, 50_000)
    };
    let count = (per_second * args.seconds + args.concurrency as u64) as usize;
    let counter = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let counter = &counter;
                s.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|_| body(app, args.batch, counter, !args.plain))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

/// Posts one batch `body` (gzip-compressed if `gzip`); whether the server
/// accepted it.
/// Sends one batch; how it failed, if it did.
fn post(agent: &ureq::Agent, url: &str, key: &str, body: &[u8], gzip: bool) -> Option<String> {
    let mut request = agent
        .post(format!("{url}/v1/batch"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json");
    if gzip {
        request = request.header("Content-Encoding", "gzip");
    }
    match request.send(body) {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(r.status().as_str().to_owned()),
        Err(e) => Some(Outcomes::of_error(&e).to_owned()),
    }
}

pub(crate) fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Loads `url` with `args` and measures. The run ends after `args.seconds`
/// or when the bodies made for it run out.
pub fn run(urls: &[String], key: &str, app: &str, args: &LoadArgs) -> Report {
    eprintln!("making request bodies ...");
    let bodies = bodies(app, args);
    let taken = AtomicUsize::new(0);
    let (events, requests) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    let (mut latencies, errors) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.concurrency)
            .map(|worker| {
                let url = &urls[worker % urls.len()];
                let (bodies, taken) = (&bodies, &taken);
                let (events, requests) = (&events, &requests);
                s.spawn(move || {
                    let agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .new_agent();
                    let (mut mine, mut failed) = (Latencies::default(), Outcomes::default());
                    // Workers start spread over one interval, so that
                    // requests come evenly at the rate, not in bursts of
                    // one per worker.
                    let mut next = started
                        + interval.map_or(Duration::ZERO, |i| {
                            i.mul_f64(worker as f64 / args.concurrency as f64)
                        });
                    while Instant::now() < deadline {
                        let Some(body) = bodies.get(taken.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        if let Some(interval) = interval {
                            next += interval;
                            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                        let sent = Instant::now();
                        let failure = post(&agent, url, key, body, !args.plain);
                        mine.push(sent.elapsed());
                        requests.fetch_add(1, Ordering::Relaxed);
                        match failure {
                            None => {
                                events.fetch_add(args.batch as u64, Ordering::Relaxed);
                            }
                            Some(how) => failed.add(how),
                        }
                    }
                    (mine, failed)
                })
            })
            .collect();
        let (mut all, mut errors) = (Latencies::default(), Outcomes::default());
        for worker in workers {
            let (latencies, failed) = worker.join().unwrap_or_default();
            all.extend(latencies);
            errors.merge(failed);
        }
        (all, errors)
    });
    let elapsed = started.elapsed();
    Report {
        events: events.into_inner(),
        requests: requests.into_inner(),
        errors,
        elapsed,
        p50_ms: latencies.percentile_ms(0.50),
        p99_ms: latencies.percentile_ms(0.99),
    }
}
