//! User-Agents as real CLIs send them, read for the CLI's name, version,
//! OS and arch, and the AI agent that drove it.
//!
//! Tally's own grammar (docs/sdk.md) is read first; then the shapes other
//! CLIs use, which differ widely:
//!
//! | Shape | Example |
//! |---|---|
//! | `name/version` | `terraform/1.9.5` |
//! | `name/vX (os/arch) ...` | `flyctl/v0.3.45 (darwin/arm64) go1.23` |
//! | words and a version | `vercel 37.4.2 node-v20.11.0 linux (x64)`, `GitHub CLI 2.63.0` |
//! | key/value tokens | `aws-cli/2.15.0 ua/2.0 os/linux#6.5 md/arch#x86_64 lang/python#3.11` |
//! | embedded JSON | `pip/24.0 {"cpu":"x86_64","system":{"name":"Linux"}, ...}` |
//! | product tokens, comments | `Homebrew/4.2.0 (Macintosh; arm64 Mac OS X 14.2) curl/8.4.0` |
//!
//! An agent marker (`Agent/<name>`, `AIAgent/<name>`, `agent-name/<name>`,
//! or Tally's `agent=`) says an AI agent ran the CLI. A browser is a
//! browser; anything else that names no product is [`Kind::Unknown`],
//! counted as such and never dropped.

use regex::Regex;
use tally_protocol::platform;

/// What made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A program that names itself: a CLI, a library, a tool.
    Cli,
    /// A web browser.
    Browser,
    /// A User-Agent that names nothing readable (or none at all).
    Unknown,
}

/// The client a User-Agent describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// What it is.
    pub kind: Kind,
    /// Its name (`gh`, `GitHub CLI`; `browser` for browsers, `(unknown)`).
    pub name: String,
    /// Its version, without a leading `v`.
    pub version: Option<String>,
    /// Its OS, in Tally's words (`linux`, `macos`, `windows`).
    pub os: Option<String>,
    /// Its CPU architecture, in Tally's words (`x86_64`, `aarch64`).
    pub arch: Option<String>,
    /// The AI agent that drove it, if it says.
    pub agent: Option<String>,
    /// The CI it ran in, if it says.
    pub ci: Option<String>,
}

impl Client {
    fn named(kind: Kind, name: &str) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            version: None,
            os: None,
            arch: None,
            agent: None,
            ci: None,
        }
    }
}

/// A maintainer's own rule for their CLI's User-Agent: a regex whose named
/// groups (`name`, `version`, `os`, `arch`, `agent`) say what is where; a
/// group missing from the pattern or the match is left to the built-in
/// reading.
///
/// ```
/// let rule = tally_gateway::agent::Rule::new(r"^acme-cli build (?P<version>\S+) on (?P<os>\w+)")?;
/// let client = tally_gateway::agent::parse_with(&[rule], "acme-cli build 7.1 on Darwin");
/// assert_eq!(client.version.as_deref(), Some("7.1"));
/// assert_eq!(client.os.as_deref(), Some("macos"));
/// # Ok::<(), regex::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: Regex,
}

impl Rule {
    /// The rule of `pattern`, or why it is no regex.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(pattern).map(|pattern| Self { pattern })
    }
}

/// Reads `ua` with the built-in shapes alone.
pub fn parse(ua: &str) -> Client {
    parse_with(&[], ua)
}

/// Reads `ua`: the first of `rules` that matches, then the built-in shapes
/// for what it left out.
pub fn parse_with(rules: &[Rule], ua: &str) -> Client {
    let ua = ua.trim();
    let mut client = built_in(ua);
    if let Some(caps) = rules.iter().find_map(|r| r.pattern.captures(ua)) {
        let group = |name| caps.name(name).map(|m| m.as_str().to_owned());
        if let Some(name) = group("name") {
            client.name = name;
        } else if client.kind != Kind::Cli {
            // A rule that matches names a CLI; its name is the pattern's
            // first word at least.
            client.name = ua
                .split_whitespace()
                .next()
                .unwrap_or("(unknown)")
                .to_owned();
        }
        client.kind = Kind::Cli;
        client.version = group("version")
            .map(|v| strip_v(&v).to_owned())
            .or(client.version);
        client.os = group("os").map(|o| platform::os(&o)).or(client.os);
        client.arch = group("arch").map(|a| platform::arch(&a)).or(client.arch);
        client.agent = group("agent").or(client.agent);
    }
    client
}

