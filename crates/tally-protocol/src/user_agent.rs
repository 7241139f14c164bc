//! The User-Agent grammar Tally's SDK writes and gateway-log import reads.
//!
//! ```text
//! user-agent = app "/" version [ " (" detail *( "; " detail ) ")" ]
//! detail     = os | arch | "ci=" vendor | "agent=" name | "container" | "wsl"
//! ```
//!
//! The first two details are the OS and the architecture, in that order;
//! the rest are keyed or bare flags in any order. Unknown details are
//! ignored by the parser, so the grammar can grow.

use std::fmt;
use std::str::FromStr;

/// A CLI's User-Agent, e.g. `mycli/1.4.2 (linux; x86_64; ci=github-actions)`.
///
/// ```
/// use tally_protocol::UserAgent;
/// let ua: UserAgent = "mycli/1.4.2 (linux; x86_64; ci=github-actions)".parse().unwrap();
/// assert_eq!(ua.app, "mycli");
/// assert_eq!(ua.ci.as_deref(), Some("github-actions"));
/// assert_eq!(ua.to_string(), "mycli/1.4.2 (linux; x86_64; ci=github-actions)");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgent {
    /// The CLI's name.
    pub app: String,
    /// The CLI's version.
    pub version: String,
    /// Operating system family.
    pub os: Option<String>,
    /// CPU architecture.
    pub arch: Option<String>,
    /// CI vendor.
    pub ci: Option<String>,
    /// AI agent.
    pub agent: Option<String>,
    /// Ran in a container.
    pub container: bool,
    /// Ran under WSL.
    pub wsl: bool,
}

impl fmt::Display for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.version)?;
        let (Some(os), Some(arch)) = (&self.os, &self.arch) else {
            return Ok(());
        };
        write!(f, " ({os}; {arch}")?;
        if let Some(ci) = &self.ci {
            write!(f, "; ci={ci}")?;
        }
        if let Some(agent) = &self.agent {
            write!(f, "; agent={agent}")?;
        }
        if self.container {
            f.write_str("; container")?;
        }
        if self.wsl {
            f.write_str("; wsl")?;
        }
        f.write_str(")")
    }
}

/// A User-Agent that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Tally User-Agent: {0}")]
pub struct NotTallyUserAgent(String);

impl FromStr for UserAgent {
    type Err = NotTallyUserAgent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NotTallyUserAgent(s.chars().take(80).collect());
        let (product, rest) = match s.split_once(" (") {
            Some((product, rest)) => (product, Some(rest.strip_suffix(')').ok_or_else(bad)?)),
            None => (s, None),
        };
        let (app, version) = product.split_once('/').ok_or_else(bad)?;
        if app.is_empty() || version.is_empty() || app.contains(' ') || version.contains(' ') {
            return Err(bad());
        }
        let mut ua = UserAgent {
            app: app.to_owned(),
            version: version.to_owned(),
            ..UserAgent::default()
        };
        if let Some(details) = rest {
            let mut parts = details.split("; ").map(str::trim);
            ua.os = parts.next().filter(|p| !p.is_empty()).map(str::to_owned);
            ua.arch = parts.next().filter(|p| !p.is_empty()).map(str::to_owned);
            for part in parts {
                match part.split_once('=') {
                    Some(("ci", v)) => ua.ci = Some(v.to_owned()),
                    Some(("agent", v)) => ua.agent = Some(v.to_owned()),
                    None if part == "container" => ua.container = true,
                    None if part == "wsl" => ua.wsl = true,
                    _ => {}
                }
            }
        }
        Ok(ua)
    }
}
