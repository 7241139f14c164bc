//! Removes private data from free text before it leaves the user's machine.
//!
//! Error messages and panic text are the one place where a CLI's telemetry
//! can carry what it must not: paths with user names, e-mail addresses,
//! tokens pasted into a flag. A [`Scrubber`] replaces each such piece with a
//! placeholder that still tells the maintainer what kind of thing was there.
//!
//! ```
//! use tally_scrub::{Identity, Scrubber};
//! let me = Identity { home: Some("/home/alice".into()), user: Some("alice".into()), host: None };
//! let scrubber = Scrubber::new(me);
//! assert_eq!(
//!     scrubber.scrub("cannot open /home/alice/notes.txt: ask bob@example.com"),
//!     "cannot open ~/notes.txt: ask <email>"
//! );
//! ```

use std::borrow::Cow;

use regex_lite::{Captures, Regex};

/// Who runs the program: the literal values to remove wherever they appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The home directory, replaced by `~`.
    pub home: Option<String>,
    /// The login name, replaced by `<user>`.
    pub user: Option<String>,
    /// The host name, replaced by `<host>`.
    pub host: Option<String>,
}

impl Identity {
    /// The identity of the current process, from the environment and, for
    /// the host name, the kernel (no subprocess).
    ///
    /// ```
    /// let me = tally_scrub::Identity::current();
    /// # let _ = me;
    /// ```
    pub fn current() -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        let host = var(&["HOSTNAME", "COMPUTERNAME"]).or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        });
        Self {
            home: var(&["HOME", "USERPROFILE"]),
            user: var(&["USER", "USERNAME", "LOGNAME"]),
            host,
        }
    }
}

/// One pattern and what replaces its matches.
struct Rule {
    /// What it finds, as counted (`email`, `phone`, ...).
    name: &'static str,
    pattern: Regex,
    replace: Replace,
}

