//! `tally-bench hostile`: legitimate clients and a health check against a
//! real `tally serve`, first alone (the baseline), then while an attacker
//! (see [`crate::attack`]) sends what the endpoint must survive, side by
//! side in one run on one server.
//!
//! The server runs with its limits at their defaults, except that the
//! legitimate app has a rate of its own (so the numbers show what the
//! attacker takes from it, not the app limit), and that clients are known
//! by `X-Forwarded-For`, which every client here sets to a fake address of
//! its own, so the per-client limit applies as it would to clients on the
//! internet behind a proxy (clients on loopback are otherwise exempt).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::attack::{Attack, AttackReport, Attacker};
use crate::legit::{self, BATCH, LegitReport, ProbeReport};
use crate::server::{APP, Running, app_key, cpu_seconds, start_tally_with, tally_binary};
use crate::stats::Outcomes;

/// The attacker's own app, at the default rate limit.
const ATTACK_APP: &str = "attackcli";
/// How long the attacker runs before the measured part of its phase, so
/// that its slow connections are all open when the clients start.
const WARM_UP: Duration = Duration::from_secs(3);
/// What the issue asks of `/healthz` under attack.
const HEALTHZ_BOUND: Duration = Duration::from_millis(100);

/// The settings of one run.
pub(crate) struct Hostile {
    pub(crate) seconds: u64,
    pub(crate) legit_clients: usize,
    pub(crate) legit_rate: u64,
    /// `None`: the baseline only.
    pub(crate) attack: Option<Attack>,
    pub(crate) rss_bound_mb: Option<f64>,
    pub(crate) serve_args: Vec<String>,
    pub(crate) tally: Option<PathBuf>,
}

/// A server and one app's key on it, as a client knows them.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) key: String,
    pub(crate) app: String,
}

/// Fake client addresses `10.SPACE.x.y`, taken in turn from a range.
pub(crate) struct Addresses {
    space: u8,
    base: u32,
    count: u32,
    taken: u32,
}

impl Addresses {
    /// The `count` addresses from number `base` on in `10.space.0.0/16`.
    pub(crate) fn new(space: u8, base: u32, count: u32) -> Self {
        Self {
            space,
            base,
            count: count.clamp(1, 65_536),
            taken: 0,
        }
    }

    pub(crate) fn next_address(&mut self) -> String {
        let n = self.base.wrapping_add(self.taken % self.count);
        self.taken = self.taken.wrapping_add(1);
        format!("10.{}.{}.{}", self.space, (n >> 8) & 255, n & 255)
    }
}

/// An HTTP client that answers every status as a response; with
/// `keep_alive` false, every request opens a new connection.
pub(crate) fn agent(keep_alive: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if !keep_alive {
        config = config
            .max_idle_connections(0)
            .max_idle_connections_per_host(0);
    }
    config.build().new_agent()
}

/// How the server answered one batch.
pub(crate) struct Answer {
    /// The status ("200") or what went wrong before one came ("timeout").
    pub(crate) outcome: String,
    pub(crate) ok: bool,
    pub(crate) retry_after: Option<Duration>,
}

/// Posts the gzip batch `body` to `target` as the client at address
/// `from`, giving up after `timeout`.
pub(crate) fn post(
    agent: &ureq::Agent,
    target: &Target,
    body: &[u8],
    from: &str,
    timeout: Duration,
) -> Answer {
    let sent = agent
        .post(format!("{}/v1/batch", target.url))
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("Authorization", format!("Bearer {}", target.key))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .header("X-Forwarded-For", from)
        .send(body);
    match sent {
        Ok(response) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs);
            let status = response.status();
            // Read to the end, so that the connection can carry the next one.
            let _ = response.into_body().read_to_vec();
            Answer {
                outcome: status.as_str().to_owned(),
                ok: status.is_success(),
                retry_after,
            }
        }
        Err(e) => Answer {
            outcome: Outcomes::of_error(&e).to_owned(),
            ok: false,
            retry_after: None,
        },
    }
}

