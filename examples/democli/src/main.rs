//! democli: a small CLI that reports its runs to Tally, as a real CLI would.
//!
//! Its ingest key and endpoint come from `DEMOCLI_TELEMETRY_KEY` and
//! `DEMOCLI_TELEMETRY_ENDPOINT` (the SDK reads both).

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// A demo CLI instrumented with the Tally SDK.
#[derive(Parser)]
#[command(name = "democli", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pretends to build.
    Build {
        /// Say more.
        #[arg(long)]
        verbose: bool,
        /// Target triple (free text: never sent).
        #[arg(long)]
        target: Option<String>,
        /// Build profile (a fixed set: its value is sent).
        #[arg(long, value_enum)]
        profile: Option<Profile>,
    },
    /// Pretends to deploy.
    Deploy {
        /// Region to deploy to.
        #[arg(long)]
        region: String,
        /// Skip the confirmation.
        #[arg(long)]
        force: bool,
    },
    /// Fails with an error that mentions private data.
    Fail,
    /// Panics with a message that mentions private data.
    Panic,
    /// Sleeps for MS milliseconds.
    Sleep {
        /// How long.
        ms: u64,
    },
    /// Shows or changes what democli reports.
    Telemetry {
        #[command(subcommand)]
        action: TelemetryCmd,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    Debug,
    Release,
}

#[derive(Clone, Copy, Subcommand)]
enum TelemetryCmd {
    /// Whether telemetry is on, and why.
    Status,
    /// Turn telemetry on.
    Enable,
    /// Turn telemetry off and delete unsent events.
    Disable,
    /// Print the events waiting to be sent.
    Show,
    /// Delete the events waiting to be sent.
    Purge,
    /// Erase everything this install sent from the server, and start anew
    /// under a new install id.
    Forget,
}

fn main() -> ExitCode {
    let telemetry = tally::Tally::builder("democli", env!("CARGO_PKG_VERSION"))
        .send_values_of(["--profile"])
        .catch_interrupts(true)
        .build();
    let command = Cli::command();
    let matches = command.clone().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Cmd::Telemetry { action } = cli.command {
        let action = match action {
            TelemetryCmd::Status => tally::Action::Status,
            TelemetryCmd::Enable => tally::Action::Enable,
            TelemetryCmd::Disable => tally::Action::Disable,
            TelemetryCmd::Show => tally::Action::Show,
            TelemetryCmd::Purge => tally::Action::Purge,
            TelemetryCmd::Forget => tally::Action::Forget,
        };
        return match telemetry.telemetry_command(action, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("democli: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let run = telemetry.start_clap(&command, &matches);
    let home = dirs::home_dir().unwrap_or_default();
    match cli.command {
        Cmd::Build { verbose, .. } => {
            if verbose {
                println!("building with {}", telemetry.user_agent());
            }
            println!("built");
        }
        Cmd::Deploy { region, force } => {
            // A custom event alongside the run's own.
            run.track(
                "deploy.plan",
                [("steps", 4.into()), ("forced", force.into())],
            );
            println!(
                "deployed to {region}{}",
                if force { " (forced)" } else { "" }
            );
        }
        Cmd::Fail => {
            let message = format!(
                "cannot read {}/.democli/credentials; ask admin@example.com for access",
                home.display()
            );
            eprintln!("democli: {message}");
            run.fail(1, "config.missing", &message);
            return ExitCode::FAILURE;
        }
        Cmd::Panic => panic!(
            "state file {}/.democli/state is corrupt (report to ops@example.com)",
            home.display()
        ),
        Cmd::Sleep { ms } => std::thread::sleep(Duration::from_millis(ms)),
        Cmd::Telemetry { .. } => unreachable!("handled above"),
    }
    run.finish(0);
    ExitCode::SUCCESS
}
