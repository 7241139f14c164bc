//! The attacker of `tally-bench hostile`: what one script on the internet
//! can send with an app's public ingest key, at full speed.
//!
//! - slow sockets: connections that send half a request head and then a
//!   byte every few seconds (slowloris), and requests that announce a body
//!   of almost 1 MiB and trickle it (each holds that much of the server's
//!   in-flight byte budget while it lasts); both reopened a second after
//!   the server closes or refuses them, from one thread with non-blocking
//!   sockets;
//! - bombs: gzip bodies that inflate to the 8 MiB decoded limit (spaces in
//!   a JSON string), alternating with valid batches of 1000 events that
//!   each carry a 4 KiB error message full of things to scrub and 64 flags;
//! - high cardinality: valid batches of 1000 events in which every version,
//!   command, flag, error kind, dependency and property name is new.
//!
//! Every request comes from the next of a pool of fake addresses (in
//! `X-Forwarded-For`), as from a botnet; with a pool of one, the per-client
//! limit applies to all of it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use uuid::Uuid;

use crate::hostile::{Addresses, Target, agent, post};
use crate::load::time_now;
use crate::stats::Outcomes;

/// How much of each kind of attack to run.
pub(crate) struct Attack {
    pub(crate) slowloris: usize,
    pub(crate) trickle: usize,
    pub(crate) bomb_threads: usize,
    pub(crate) cardinality_threads: usize,
    /// The fake addresses the attacker's requests rotate through.
    pub(crate) addresses: u32,
}

/// How the attacker's requests ended, by kind.
#[derive(Default)]
pub(crate) struct AttackReport {
    pub(crate) slow: Outcomes,
    pub(crate) gzip_bombs: Outcomes,
    pub(crate) heavy: Outcomes,
    pub(crate) cardinality: Outcomes,
}

/// The first octets of the attacker's fake addresses.
const ADDRESS_SPACE: u8 = 66;
/// How long the slow-socket thread rests between two rounds.
const SWEEP: Duration = Duration::from_millis(100);
/// How long one round may spend opening connections (a full accept queue
/// makes connects wait) before it tends the open ones again.
const OPENING_BUDGET: Duration = Duration::from_millis(500);
const REOPEN_AFTER: Duration = Duration::from_secs(1);
const SLOWLORIS_DRIP: Duration = Duration::from_secs(3);
const TRICKLE_DRIP: Duration = Duration::from_secs(1);
/// The body size a trickled request announces: just under the 1 MiB limit.
const TRICKLE_LENGTH: usize = 1_000_000;
const DECODED_LIMIT: usize = 8 * 1024 * 1024;

/// An attacker ready to start: its target and the bodies it sends, made
/// beforehand so that making them is not counted in a phase.
pub(crate) struct Attacker {
    target: Target,
    addr: SocketAddr,
    attack: Attack,
    bomb: Vec<u8>,
    heavy: Heavy,
}

impl Attacker {
    pub(crate) fn new(target: Target, attack: Attack) -> Result<Self> {
        let addr = target
            .url
            .trim_start_matches("http://")
            .parse()
            .context("the server's address")?;
        let heavy = Heavy::new(&target.app);
        Ok(Self {
            addr,
            attack,
            bomb: gzip_bomb(),
            heavy,
            target,
        })
    }

    /// Attacks until `deadline`.
    pub(crate) fn run(&self, deadline: Instant) -> AttackReport {
        let Self {
            target,
            addr,
            attack,
            bomb,
            heavy,
        } = self;
        std::thread::scope(|s| {
            let slow = s.spawn(|| slow_sockets(*addr, target, attack, deadline));
            let bombs: Vec<_> = (0..attack.bomb_threads)
                .map(|_| s.spawn(|| bombs(target, bomb, heavy.clone(), attack.addresses, deadline)))
                .collect();
            let wide: Vec<_> = (0..attack.cardinality_threads)
                .map(|_| s.spawn(|| wide(target, attack.addresses, deadline)))
                .collect();
            let mut report = AttackReport {
                slow: slow.join().unwrap_or_default(),
                ..AttackReport::default()
            };
            for thread in bombs {
                let (bombs, heavies) = thread.join().unwrap_or_default();
                report.gzip_bombs.merge(bombs);
                report.heavy.merge(heavies);
            }
            for thread in wide {
                report.cardinality.merge(thread.join().unwrap_or_default());
            }
            report
        })
    }
}

