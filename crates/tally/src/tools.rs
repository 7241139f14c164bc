//! Versions of the tools a CLI depends on, run only on request and cached.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const TIMEOUT: Duration = Duration::from_secs(1);
const CACHE_SECS: u64 = 24 * 3600;

#[derive(Serialize, Deserialize)]
struct Cached {
    version: String,
    checked_at: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `tool args...`'s version: from the cache when fresh, else by running it
/// (killed after a second).
pub(crate) fn version(cache_dir: Option<&Path>, tool: &str, args: &[&str]) -> Option<String> {
    let key = std::iter::once(tool)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let path = cache_dir.map(|d| d.join("tools.json"));
    let mut cache: BTreeMap<String, Cached> = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(hit) = cache.get(&key)
        && now().saturating_sub(hit.checked_at) < CACHE_SECS
    {
        return Some(hit.version.clone());
    }
    let version = run(tool, args)?;
    cache.insert(
        key,
        Cached {
            version: version.clone(),
            checked_at: now(),
        },
    );
    if let (Some(path), Ok(json)) = (path, serde_json::to_vec(&cache)) {
        let _ = crate::fsutil::write_atomic(&path, &json);
    }
    Some(version)
}

fn run(tool: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child
        .stdout
        .take()?
        .take(4096)
        .read_to_string(&mut out)
        .ok()?;
    parse_version(&out)
}

/// The first dotted number in a tool's output: "git version 2.43.0" -> "2.43.0".
fn parse_version(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .map(|w| w.trim_start_matches('v'))
        .find(|w| {
            w.contains('.')
                && w.starts_with(|c: char| c.is_ascii_digit())
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .map(|w| w.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_are_found_in_tool_output() {
        assert_eq!(
            parse_version("git version 2.43.0\n").as_deref(),
            Some("2.43.0")
        );
        assert_eq!(
            parse_version("Docker version 27.1.1, build 6312585").as_deref(),
            Some("27.1.1")
        );
        assert_eq!(parse_version("node v20.11.1").as_deref(), Some("20.11.1"));
        assert_eq!(parse_version("no version here"), None);
    }
}
