//! The real client libraries of other analytics tools, from their
//! registries, for tests that say Tally speaks to them: a Python venv with
//! PyPI packages and a folder with npm packages, each made once under a
//! cache dir outside the checkout (`$TALLY_CLIENTS_DIR`, else
//! `~/.cache/tally-clients`) and shared by every test and run.
//!
//! Where a registry cannot be reached, the helpers say so loudly on stderr
//! and return `None`, and the test that asked skips; any other failure
//! (a package that does not install, a broken interpreter) panics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cache_dir() -> PathBuf {
    std::env::var_os("TALLY_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            Path::new(&home).join(".cache/tally-clients")
        })
}

/// Runs `command`, returning its output; panics if it cannot start.
fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

/// Whether an installer's failure says the registry could not be reached.
fn unreachable(output: &Output) -> bool {
    let text = String::from_utf8_lossy(&output.stderr).to_lowercase()
        + &String::from_utf8_lossy(&output.stdout).to_lowercase();
    [
        "connection",
        "network",
        "getaddrinfo",
        "eai_again",
        "enotfound",
        "name resolution",
        "timed out",
        "resolve",
        "failed to download",
    ]
    .iter()
    .any(|s| text.contains(s))
}

/// Makes `dir` with `make` once, under a lock shared by every test
/// process; `None` (after a loud message) when the registry is out of
/// reach.
fn once(dir: &Path, what: &str, make: impl FnOnce(&Path) -> Output) -> Option<()> {
    let done = dir.join(".installed");
    std::fs::create_dir_all(dir).expect("clients cache dir");
    let lock = File::create(dir.join(".lock")).expect("lock file");
    lock.lock().expect("lock");
    if done.exists() {
        return Some(());
    }
    let output = make(dir);
    if output.status.success() {
        std::fs::write(&done, what).expect("mark installed");
        return Some(());
    }
    if unreachable(&output) {
        eprintln!(
            "\n*** SKIPPED: {what} could not be installed: the registry is out of reach ***\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    panic!(
        "installing {what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Python interpreter of a venv holding `packages` (pinned, as pip
/// takes them: `name==version`), or `None` when PyPI is out of reach.
pub fn python(packages: &[&str]) -> Option<PathBuf> {
    let dir = cache_dir().join(format!("venv-{}", name_of(packages)));
    let what = format!("PyPI packages {packages:?}");
    once(&dir, &what, |dir| {
        let made = run(Command::new("python3").args(["-m", "venv"]).arg(dir));
        if !made.status.success() {
            return made;
        }
        run(Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages))
    })?;
    Some(dir.join("bin/python"))
}

/// A folder whose `node_modules` holds `packages` (pinned, as npm takes
/// them: `name@version`), for `node` to run scripts in, or `None` when the
/// npm registry is out of reach.
pub fn node(packages: &[&str]) -> Option<PathBuf> {
    let dir = cache_dir().join(format!("node-{}", name_of(packages)));
    let what = format!("npm packages {packages:?}");
    once(&dir, &what, |dir| {
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(dir)
            .args(packages))
    })?;
    Some(dir)
}

/// A folder name for a set of packages: the same set, the same folder.
fn name_of(packages: &[&str]) -> String {
    packages
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The binary of the Cargo package at `manifest_dir` (a client program
/// outside the workspace, with its own lock file), built once into the
/// clients cache, or `None` when crates.io is out of reach.
pub fn rust(manifest_dir: &Path, binary: &str) -> Option<PathBuf> {
    let target = cache_dir().join("rust-target");
    let what = format!("the crates of {}", manifest_dir.display());
    // Cargo locks its own target dir and builds only what changed.
    let output = run(Command::new(env_cargo())
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target));
    if !output.status.success() {
        if unreachable(&output) {
            eprintln!(
                "\n*** SKIPPED: {what} could not be fetched: the registry is out of reach ***\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return None;
        }
        panic!(
            "building {what} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Some(target.join("debug").join(binary))
}

/// The cargo that runs the tests, so the client is built by the same one.
fn env_cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| "cargo".into(), PathBuf::from)
}