/// Sends gzip bombs and heavy batches in turn until `deadline`. A heavy
/// batch gets fresh ids only once the last one was stored: one refused is
/// sent again as it is, so that the attacker spends its CPU on
/// compression only when the server spends its own on the events.
fn bombs(
    target: &Target,
    bomb: &[u8],
    mut heavy: Heavy,
    addresses: u32,
    deadline: Instant,
) -> (Outcomes, Outcomes) {
    let agent = agent(true);
    let mut from = Addresses::new(ADDRESS_SPACE, 0, addresses);
    let (mut bombs, mut heavies) = (Outcomes::default(), Outcomes::default());
    let mut body = heavy.fresh();
    while Instant::now() < deadline {
        let answer = post(&agent, target, bomb, &from.next_address(), until(deadline));
        bombs.add(answer.outcome);
        let answer = post(&agent, target, &body, &from.next_address(), until(deadline));
        if answer.ok {
            body = heavy.fresh();
        }
        heavies.add(answer.outcome);
    }
    (bombs, heavies)
}

/// Sends high-cardinality batches until `deadline`, a new one once the
/// last was stored (as [`bombs`] does).
fn wide(target: &Target, addresses: u32, deadline: Instant) -> Outcomes {
    let agent = agent(true);
    let mut from = Addresses::new(ADDRESS_SPACE, 0, addresses);
    let mut outcomes = Outcomes::default();
    let mut rng = Rng::seeded();
    let mut body = wide_batch(&target.app, &mut rng);
    while Instant::now() < deadline {
        let answer = post(&agent, target, &body, &from.next_address(), until(deadline));
        if answer.ok {
            body = wide_batch(&target.app, &mut rng);
        }
        outcomes.add(answer.outcome);
    }
    outcomes
}

/// How long a request sent now may wait for its answer: until the end of
/// the attack, so that none outlasts it.
fn until(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100))
}

/// One slow connection.
struct Slow {
    stream: TcpStream,
    drip_at: Instant,
    trickle: bool,
}

/// A slow connection, or when to open it again.
enum Slot {
    Open(Slow),
    Closed { reopen_at: Instant },
}

/// Keeps `attack.trickle` trickling and `attack.slowloris` slowloris
/// connections open until `deadline`, reopening each one the server ends
/// or refuses a second later (what its 503 asks), so that the attacker's
/// connects do not take the CPU the server needs.
fn slow_sockets(addr: SocketAddr, target: &Target, attack: &Attack, deadline: Instant) -> Outcomes {
    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..attack.trickle + attack.slowloris)
        .map(|_| Slot::Closed { reopen_at: now })
        .collect();
    let mut outcomes = Outcomes::default();
    let mut from = Addresses::new(ADDRESS_SPACE, 0, attack.addresses);
    while Instant::now() < deadline {
        let opening_until = Instant::now() + OPENING_BUDGET;
        for (i, slot) in slots.iter_mut().enumerate() {
            let now = Instant::now();
            let next = match std::mem::replace(slot, Slot::Closed { reopen_at: now }) {
                Slot::Open(slow) => tend(slow, &mut outcomes),
                Slot::Closed { reopen_at } if reopen_at <= now && now < opening_until => {
                    let trickle = i < attack.trickle;
                    open(addr, target, trickle, &from.next_address(), &mut outcomes)
                }
                closed @ Slot::Closed { .. } => {
                    *slot = closed;
                    continue;
                }
            };
            *slot = next.map_or(
                Slot::Closed {
                    reopen_at: now + REOPEN_AFTER,
                },
                Slot::Open,
            );
        }
        std::thread::sleep(SWEEP);
    }
    for slot in &slots {
        if matches!(slot, Slot::Open(_)) {
            outcomes.add("still open at the end");
        }
    }
    outcomes
}