/// What one phase measured.
struct Phase {
    legit: LegitReport,
    probe: ProbeReport,
    peak_rss_mb: Option<f64>,
    server_cpu_s: Option<f64>,
    bench_cpu_s: Option<f64>,
    attack: Option<AttackReport>,
}

pub(crate) fn run(mut run: Hostile) -> Result<()> {
    let tally = tally_binary(run.tally.clone())?;
    let data = tempfile::tempdir()?;
    let mut serve_args = vec![
        "--client-ip-header".to_owned(),
        "X-Forwarded-For".to_owned(),
        "--app-rate".to_owned(),
        format!("{APP}=1000000"),
    ];
    serve_args.extend(run.serve_args.iter().cloned());
    let configure = |command: &mut Command| {
        // The limits at their defaults, whatever this shell has set.
        command
            .env_remove("TALLY_APP_EVENTS_PER_SECOND")
            .args(&serve_args);
    };
    let (server, key) = start_tally_with(data.path(), None, &tally, APP, configure)?;
    let legit = Target {
        url: server.url.clone(),
        key,
        app: APP.to_owned(),
    };
    println!(
        "tally serve {}; {} s per phase; {} legitimate clients sending {} events/s in batches of {BATCH}",
        serve_args.join(" "),
        run.seconds,
        run.legit_clients,
        match run.legit_rate {
            0 => "as many".to_owned(),
            n => n.to_string(),
        },
    );
    let attacker = match run.attack.take() {
        Some(attack) => {
            eprintln!("making the attacker's bodies ...");
            let target = Target {
                url: server.url.clone(),
                key: app_key(data.path(), None, &tally, ATTACK_APP)?,
                app: ATTACK_APP.to_owned(),
            };
            Some(Attacker::new(target, attack)?)
        }
        None => None,
    };
    eprintln!("baseline ...");
    let mut baseline = phase(&server, &legit, None, &run)?;
    let mut attacked = match &attacker {
        Some(attacker) => {
            eprintln!("under attack ...");
            Some(phase(&server, &legit, Some(attacker), &run)?)
        }
        None => None,
    };
    print_table(&run, &mut baseline, attacked.as_mut());
    print_verdict(&run, &server, attacked.as_mut().unwrap_or(&mut baseline));
    Ok(())
}

/// Runs the legitimate clients, the health check and the memory sampler
/// for `run.seconds`, with the attacker if one is given.
fn phase(
    server: &Running,
    legit: &Target,
    attacker: Option<&Attacker>,
    run: &Hostile,
) -> Result<Phase> {
    let server_cpu = server.cpu_seconds();
    let bench_cpu = cpu_seconds("self");
    let warm_up = attacker.map_or(Duration::ZERO, |_| WARM_UP);
    let start = Instant::now() + warm_up;
    let deadline = start + Duration::from_secs(run.seconds);
    let (legit, probe, peak_rss_mb, attack) = std::thread::scope(|s| {
        let attack = attacker.map(|attacker| s.spawn(move || attacker.run(deadline)));
        let rss = s.spawn(|| legit::peak_rss_mb(server.pid(), deadline));
        std::thread::sleep(warm_up);
        let probe = s.spawn(|| legit::probe(legit, deadline));
        let clients = legit::clients(legit, run.legit_clients, run.legit_rate, start, deadline);
        let attack = attack.map(|a| a.join().unwrap_or_default());
        (
            clients,
            probe.join().unwrap_or_default(),
            rss.join().unwrap_or_default(),
            attack,
        )
    });
    let spent = |after: Option<f64>, before: Option<f64>| Some(after? - before?);
    Ok(Phase {
        legit,
        probe,
        peak_rss_mb,
        server_cpu_s: spent(server.cpu_seconds(), server_cpu),
        bench_cpu_s: spent(cpu_seconds("self"), bench_cpu),
        attack,
    })
}

/// One row of the table: a label and how to show it for a phase.
type Row<'a> = (&'a str, &'a dyn Fn(&mut Phase) -> String);