fn built_in(ua: &str) -> Client {
    if ua.is_empty() || ua == "-" {
        return Client::named(Kind::Unknown, "(unknown)");
    }
    if is_browser(ua) {
        let mut client = Client::named(Kind::Browser, "browser");
        platform_from(&words(ua), &mut client);
        return client;
    }
    if let Some(client) = tally(ua) {
        return client;
    }
    // pip puts its platform in JSON after its product token.
    let (text, json) = match ua.find(" {") {
        Some(at) if ua.ends_with('}') => (&ua[..at], Some(&ua[at + 1..])),
        _ => (ua, None),
    };
    let tokens = tokens(text);
    let mut client = match tokens.first() {
        Some(Token::Product(name, version)) if is_name(name) => {
            let mut client = Client::named(Kind::Cli, name);
            client.version = Some(strip_v(version).to_owned()).filter(|v| !v.is_empty());
            client
        }
        _ => match spaced(&tokens) {
            Some(client) => client,
            None => return Client::named(Kind::Unknown, "(unknown)"),
        },
    };
    for token in &tokens {
        if let Token::Product(key, value) = token {
            match key.to_ascii_lowercase().as_str() {
                "agent" | "aiagent" | "agent-name" => {
                    client.agent = client.agent.take().or(Some((*value).to_owned()));
                }
                // aws-cli's key/value tokens: os/linux#6.5, md/arch#x86_64.
                "os" => {
                    // Only an OS Tally knows: the rest of a User-Agent is
                    // anyone's to fill with anything.
                    let os = platform::os(until_hash(value));
                    if KNOWN_OS.contains(&os.as_str()) {
                        set(&mut client.os, os);
                    }
                }
                "md" | "arch" => {
                    let value = value.strip_prefix("arch#").unwrap_or(value);
                    if let Some(arch) = known_arch(until_hash(value)) {
                        set(&mut client.arch, arch);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(json) = json {
        from_json(json, &mut client);
    }
    platform_from(&words(text), &mut client);
    client
}

/// Tally's own grammar, when the OS it names is one.
fn tally(ua: &str) -> Option<Client> {
    let parsed: tally_protocol::UserAgent = ua.parse().ok()?;
    let os = platform::os(parsed.os.as_deref()?);
    if !KNOWN_OS.contains(&os.as_str()) || !is_name(&parsed.app) {
        return None;
    }
    Some(Client {
        kind: Kind::Cli,
        name: parsed.app,
        version: Some(strip_v(&parsed.version).to_owned()),
        os: Some(os),
        arch: parsed.arch.as_deref().and_then(known_arch),
        agent: parsed.agent,
        ci: parsed.ci,
    })
}

const KNOWN_OS: &[&str] = &[
    "linux", "macos", "windows", "freebsd", "openbsd", "netbsd", "android", "ios",
];

fn set(slot: &mut Option<String>, value: String) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn until_hash(s: &str) -> &str {
    s.split('#').next().unwrap_or(s)
}

fn strip_v(version: &str) -> &str {
    match version.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => version,
    }
}

/// A product name: starts with a letter, and is no browser's.
fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic()) && name != "Mozilla"
}

fn is_browser(ua: &str) -> bool {
    ua.starts_with("Mozilla/")
        && ["Chrome/", "Firefox/", "Safari/", "Edg/", "OPR/", "Gecko/"]
            .iter()
            .any(|m| ua.contains(m))
        && !ua.contains("compatible;")
}

/// A piece of a User-Agent.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    /// `name/version`.
    Product(&'a str, &'a str),
    /// `( ... )`, without the parentheses.
    Comment(&'a str),
    /// Anything else.
    Word(&'a str),
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('(') {
            let end = inner.find(')').unwrap_or(inner.len());
            out.push(Token::Comment(&inner[..end]));
            rest = inner.get(end + 1..).unwrap_or("").trim_start();
            continue;
        }
        let end = rest.find([' ', '(']).unwrap_or(rest.len());
        let word = &rest[..end];
        out.push(match word.split_once('/') {
            Some((name, version)) if !name.is_empty() => Token::Product(name, version),
            _ => Token::Word(word),
        });
        rest = rest[end..].trim_start();
    }
    out
}

/// The words-and-a-version shape: the name is the words before the first
/// one that is a version (`GitHub CLI 2.63.0`, `vercel 37.4.2 ...`).
fn spaced(tokens: &[Token]) -> Option<Client> {
    let mut name = Vec::new();
    for token in tokens {
        match token {
            Token::Word(w) if is_version(w) && !name.is_empty() => {
                let mut client = Client::named(Kind::Cli, &name.join(" "));
                client.version = Some(strip_v(w).to_owned());
                return Some(client);
            }
            Token::Word(w) if w.starts_with(|c: char| c.is_ascii_alphabetic()) => name.push(*w),
            _ => return None,
        }
    }
    None
}

fn is_version(word: &str) -> bool {
    let digits = strip_v(word);
    digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.contains('.')
        && digits
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
}

/// Every word of `text`, split at spaces, `;`, `/`, `(`, `)` and `,`.
fn words(text: &str) -> Vec<&str> {
    text.split([' ', ';', '/', '(', ')', ','])
        .filter(|w| !w.is_empty())
        .collect()
}

/// The OS and arch among `words`, where not known yet.
fn platform_from(words: &[&str], client: &mut Client) {
    for (i, word) in words.iter().enumerate() {
        let lower = word.to_ascii_lowercase();
        let os = match lower.as_str() {
            "macintosh" | "darwin" | "macos" | "osx" => Some("macos".to_owned()),
            "mac"
                if words
                    .get(i + 1)
                    .is_some_and(|w| w.eq_ignore_ascii_case("os")) =>
            {
                Some("macos".to_owned())
            }
            "linux" | "windows" | "win32" | "win64" | "windows_nt" | "freebsd" | "openbsd"
            | "netbsd" | "android" | "iphone" | "ipad" | "ios" => Some(match lower.as_str() {
                "iphone" | "ipad" => "ios".to_owned(),
                other => platform::os(other),
            }),
            _ => None,
        };
        if let Some(os) = os {
            // Android says "Linux" too, before or after itself.
            if os == "android" && client.os.as_deref() == Some("linux") {
                client.os = Some(os);
            } else {
                set(&mut client.os, os);
            }
        }
        if let Some(arch) = known_arch(word) {
            set(&mut client.arch, arch);
        }
    }
}

/// `word` as an architecture Tally knows, if it is one.
fn known_arch(word: &str) -> Option<String> {
    let arch = platform::arch(word);
    ["x86_64", "aarch64", "x86", "arm"]
        .contains(&arch.as_str())
        .then_some(arch)
}

/// pip's JSON: `{"cpu": ..., "system": {"name": ...}, "ci": ...}`.
fn from_json(json: &str, client: &mut Client) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return;
    };
    if let Some(os) = value["system"]["name"].as_str() {
        set(&mut client.os, platform::os(os));
    }
    if let Some(arch) = value["cpu"].as_str().and_then(known_arch) {
        set(&mut client.arch, arch);
    }
    if value["ci"].as_bool() == Some(true) {
        set(&mut client.ci, "unknown".to_owned());
    }
}

#[cfg(test)]
mod tests;
