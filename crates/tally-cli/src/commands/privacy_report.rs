//! `tally privacy-report`: the telemetry disclosure maintainers publish,
//! as Markdown: every field sent and why, how long it is kept, how to turn
//! it off, and what is never collected.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The app, as its SDK names it (its environment variables follow).
    #[arg(long)]
    app: String,
    /// The server's config file, for the app's own retention.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The server's --retention-days.
    #[arg(long, env = crate::env::RETENTION_DAYS)]
    retention_days: Option<u32>,
    /// Also describe what is kept of the CLI's requests to its API, when
    /// its access logs are imported (`tally import-logs`).
    #[arg(long)]
    gateway: bool,
}

/// Every field of an event, what it holds, and why it is collected. A
/// test checks that each field the protocol has is here.
const FIELDS: &[(&str, &str, &str)] = &[
    (
        "id",
        "a random id of the event",
        "to store each event once, however often it is sent",
    ),
    (
        "timestamp",
        "when the command started (or a custom event was recorded)",
        "usage over time",
    ),
    (
        "app",
        "the CLI's name",
        "to tell the maintainers' CLIs apart",
    ),
    (
        "app_version",
        "the CLI's version",
        "which versions are in use, and which broke something",
    ),
    (
        "install_id",
        "a random id made on the first run, kept in the CLI's config file; derived from nothing about you or your machine",
        "to count installations rather than runs",
    ),
    (
        "name",
        "the name of a custom event the CLI records (e.g. `cache.hit`)",
        "what the maintainers chose to measure",
    ),
    (
        "command",
        "the command run, e.g. `deploy create` (never its arguments)",
        "which commands are used",
    ),
    (
        "flags",
        "the names of the flags typed, e.g. `--force`; never their values, but for flags whose value is one of a fixed set of choices the maintainers list (e.g. `--format=json`), recorded as a property",
        "which options are used, before one is removed",
    ),
    ("exit_code", "the exit code", "how often commands succeed"),
    (
        "outcome",
        "success, failure, crash, interrupted or killed",
        "how often commands succeed",
    ),
    (
        "duration_ms",
        "how long the command took",
        "which commands are slow",
    ),
    (
        "os",
        "the operating system family (linux, macos, windows)",
        "which platforms to support",
    ),
    (
        "arch",
        "the CPU architecture",
        "which platforms to build for",
    ),
    (
        "os_version",
        "the operating system's version",
        "which platforms to support",
    ),
    (
        "ci",
        "the CI service, when run in one",
        "to tell automated runs from people's",
    ),
    (
        "agent",
        "the AI coding agent that ran the CLI, when one did",
        "to tell agents' runs from people's",
    ),
    (
        "tty",
        "whether the output went to a terminal",
        "to tell interactive use from scripts",
    ),
    (
        "container",
        "whether the CLI ran in a container",
        "which environments to support",
    ),
    (
        "wsl",
        "whether it ran under the Windows Subsystem for Linux",
        "which environments to support",
    ),
    (
        "error",
        "the kind of an error, and its message and source location with paths, user and host names, e-mail addresses, tokens, IP addresses and phone numbers removed on your machine and again on the server",
        "which errors people hit",
    ),
    (
        "deps",
        "versions of tools the CLI depends on (e.g. git 2.43.0)",
        "which versions to keep supporting",
    ),
    (
        "properties",
        "up to 32 values the CLI records with a run or custom event; text among them is scrubbed by the server as error messages are",
        "what the maintainers chose to measure",
    ),
    (
        "source",
        "whether the event came from the CLI or from the API's access logs",
        "to count each apart",
    ),
];

pub fn run(args: Args) -> Result<()> {
    let mut config = tally_server::Config::new("unused".into());
    config.retention_days = args.retention_days;
    if let Some(path) = &args.config {
        super::serve::apply_config_file(path, &mut config)?;
    }
    let schema = config.schemas.get(&args.app);
    print!(
        "{}",
        page(
            &args.app,
            config.retention_of(&args.app),
            args.gateway,
            schema
        )
    );
    Ok(())
}