enum Replace {
    /// A template with `$1`-style references.
    With(&'static str),
    /// A decision per match, for what a pattern alone cannot tell apart.
    Judge(fn(&Captures<'_>) -> String),
}

/// Replaces private data in text; build once, use for every field.
///
/// What goes, in this order: the home dir (→ `~`), credentials in URLs,
/// e-mail addresses, tokens and keys (AWS, GitHub, Slack, JWT, bearer,
/// `password=`-style assignments, long hex and base64), other users' home
/// dirs (`/home/x`, `/Users/x`, `C:\Users\x y`, `~x/`), volume names,
/// machines on the local network (`alices-mbp.local`), IP addresses, phone
/// numbers, and the user and host name wherever they still appear as a
/// word.
pub struct Scrubber {
    literals: Vec<(String, &'static str)>,
    rules: Vec<Rule>,
    /// The user's and host's names as words, their replacement and rule.
    words: Vec<(Regex, &'static str, &'static str)>,
}

/// Names too short or too common to replace as words without destroying the
/// message around them.
const MIN_WORD: usize = 3;
const COMMON_NAMES: &[&str] = &["root", "user", "admin", "runner", "localhost", "ubuntu"];

impl Scrubber {
    /// A scrubber for text produced on behalf of `identity`.
    pub fn new(identity: Identity) -> Self {
        let mut literals = Vec::new();
        if let Some(home) = identity.home.filter(|h| h.len() > 1) {
            let home = home.trim_end_matches(['/', '\\']).to_owned();
            // The home dir as written on Windows may also show up with
            // forward slashes (from tools that normalise paths).
            if home.contains('\\') {
                literals.push((home.replace('\\', "/"), "~"));
            }
            literals.push((home, "~"));
        }
        let mut words = Vec::new();
        for (name, replacement, rule) in [
            (identity.host, "<host>", "host"),
            (identity.user, "<user>", "user"),
        ] {
            let Some(name) = name else { continue };
            if name.len() < MIN_WORD || COMMON_NAMES.contains(&name.to_lowercase().as_str()) {
                continue;
            }
            let pattern = format!(r"(?i)(^|[^A-Za-z0-9]){}([^A-Za-z0-9]|$)", escape(&name));
            if let Ok(re) = Regex::new(&pattern) {
                words.push((re, replacement, rule));
            }
        }
        Self {
            literals,
            rules: rules(),
            words,
        }
    }

    /// `text` with every private piece replaced.
    pub fn scrub(&self, text: &str) -> String {
        self.scrub_noting(text, &mut |_| {})
    }

    /// [`Scrubber::scrub`], calling `hit` with the name of each rule that
    /// replaced something (once per rule and pass): `home`, `user`, `host`,
    /// `credentials`, `email`, `phone`, `token`, `other-home`, `ip`, ...
    ///
    /// ```
    /// let scrubber = tally_scrub::Scrubber::new(tally_scrub::Identity::default());
    /// let mut hits = Vec::new();
    /// let text = scrubber.scrub_noting("call +1 415 555 0132 or ada@example.com", &mut |rule| hits.push(rule));
    /// assert_eq!(text, "call <phone> or <email>");
    /// assert_eq!(hits, ["email", "phone"]);
    /// ```
    pub fn scrub_noting(&self, text: &str, hit: &mut dyn FnMut(&'static str)) -> String {
        let mut out = text.to_owned();
        for (literal, replacement) in &self.literals {
            let replaced = replace_path_prefix(&out, literal, replacement);
            if replaced != out {
                hit("home");
                out = replaced;
            }
        }
        for rule in &self.rules {
            // Once more after a hit: matches that end on a separator take
            // it from the next one (`a-1.local b-2.local`).
            for pass in 0..2 {
                let replaced = match rule.replace {
                    Replace::With(template) => rule.pattern.replace_all(&out, template),
                    Replace::Judge(judge) => rule.pattern.replace_all(&out, judge),
                };
                match replaced {
                    Cow::Owned(s) if s != out => {
                        if pass == 0 {
                            hit(rule.name);
                        }
                        out = s;
                    }
                    _ => break,
                }
            }
        }
        for (word, replacement, name) in &self.words {
            let with = format!("${{1}}{replacement}${{2}}");
            // Twice: adjacent matches share the separator between them.
            for _ in 0..2 {
                if let Cow::Owned(s) = word.replace_all(&out, with.as_str()) {
                    hit(name);
                    out = s;
                }
            }
        }
        out
    }
}

/// Replaces `prefix` where it is a whole path prefix: `/home/al` must not
/// eat the start of `/home/alice`.
fn replace_path_prefix(text: &str, prefix: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let whole = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'));
        out.push_str(&rest[..at]);
        out.push_str(if whole { replacement } else { prefix });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn escape(literal: &str) -> String {
    regex_lite::escape(literal)
}

fn rules() -> Vec<Rule> {
    use Replace::{Judge, With};
    let table: [(&str, &str, Replace); 22] = [
        // scheme://user:password@host -> scheme://<credentials>@host
        (
            "credentials",
            r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]*@",
            With("${1}<credentials>@"),
        ),
        (
            "email",
            r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
            With("<email>"),
        ),
        (
            "token",
            r"\b(AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
            With("<aws-key>"),
        ),
        (
            "token",
            r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
            With("<github-token>"),
        ),
        (
            "token",
            r"\bgithub_pat_[A-Za-z0-9_]{20,}",
            With("<github-token>"),
        ),
        (
            "token",
            r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
            With("<slack-token>"),
        ),
        (
            "token",
            r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]+",
            With("<jwt>"),
        ),
        (
            "token",
            r"(?i)\b(bearer)(\s+)([A-Za-z0-9._~+/=\-]{8,})",
            Judge(bearer),
        ),
        (
            "token",
            r#"(?i)\b([a-z_\-]*(password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key)[a-z_\-]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)"#,
            With("$1$3<redacted>"),
        ),
        // Other users' home dirs and named volumes: the name, not the path.
        (
            "other-home",
            r"(?i)\b([a-z]:[\\/](Users|Documents and Settings)[\\/])[^\\/\r\n:*?<>|]+",
            With("${1}<user>"),
        ),
        (
            "other-home",
            r#"(/(home|Users)/)[^/\s:'"]+"#,
            With("${1}<user>"),
        ),
        // `~bob/notes`: the shell's name for bob's home dir (`~/` stays).
        (
            "other-home",
            r#"(^|[\s'"(=:,])~[A-Za-z_][A-Za-z0-9_.\-]*(/|[\s'"),:]|$)"#,
            With("${1}~<user>${2}"),
        ),
        ("volume", r#"(/Volumes/)[^/\s:'"]+"#, With("${1}<volume>")),
        // Two characters at least: /mnt/c is WSL's drive C, not a name.
        ("volume", r#"(/mnt/)[^/\s:'"]{2,}"#, With("${1}<mount>")),
        // A machine on the local network by its mDNS, LAN or cloud-private
        // name (`alices-mbp.local`, `ip-10-0-0-1.ec2.internal`), whose first
        // label has a digit or a dash as machine names do; not a file's
        // second extension (`.env.local`, `config.local.json`) nor a
        // field (`self.internal`, `settings.local`).
        (
            "host",
            r"(?i)(^|//|[^a-z0-9._/\-])([a-z0-9\-]*[0-9\-][a-z0-9\-]*(\.[a-z0-9\-]+)*\.(local|lan|localdomain|home\.arpa|internal))([^a-z0-9.\-]|$)",
            With("${1}<host>${5}"),
        ),
        ("token", r"\b[0-9a-fA-F]{32,}\b", With("<hex>")),
        (
            "ip",
            r"\b(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}\b",
            With("<ip>"),
        ),
        (
            "ip",
            r"(?i)(^|[^0-9a-z:])([0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7})",
            Judge(ipv6),
        ),
        // Phone numbers: international (`+44 20 7946 0958`, 8 to 15
        // digits) or North American (`(415) 555-0132`, `415-555-0132`);
        // never a plain run of digits, a date or a version.
        // Not after a digit or letter (`1.0.0+20130313144700` is a
        // version), and no `.` between its groups (`+3.14159265`).
        (
            "phone",
            r"(^|[^0-9A-Za-z.+])(\+[0-9]{1,3}([ \-]?\(?[0-9]{1,4}\)?){2,5})",
            Judge(phone),
        ),
        (
            "phone",
            r"\([0-9]{3}\) ?[0-9]{3}[\-. ][0-9]{4}\b",
            With("<phone>"),
        ),
        (
            "phone",
            r"\b[0-9]{3}[\-.][0-9]{3}[\-.][0-9]{4}\b",
            With("<phone>"),
        ),
        ("token", r"[A-Za-z0-9+/_\-]{40,}={0,2}", Judge(base64)),
    ];
    table
        .into_iter()
        .map(|(name, pattern, replace)| Rule {
            name,
            // Constant patterns, each exercised by the corpus tests.
            pattern: Regex::new(pattern)
                .unwrap_or_else(|e| panic!("bad scrub pattern {pattern}: {e}")),
            replace,
        })
        .collect()
}

/// An international phone number: 8 to 15 digits after the `+`.
fn phone(caps: &Captures<'_>) -> String {
    let digits = caps[2].bytes().filter(u8::is_ascii_digit).count();
    if (8..=15).contains(&digits) {
        format!("{}<phone>", &caps[1])
    } else {
        caps[0].to_owned()
    }
}

/// An IPv6 address, when the candidate parses as one and has a digit (so
/// `a::b` in a Rust path is left alone).
fn ipv6(caps: &Captures<'_>) -> String {
    let candidate = &caps[2];
    let is_ip = candidate.parse::<std::net::Ipv6Addr>().is_ok()
        && candidate.bytes().any(|b| b.is_ascii_digit());
    format!("{}{}", &caps[1], if is_ip { "<ip>" } else { candidate })
}

/// A bearer credential, not the English word after "bearer": it has a digit
/// or is too long to be a word.
fn bearer(caps: &Captures<'_>) -> String {
    let value = &caps[3];
    if value.bytes().any(|b| b.is_ascii_digit()) || value.len() >= 20 {
        format!("{}{}<redacted>", &caps[1], &caps[2])
    } else {
        caps[0].to_owned()
    }
}

/// A key-like run: mixes upper case, lower case and digits (a long path or
/// identifier in one case does not).
fn base64(caps: &Captures<'_>) -> String {
    let run = &caps[0];
    let has = |f: fn(&u8) -> bool| run.as_bytes().iter().any(f);
    let slashes = run.bytes().filter(|&b| b == b'/').count();
    if has(u8::is_ascii_uppercase)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_digit)
        && slashes * 8 < run.len()
    {
        "<base64>".to_owned()
    } else {
        run.to_owned()
    }
}
