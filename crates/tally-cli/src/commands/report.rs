//! `tally report NAME`: a report, printed as a table, JSON or CSV.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use tally_report::{Query, Report, ReportName};

use crate::client::urlencode;
use crate::target::{Target, TargetArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which report.
    #[arg(value_parser = parse_report)]
    name: ReportName,
    /// The app.
    #[arg(long)]
    app: String,
    /// From this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
    /// Only this CLI version.
    #[arg(long)]
    version: Option<String>,
    /// Only this OS.
    #[arg(long)]
    os: Option<String>,
    /// Only humans, CI or AI agents.
    #[arg(long, value_parser = ["human", "ci", "agent"])]
    env: Option<String>,
    /// Only the runs the SDK sent, or only the requests imported from
    /// gateway logs (`tally import-logs`); both by default.
    #[arg(long, value_parser = ["sdk", "gateway", "all"])]
    source: Option<String>,
    /// deprecation: the flag, e.g. --flag=--legacy-output.
    #[arg(long, allow_hyphen_values = true)]
    flag: Option<String>,
    /// deprecation: the command path, e.g. "deploy create".
    #[arg(long)]
    command: Option<String>,
    /// deprecation: how many days back.
    #[arg(long)]
    days: Option<u32>,
    /// Most rows a table lists (default 100), the rest summed in one
    /// (other) row: a number, or "all".
    #[arg(long)]
    limit: Option<String>,
    /// How to print it.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The server's config file, for a store read directly: its
    /// `min_group_installs` hides the app's small groups, and its schema
    /// says which properties `events` shows, as the server does (a
    /// running server applies its own).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
}

/// How `tally report` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// The report as JSON (what the HTTP API answers).
    Json,
    /// CSV, one block per table.
    Csv,
}

fn parse_report(s: &str) -> Result<ReportName, String> {
    ReportName::parse(s).ok_or_else(|| {
        let known: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
        format!("no such report; reports: {}", known.join(", "))
    })
}

pub fn run(args: Args) -> Result<()> {
    let params: BTreeMap<String, String> = [
        ("app", Some(args.app)),
        ("since", args.since),
        ("until", args.until),
        ("version", args.version),
        ("os", args.os),
        ("env", args.env),
        ("source", args.source),
        ("flag", args.flag),
        ("command", args.command),
        ("days", args.days.map(|d| d.to_string())),
        ("limit", args.limit),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect();
    // Checked here too, so a bad filter fails the same way with or without
    // a server.
    let mut query = Query::from_params(args.name, &params)?;
    let report: Report = match args.target.resolve()? {
        Target::Store(store) => {
            if let Some(path) = &args.config {
                let mut settings = tally_server::Config::new(args.target.store.data.clone());
                super::serve::apply_config_file(path, &mut settings)?;
                settings.settle(&mut query);
            }
            store.report(&query)?
        }
        Target::Server(client) => {
            let query_string: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect();
            client
                .get(&format!(
                    "/api/v1/reports/{}?{}",
                    args.name,
                    query_string.join("&")
                ))?
                .body_mut()
                .read_json()?
        }
    };
    let text = match args.format {
        Format::Table => report.to_text(),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Csv => report.to_csv(),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