/// The section on what the app's schema lets its CLI send.
fn declared(app: &str, schema: &tally_protocol::schema::Schema) -> String {
    let mut out = format!(
        "## What {app} may send beyond that\n\nIts maintainers declared every custom event and property; \
         the server keeps nothing else ({policy}). The same list is published at \
         `/v1/apps/{app}/schema` on their server. The daily counts keep the yes/no properties of \
         custom events, and their text properties whose value is a short token (such as `disk`), for \
         as long as the counts are kept; never numbers or free text.\n\n\
         | Event | Property | Type and values | Shown in reports |\n|---|---|---|---|\n",
        policy = match schema.undeclared {
            tally_protocol::schema::Undeclared::Reject => {
                "it refuses other custom events, and takes other properties off a run"
            }
            tally_protocol::schema::Undeclared::Drop => "it drops the rest on arrival",
        }
    );
    let events = std::iter::once(("(every run)".to_owned(), None, &schema.properties)).chain(
        schema.events.iter().map(|(name, spec)| {
            (
                format!("`{name}`"),
                spec.description.as_deref(),
                &spec.properties,
            )
        }),
    );
    for (event, description, properties) in events {
        if properties.is_empty() && event == "(every run)" {
            continue;
        }
        if properties.is_empty() {
            let _ = writeln!(out, "| {event} | | {} | |", description.unwrap_or(""));
        }
        for (key, spec) in properties {
            let mut kind = spec.kind.as_str().to_owned();
            if !spec.values.is_empty() {
                kind = format!("{kind}: {}", spec.values.join(", "));
            }
            if spec.min.is_some() || spec.max.is_some() {
                let bound = |b: Option<f64>| b.map_or("any".to_owned(), |b| b.to_string());
                kind = format!("{kind}, {} to {}", bound(spec.min), bound(spec.max));
            }
            let shown = if spec.report { "yes" } else { "no" };
            let _ = writeln!(out, "| {event} | `{key}` | {kind} | {shown} |");
        }
    }
    out.push('\n');
    out
}

/// The page for `app`, kept as `keep` says, sending what `schema`
/// declares if it has one.
fn page(
    app: &str,
    keep: tally_server::AppRetention,
    gateway: bool,
    schema: Option<&tally_protocol::schema::Schema>,
) -> String {
    let env = tally_protocol::env_prefix(app);
    let days = |d: Option<u32>| {
        d.map_or_else(
            || "until the maintainers delete them".to_owned(),
            |d| format!("{d} days"),
        )
    };
    let mut out = String::new();
    let _ = writeln!(out, "# Telemetry of {app}\n");
    let _ = writeln!(
        out,
        "{app} can send anonymous usage data to a server its maintainers run \
         themselves (Tally). It helps them see which versions, platforms, \
         commands and options are in use, how often commands succeed and which \
         errors people hit. This page lists everything it sends, why, how long \
         it is kept, and how to turn it off.\n"
    );
    let _ = writeln!(
        out,
        "## What is sent\n\nOne event per command run (and any custom events {app} records):\n"
    );
    let _ = writeln!(out, "| Field | What it holds | Why |\n|---|---|---|");
    for (field, what, why) in FIELDS {
        let _ = writeln!(out, "| `{field}` | {what} | {why} |");
    }
    let _ = writeln!(
        out,
        "\nNothing is sent on the first run: it shows a notice instead.\n"
    );
    if let Some(schema) = schema {
        out.push_str(&declared(app, schema));
    }
    if gateway {
        let _ = writeln!(
            out,
            "## Requests to the API\n\n{app}'s API keeps access logs, as web servers do; the maintainers \
             read them as usage too. Of each request they keep the feature used (the route, never the \
             ids in its path), the status, the time it took, and the CLI name, version, OS and arch from \
             the User-Agent. Who made it is kept only as a keyed hash of the account's token or name \
             (or, for a request with none, of its User-Agent), which cannot be turned back into it. The address it came from and the query string are \
             never kept.\n"
        );
    }
    let _ = writeln!(
        out,
        "## How long it is kept\n\n- Each event as sent: {}.\n- Daily counts made from them (what the \
         maintainers' reports show): {}.\n",
        days(keep.events_days),
        days(keep.rollups_days)
    );
    let _ = writeln!(
        out,
        "## How to turn it off\n\nAny one of these turns it off, and nothing is sent from then on:\n\n\
         - set `DO_NOT_TRACK=1` in your environment (it also turns off other tools that honour it);\n\
         - set `{env}_TELEMETRY_DISABLED=1`;\n\
         - run `{app} telemetry disable`, where {app} has the telemetry command, which also deletes \
         what waits to be sent (`{app} telemetry status` says whether it is on and why, \
         `{app} telemetry show` prints what waits to be sent, `{app} telemetry purge` deletes it).\n"
    );
    let _ = writeln!(
        out,
        "## What is never collected\n\n\
         - your IP address: the server does not store it;\n\
         - the values of flags, arguments, file names or file contents, environment variables;\n\
         - your user name, home directory, host name, e-mail address, phone number or tokens, \
         removed where recognised from error messages on your machine and again on the server \
         (short or common names such as `root` are left, as removing them would destroy messages);\n\
         - any id derived from you or your machine: the install id is random.\n"
    );
    let _ = writeln!(
        out,
        "## Deleting what was sent\n\nThe install id is random and tied to nothing else, so what was \
         sent cannot be linked to you by itself. To have it deleted all the same, run \
         `{app} telemetry forget`: the server deletes every event of your install and takes it out \
         of the daily counts (on days whose events are already past retention, your runs stay in \
         the counts, with the command, version and platform they count by but not your install, \
         which leaves them), passes the deletion on to \
         the tools the maintainers forward to, and your install starts again under a new id. Only \
         your install can ask this: it proves it with a secret kept in its config file, which the \
         install id is made of. `{app} telemetry status` shows your install id; the maintainers \
         can delete it for you too. `{app} telemetry disable` stops sending and deletes what waits \
         on your machine."
    );
    out
}