/// Opens a slow connection and sends the first part of its request.
fn open(
    addr: SocketAddr,
    target: &Target,
    trickle: bool,
    from: &str,
    outcomes: &mut Outcomes,
) -> Option<Slow> {
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
        Ok(stream) => stream,
        Err(e) if e.kind() == ErrorKind::TimedOut => {
            outcomes.add("connect timed out");
            return None;
        }
        Err(_) => {
            outcomes.add("connect failed");
            return None;
        }
    };
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: tally\r\nAuthorization: Bearer {}\r\nX-Forwarded-For: {from}\r\n",
        target.key
    );
    let head = if trickle {
        format!(
            "{head}Content-Type: application/json\r\nContent-Length: {TRICKLE_LENGTH}\r\n\r\n{{\"sent_at\":\"{}\",\"events\":[",
            time_now()
        )
    } else {
        // Half a head: the next header's name never ends.
        format!("{head}X-Padding")
    };
    if stream.write_all(head.as_bytes()).is_err() || stream.set_nonblocking(true).is_err() {
        outcomes.add("reset");
        return None;
    }
    outcomes.add("opened");
    let drip = if trickle {
        TRICKLE_DRIP
    } else {
        SLOWLORIS_DRIP
    };
    Some(Slow {
        stream,
        drip_at: Instant::now() + drip,
        trickle,
    })
}