/// The two phases side by side, as a Markdown table.
fn print_table(run: &Hostile, baseline: &mut Phase, mut attacked: Option<&mut Phase>) {
    let seconds = run.seconds as f64;
    let mb = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0} MB"));
    let s = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1} s"));
    let attack = |f: fn(&AttackReport) -> &Outcomes| {
        move |p: &mut Phase| {
            p.attack
                .as_ref()
                .map_or("-".to_owned(), |a| f(a).to_string())
        }
    };
    let rows: [Row; 16] = [
        ("legit events acked / offered", &|p| {
            let share = 100.0 * p.legit.acked as f64 / p.legit.offered.max(1) as f64;
            format!("{} / {} ({share:.1} %)", p.legit.acked, p.legit.offered)
        }),
        ("legit events acked per second", &|p| {
            format!("{:.0}", p.legit.acked as f64 / seconds)
        }),
        ("legit events dropped (4xx) / pending at the end", &|p| {
            format!("{} / {}", p.legit.dropped, p.legit.pending)
        }),
        ("legit answers other than 2xx", &|p| {
            p.legit.refusals.to_string()
        }),
        ("legit time to ack, p50 / p99 / max (ms)", &|p| {
            p.legit.ack_latency.summary()
        }),
        ("/healthz answered 200 / failed", &|p| {
            format!(
                "{} / {} ({})",
                p.probe.ok.len(),
                p.probe.failed.total(),
                p.probe.failed
            )
        }),
        ("/healthz p50 / p99 / max (ms)", &|p| p.probe.ok.summary()),
        ("/healthz answers over 100 ms", &|p| {
            p.probe.ok.over(HEALTHZ_BOUND).to_string()
        }),
        ("server peak RSS (VmRSS every 100 ms)", &|p| {
            mb(p.peak_rss_mb)
        }),
        ("server CPU", &|p| s(p.server_cpu_s)),
        ("bench CPU (clients and attacker)", &|p| s(p.bench_cpu_s)),
        ("attack: slow connections", &attack(|a| &a.slow)),
        (
            "attack: gzip bombs (8 MiB inflated)",
            &attack(|a| &a.gzip_bombs),
        ),
        (
            "attack: heavy batches (1000 x 4 KiB error, 64 flags)",
            &attack(|a| &a.heavy),
        ),
        (
            "attack: high-cardinality batches (1000 events)",
            &attack(|a| &a.cardinality),
        ),
        ("attack: requests per second (bombs and batches)", &|p| {
            p.attack.as_ref().map_or("-".to_owned(), |a| {
                let sent = a.gzip_bombs.total() + a.heavy.total() + a.cardinality.total();
                format!("{:.1}", sent as f64 / (seconds + WARM_UP.as_secs_f64()))
            })
        }),
    ];
    println!("\n| | baseline | under attack |\n| --- | --- | --- |");
    for (label, show) in rows {
        let under = attacked.as_deref_mut().map_or("-".to_owned(), show);
        println!("| {label} | {} | {under} |", show(baseline));
    }
}

/// The three criteria, on the phase under attack (or the baseline
/// when there was none).
fn print_verdict(run: &Hostile, server: &Running, phase: &mut Phase) {
    let acked = 100.0 * phase.legit.acked as f64 / phase.legit.offered.max(1) as f64;
    let p99 = phase.probe.ok.percentile_ms(0.99);
    let healthz_ok = phase.probe.failed.total() == 0 && phase.probe.ok.over(HEALTHZ_BOUND) == 0;
    println!();
    println!("legit events acknowledged: {acked:.1} % of those offered");
    println!(
        "/healthz: every probe answered 200 in under 100 ms: {} (p99 {p99:.1} ms, {} failed)",
        if healthz_ok { "yes" } else { "no" },
        phase.probe.failed.total(),
    );
    let peak = server.peak_rss_mb();
    let bound = match (run.rss_bound_mb, peak) {
        (Some(bound), Some(peak)) => {
            let under = if peak < bound { "under" } else { "OVER" };
            format!(", {under} the bound of {bound:.0} MB")
        }
        _ => String::new(),
    };
    println!(
        "server peak RSS over the whole run (VmHWM): {}{bound}",
        peak.map_or("n/a".to_owned(), |mb| format!("{mb:.0} MB"))
    );
}
