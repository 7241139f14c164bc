//! Where the CLI runs: read from the environment and a few small files, never
//! from a subprocess, so it costs microseconds.

use std::io::IsTerminal;
use std::path::Path;

/// The environment of one run, as it goes into each event.
///
/// ```
/// let context = tally::Context::detect();
/// assert_eq!(context.os, std::env::consts::OS);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Operating system family, e.g. "linux".
    pub os: String,
    /// CPU architecture, e.g. "x86_64".
    pub arch: String,
    /// Distribution and version on Linux ("debian 13"), version on macOS.
    pub os_version: Option<String>,
    /// CI vendor, e.g. "github-actions"; `None` outside CI.
    pub ci: Option<String>,
    /// AI coding agent driving the CLI, e.g. "claude-code".
    pub agent: Option<String>,
    /// Whether stdout is a terminal.
    pub tty: bool,
    /// Whether the process runs in a container.
    pub container: bool,
    /// Whether the process runs under WSL.
    pub wsl: bool,
}

/// CI vendors by the variable their runners set, most specific first.
const CI_VENDORS: &[(&str, &str)] = &[
    ("GITHUB_ACTIONS", "github-actions"),
    ("GITLAB_CI", "gitlab"),
    ("CIRCLECI", "circleci"),
    ("BUILDKITE", "buildkite"),
    ("TF_BUILD", "azure-pipelines"),
    ("JENKINS_URL", "jenkins"),
    ("TRAVIS", "travis"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("CODEBUILD_BUILD_ID", "aws-codebuild"),
    ("DRONE", "drone"),
    ("APPVEYOR", "appveyor"),
    ("SEMAPHORE", "semaphore"),
    ("BUDDY", "buddy"),
    ("NETLIFY", "netlify"),
    ("VERCEL", "vercel"),
    ("WOODPECKER", "woodpecker"),
];

/// AI agents by a variable their tool sets in the shells it runs.
const AGENTS: &[(&str, &str)] = &[
    ("CLAUDECODE", "claude-code"),
    ("CURSOR_AGENT", "cursor"),
    ("GEMINI_CLI", "gemini-cli"),
    ("CLINE_ACTIVE", "cline"),
    ("OPENCODE", "opencode"),
];

impl Context {
    /// Looks at the current process.
    pub fn detect() -> Self {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let os = std::env::consts::OS;
        Self {
            os: os.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            os_version: os_version(os),
            ci: ci_vendor(&get),
            agent: agent(&get, vars.iter().map(|(k, _)| k.as_str())),
            tty: std::io::stdout().is_terminal(),
            container: os == "linux"
                && (Path::new("/.dockerenv").exists()
                    || Path::new("/run/.containerenv").exists()
                    || get("container").is_some()
                    || get("KUBERNETES_SERVICE_HOST").is_some()),
            wsl: os == "linux"
                && (get("WSL_DISTRO_NAME").is_some()
                    || std::fs::read_to_string("/proc/sys/kernel/osrelease")
                        .is_ok_and(|r| r.to_ascii_lowercase().contains("microsoft"))),
        }
    }
}

fn is_set<'a>(get: &impl Fn(&str) -> Option<&'a str>, name: &str) -> bool {
    get(name).is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn ci_vendor<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    CI_VENDORS
        .iter()
        .find(|(var, _)| is_set(get, var))
        .map(|(_, vendor)| (*vendor).to_owned())
        .or_else(|| {
            (is_set(get, "CI") || is_set(get, "CONTINUOUS_INTEGRATION") || is_set(get, "BUILD_ID"))
                .then(|| "other".to_owned())
        })
}

fn agent<'a, 'k>(
    get: &impl Fn(&str) -> Option<&'a str>,
    mut names: impl Iterator<Item = &'k str>,
) -> Option<String> {
    // The emerging conventions name the agent in the value.
    for var in ["AI_AGENT", "AGENT"] {
        if let Some(name) = get(var).map(sanitize).filter(|n| !n.is_empty()) {
            return Some(name);
        }
    }
    if let Some((_, agent)) = AGENTS.iter().find(|(var, _)| is_set(get, var)) {
        return Some((*agent).to_owned());
    }
    names
        .any(|k| k.starts_with("CODEX_") && k != "CODEX_HOME")
        .then(|| "codex".to_owned())
}

/// An agent name from a free-form variable: lower case, a short token, so a
/// stray value cannot carry text into the event.
fn sanitize(value: &str) -> String {
    value
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect()
}

fn os_version(os: &str) -> Option<String> {
    match os {
        "linux" => {
            let text = std::fs::read_to_string("/etc/os-release")
                .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
                .ok()?;
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_owned())
                    .filter(|v| !v.is_empty())
            };
            let id = field("ID")?;
            Some(match field("VERSION_ID") {
                Some(version) => format!("{id} {version}"),
                None => id,
            })
        }
        "macos" => {
            let plist =
                std::fs::read_to_string("/System/Library/CoreServices/SystemVersion.plist").ok()?;
            let after = plist.split("<key>ProductVersion</key>").nth(1)?;
            let start = after.find("<string>")? + "<string>".len();
            let end = after[start..].find("</string>")?;
            Some(after[start..start + end].trim().to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn ci_vendors_are_named() {
        assert_eq!(
            ci_vendor(&env(&[("GITHUB_ACTIONS", "true")])).as_deref(),
            Some("github-actions")
        );
        assert_eq!(
            ci_vendor(&env(&[("TF_BUILD", "True")])).as_deref(),
            Some("azure-pipelines")
        );
        assert_eq!(ci_vendor(&env(&[("CI", "1")])).as_deref(), Some("other"));
        assert_eq!(ci_vendor(&env(&[("CI", "false")])), None);
        assert_eq!(ci_vendor(&env(&[])), None);
    }

    #[test]
    fn agents_are_named() {
        let none: [&str; 0] = [];
        assert_eq!(
            agent(&env(&[("AGENT", "Claude Code")]), none.into_iter()).as_deref(),
            Some("claude-code")
        );
        assert_eq!(
            agent(&env(&[("CLAUDECODE", "1")]), none.into_iter()).as_deref(),
            Some("claude-code")
        );
        assert_eq!(
            agent(&env(&[]), ["PATH", "CODEX_SANDBOX"].into_iter()).as_deref(),
            Some("codex")
        );
        assert_eq!(agent(&env(&[]), ["CODEX_HOME"].into_iter()), None);
        assert_eq!(
            agent(&env(&[("CURSOR_AGENT", "0")]), none.into_iter()),
            None
        );
    }
}
