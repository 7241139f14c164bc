//! `tally forward status|dead|replay`: what forwarding did, on the data
//! dir's files, whether a server runs on it or not.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Each destination: delivered, waiting (backlog), dead letters,
    /// retries, the last error and the last delivery.
    Status {
        #[command(flatten)]
        data: Data,
        /// Print JSON, one object a destination, in place of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a destination's dead letters as NDJSON: each refused event
    /// with the destination's status and answer.
    Dead {
        #[command(flatten)]
        which: Which,
    },
    /// Send a destination's dead letters again (once what refused them is
    /// fixed): the running server takes them at once, a stopped one when
    /// it starts.
    Replay {
        #[command(flatten)]
        which: Which,
    },
}

#[derive(clap::Args, Debug)]
pub struct Data {
    /// The data dir of the server that forwards.
    #[arg(long, env = crate::env::DATA, default_value = "tally-data")]
    data: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct Which {
    #[command(flatten)]
    data: Data,
    /// The app.
    #[arg(long)]
    app: String,
    /// The destination's name, as in the config file.
    #[arg(long)]
    destination: String,
}

pub fn run(command: Command) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Status { data, json } => {
            let found = tally_forward::status(&data.data)?;
            if json {
                for status in &found {
                    writeln!(out, "{}", serde_json::to_string(status)?)?;
                }
                return Ok(());
            }
            if found.is_empty() {
                writeln!(
                    out,
                    "No destination has forwarded from {}.",
                    data.data.display()
                )?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<16} {:<16} {:>10} {:>10} {:>8} {:>8}  {:<20}  last error",
                "app", "destination", "sent", "backlog", "dead", "retries", "last delivered"
            )?;
            for s in found {
                let delivered = s
                    .state
                    .last_delivered
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "never".into());
                let dead = if s.replaying {
                    format!("{}+r", s.state.dead)
                } else {
                    s.state.dead.to_string()
                };
                writeln!(
                    out,
                    "{:<16} {:<16} {:>10} {:>10} {:>8} {:>8}  {:<20}  {}",
                    s.app,
                    s.destination,
                    s.state.sent,
                    s.backlog,
                    dead,
                    s.state.retries,
                    delivered,
                    s.state.last_error.as_deref().unwrap_or("-")
                )?;
            }
        }
        Command::Dead { which } => {
            let mut failed = None;
            tally_forward::dead_letters(
                &which.data.data,
                &which.app,
                &which.destination,
                |letter| {
                    if failed.is_none()
                        && let Err(e) = serde_json::to_writer(&mut out, &letter)
                            .map_err(anyhow::Error::from)
                            .and_then(|()| Ok(out.write_all(b"\n")?))
                    {
                        failed = Some(e);
                    }
                },
            )?;
            if let Some(e) = failed {
                return Err(e).context("writing the dead letters");
            }
        }
        Command::Replay { which } => {
            let n = tally_forward::replay(&which.data.data, &which.app, &which.destination)?;
            writeln!(
                out,
                "{n} dead letters of {}/{} queued to be sent again.",
                which.app, which.destination
            )?;
        }
    }
    Ok(())
}
