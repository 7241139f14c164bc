//! The subcommands, one module each: its arguments and what it does.

mod app;
mod demo_data;
mod export;
mod forget;
mod forward;
mod import_logs;
mod privacy_report;
mod report;
mod retention;
mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Self-hosted usage analytics for command-line tools.
#[derive(Parser, Debug)]
#[command(name = "tally", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: ingest from CLIs, admin API, metrics.
    Serve(serve::Args),
    /// Write synthetic events into a data dir (for trying the dashboard and
    /// for benchmarks); the server must not be running on it.
    DemoData(demo_data::Args),
    /// Manage apps (each CLI that reports to this server is one app).
    App {
        #[command(subcommand)]
        command: app::Command,
    },
    /// Answer a report (versions, platforms, commands, flags, errors,
    /// durations, installs, environments, deprecation, health, deps).
    Report(report::Args),
    /// Print stored events as NDJSON, one event a line.
    Export(export::Args),
    /// Import API gateway or web server access logs (nginx, Apache, JSON)
    /// as the usage of the CLI that made the requests.
    ImportLogs(import_logs::Args),
    /// Erase one install: its events and its part in the reports, as its
    /// user asked.
    Forget(forget::Args),
    /// What forwarding to PostHog, Segment and webhooks did: status, dead
    /// letters, replay.
    Forward {
        #[command(subcommand)]
        command: forward::Command,
    },
    /// Write the telemetry disclosure of an app, as Markdown: every field
    /// sent and why, how long it is kept, how to turn it off, what is
    /// never collected.
    PrivacyReport(privacy_report::Args),
    /// What retention forgets of each app, and from which day.
    Retention {
        #[command(subcommand)]
        command: retention::Command,
    },
}

/// Runs the subcommand `cli` names.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::DemoData(args) => demo_data::run(args),
        Command::App { command } => app::run(command),
        Command::Report(args) => report::run(args),
        Command::Export(args) => export::run(args),
        Command::Forget(args) => forget::run(args),
        Command::Forward { command } => forward::run(command),
        Command::ImportLogs(args) => import_logs::run(args),
        Command::Retention { command } => retention::run(command),
        Command::PrivacyReport(args) => privacy_report::run(args),
    }
}