/// Notices whether the server answered or closed `slow`, and sends it its
/// next drip when due.
fn tend(mut slow: Slow, outcomes: &mut Outcomes) -> Option<Slow> {
    let mut answer = [0_u8; 512];
    match slow.stream.read(&mut answer) {
        Ok(0) => {
            outcomes.add("closed by the server");
            return None;
        }
        Ok(n) => {
            outcomes.add(answered(&answer[..n]));
            return None;
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(_) => {
            outcomes.add("reset");
            return None;
        }
    }
    let now = Instant::now();
    if now < slow.drip_at {
        return Some(slow);
    }
    let (drip, every): (&[u8], _) = if slow.trickle {
        (b"                ", TRICKLE_DRIP)
    } else {
        (b"x", SLOWLORIS_DRIP)
    };
    match slow.stream.write(drip) {
        Ok(_) => {
            slow.drip_at = now + every;
            Some(slow)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => Some(slow),
        Err(_) => {
            outcomes.add("reset");
            None
        }
    }
}

/// "answered 503" for a response that starts `HTTP/1.1 503 ...`.
fn answered(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let status = text.split_whitespace().nth(1).unwrap_or("?");
    format!("answered {status}")
}

/// A gzip body that inflates to exactly the decoded limit: a valid empty
/// batch padded with spaces in a string.
fn gzip_bomb() -> Vec<u8> {
    let head = format!(
        "{{\"sent_at\":\"{}\",\"events\":[],\"padding\":\"",
        time_now()
    );
    let tail = "\"}";
    let mut json = head.into_bytes();
    json.resize(DECODED_LIMIT - tail.len(), b' ');
    json.extend_from_slice(tail.as_bytes());
    gzip(&json, flate2::Compression::best())
}

fn gzip(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// A batch of 1000 events as heavy as the limits allow, made once; each
/// request gets fresh event ids written over the old ones in place, so
/// the server does all the work of new events without the attacker paying
/// for a new body each time (only for its compression).
#[derive(Clone)]
struct Heavy {
    json: Vec<u8>,
    /// Where each event's id starts in `json`.
    ids: Vec<usize>,
}

impl Heavy {
    fn new(app: &str) -> Self {
        use std::fmt::Write as _;
        let now = time_now();
        let flags: Vec<String> = (0..64).map(|i| format!("\"--flag-{i:02}\"")).collect();
        let flags = flags.join(",");
        let mut json = format!("{{\"sent_at\":\"{now}\",\"events\":[");
        let mut ids = Vec::with_capacity(1000);
        for n in 0..1000_u32 {
            if n > 0 {
                json.push(',');
            }
            json.push_str("{\"id\":\"");
            ids.push(json.len());
            let _ = write!(
                json,
                r#"{}","timestamp":"{now}","app":"{app}","app_version":"6.6.6","install_id":"{}","command":"deploy","flags":[{flags}],"exit_code":1,"duration_ms":10,"os":"linux","arch":"x86_64","error":{{"kind":"io","message":"{}","location":"src/main.rs:66"}}}}"#,
                Uuid::nil(),
                Uuid::from_u128(0x6a66_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)),
                scrubbable_message(n),
            );
        }
        json.push_str("]}");
        Self {
            json: json.into_bytes(),
            ids,
        }
    }

    /// The batch with fresh ids, compressed.
    fn fresh(&mut self) -> Vec<u8> {
        for &at in &self.ids {
            let id = Uuid::now_v7().hyphenated().to_string();
            self.json[at..at + id.len()].copy_from_slice(id.as_bytes());
        }
        gzip(&self.json, flate2::Compression::fast())
    }
}

/// A 4 KiB error message of the things the scrubber removes: paths in a
/// home dir, e-mail and IP addresses, keys.
fn scrubbable_message(n: u32) -> String {
    let mut message = String::new();
    let mut i = 0_u32;
    while message.len() < 4096 {
        message.push_str(&format!(
            "open /home/alice/src/p{n}/f{i}.json failed for alice{i}@example.com from 192.168.{}.{} key sk_live_{:016x}; ",
            i % 250,
            n % 250,
            u64::from(n) << 20 | u64::from(i),
        ));
        i += 1;
    }
    message.truncate(4096);
    message
}

/// A batch of 1000 events in which every name and version is new.
fn wide_batch(app: &str, rng: &mut Rng) -> Vec<u8> {
    use std::fmt::Write as _;
    let now = time_now();
    let mut json = format!("{{\"sent_at\":\"{now}\",\"events\":[");
    for n in 0..1000 {
        if n > 0 {
            json.push(',');
        }
        let flags: Vec<String> = (0..16)
            .map(|_| format!("\"--x{:x}\"", rng.next()))
            .collect();
        let deps: Vec<String> = (0..8)
            .map(|_| format!("\"d{:x}\":\"{}.0\"", rng.next(), rng.next() % 1000))
            .collect();
        let properties: Vec<String> = (0..8).map(|_| format!("\"p{:x}\":1", rng.next())).collect();
        let _ = write!(
            json,
            r#"{{"id":"{}","timestamp":"{now}","app":"{app}","app_version":"9.{}.{}","install_id":"{}","command":"c{:x}","flags":[{}],"exit_code":1,"duration_ms":5,"os":"linux","arch":"x86_64","os_version":"{:x}","error":{{"kind":"k{:x}","message":"boom"}},"deps":{{{}}},"properties":{{{}}}}}"#,
            Uuid::now_v7(),
            rng.next() % 100_000,
            rng.next() % 100_000,
            Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next())),
            rng.next(),
            flags.join(","),
            rng.next(),
            rng.next(),
            deps.join(","),
            properties.join(","),
        );
    }
    json.push_str("]}");
    gzip(json.as_bytes(), flate2::Compression::fast())
}

/// splitmix64: fresh names cheaply, without a dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        Self(Uuid::new_v4().as_u64_pair().0)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
