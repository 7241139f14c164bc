//! A corpus of User-Agents as real CLIs send them.

use super::*;

/// (User-Agent, kind, name, version, os, arch, agent)
type Case = (
    &'static str,
    Kind,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const CORPUS: &[Case] = &[
    // Tally's own grammar.
    (
        "mycli/1.4.2 (linux; x86_64; ci=github-actions)",
        Kind::Cli,
        "mycli",
        Some("1.4.2"),
        Some("linux"),
        Some("x86_64"),
        None,
    ),
    (
        "mycli/1.4.2 (darwin; arm64; agent=claude-code)",
        Kind::Cli,
        "mycli",
        Some("1.4.2"),
        Some("macos"),
        Some("aarch64"),
        Some("claude-code"),
    ),
    // name/version.
    (
        "terraform/1.9.5",
        Kind::Cli,
        "terraform",
        Some("1.9.5"),
        None,
        None,
        None,
    ),
    (
        "curl/8.5.0",
        Kind::Cli,
        "curl",
        Some("8.5.0"),
        None,
        None,
        None,
    ),
    // name/vX (os/arch) ...
    (
        "flyctl/v0.3.45 (darwin/arm64) go1.23.1",
        Kind::Cli,
        "flyctl",
        Some("0.3.45"),
        Some("macos"),
        Some("aarch64"),
        None,
    ),
    (
        "gh/2.63.0 (linux; amd64)",
        Kind::Cli,
        "gh",
        Some("2.63.0"),
        Some("linux"),
        Some("x86_64"),
        None,
    ),
    (
        "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        Kind::Cli,
        "kubectl",
        Some("1.31.0"),
        Some("linux"),
        Some("x86_64"),
        None,
    ),
    // Words and a version.
    (
        "vercel 37.4.2 node-v20.11.0 linux (x64)",
        Kind::Cli,
        "vercel",
        Some("37.4.2"),
        Some("linux"),
        Some("x86_64"),
        None,
    ),
    (
        "GitHub CLI 2.63.0",
        Kind::Cli,
        "GitHub CLI",
        Some("2.63.0"),
        None,
        None,
        None,
    ),
    // Key/value tokens.
    (
        "aws-cli/2.15.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#standard",
        Kind::Cli,
        "aws-cli",
        Some("2.15.0"),
        Some("linux"),
        Some("x86_64"),
        None,
    ),
    (
        "aws-cli/2.17.1 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9",
        Kind::Cli,
        "aws-cli",
        Some("2.17.1"),
        Some("macos"),
        Some("aarch64"),
        None,
    ),
    // Embedded JSON.
    (
        r#"pip/24.0 {"ci":null,"cpu":"x86_64","distro":{"name":"Ubuntu","version":"22.04"},"implementation":{"name":"CPython","version":"3.12.1"},"installer":{"name":"pip","version":"24.0"},"python":"3.12.1","system":{"name":"Linux","release":"6.5.0"}}"#,
        Kind::Cli,
        "pip",
        Some("24.0"),
        Some("linux"),
        Some("x86_64"),
        None,
    ),
    // Product tokens and comments.
    (
        "Homebrew/4.2.0 (Macintosh; arm64 Mac OS X 14.2) curl/8.4.0",
        Kind::Cli,
        "Homebrew",
        Some("4.2.0"),
        Some("macos"),
        Some("aarch64"),
        None,
    ),
    (
        "npm/10.2.4 node/v20.11.0 darwin arm64 workspaces/false",
        Kind::Cli,
        "npm",
        Some("10.2.4"),
        Some("macos"),
        Some("aarch64"),
        None,
    ),
    (
        "Go-http-client/1.1",
        Kind::Cli,
        "Go-http-client",
        Some("1.1"),
        None,
        None,
        None,
    ),
    (
        "python-requests/2.31.0",
        Kind::Cli,
        "python-requests",
        Some("2.31.0"),
        None,
        None,
        None,
    ),
    (
        "deno/1.44.0 (windows; x86_64)",
        Kind::Cli,
        "deno",
        Some("1.44.0"),
        Some("windows"),
        Some("x86_64"),
        None,
    ),
    (
        "mycli/2.0.0 (win32; x64)",
        Kind::Cli,
        "mycli",
        Some("2.0.0"),
        Some("windows"),
        Some("x86_64"),
        None,
    ),
    // Agent markers.
    (
        "mycli/1.0.0 Agent/cursor",
        Kind::Cli,
        "mycli",
        Some("1.0.0"),
        None,
        None,
        Some("cursor"),
    ),
    (
        "mycli/1.0.0 (linux/amd64) AIAgent/codex",
        Kind::Cli,
        "mycli",
        Some("1.0.0"),
        Some("linux"),
        Some("x86_64"),
        Some("codex"),
    ),
    (
        "tool/3.1 agent-name/claude-code",
        Kind::Cli,
        "tool",
        Some("3.1"),
        None,
        None,
        Some("claude-code"),
    ),
    // Browsers are browsers.
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        Kind::Browser,
        "browser",
        None,
        Some("macos"),
        None,
        None,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
        Kind::Browser,
        "browser",
        None,
        Some("linux"),
        Some("x86_64"),
        None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
        Kind::Browser,
        "browser",
        None,
        Some("android"),
        None,
        None,
    ),
    // What a User-Agent says of its platform is kept only where Tally knows it.
    (
        "x/1.0 os/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA md/arch#z80",
        Kind::Cli,
        "x",
        Some("1.0"),
        None,
        None,
        None,
    ),
    // Nothing readable: counted as unknown.
    ("", Kind::Unknown, "(unknown)", None, None, None, None),
    ("-", Kind::Unknown, "(unknown)", None, None, None, None),
    ("12345", Kind::Unknown, "(unknown)", None, None, None, None),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        Kind::Unknown,
        "(unknown)",
        None,
        None,
        None,
        None,
    ),
];

#[test]
fn each_family_reads_as_its_cli() {
    for &(ua, kind, name, version, os, arch, agent) in CORPUS {
        let c = parse(ua);
        assert_eq!(
            (
                c.kind,
                c.name.as_str(),
                c.version.as_deref(),
                c.os.as_deref(),
                c.arch.as_deref(),
                c.agent.as_deref()
            ),
            (kind, name, version, os, arch, agent),
            "{ua}"
        );
    }
}

#[test]
fn a_maintainers_rule_comes_first_and_the_rest_fills_in() {
    let rules = [Rule::new(r"^(?P<name>acme) build (?P<version>\S+)").expect("regex")];
    let c = parse_with(&rules, "acme build 7.1.0 (linux; arm64)");
    assert_eq!(
        (
            c.kind,
            c.name.as_str(),
            c.version.as_deref(),
            c.os.as_deref(),
            c.arch.as_deref()
        ),
        (
            Kind::Cli,
            "acme",
            Some("7.1.0"),
            Some("linux"),
            Some("aarch64")
        )
    );
    // Not matching: the built-in reading.
    assert_eq!(parse_with(&rules, "gh/2.0.0").name, "gh");
}
