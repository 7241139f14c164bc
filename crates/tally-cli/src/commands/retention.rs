//! `tally retention status`: what retention forgets of each app, and from
//! which day: the running server's own settings, or those given here for
//! a store read directly.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tally_server::RetentionStatus;

use crate::target::{Target, TargetArgs};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Each app: how many days its events and its rollups are kept, and
    /// before which day they go.
    Status {
        #[command(flatten)]
        target: TargetArgs,
        /// The server's config file (per-app `keep_events_days` and
        /// `keep_rollups_days`), for a store read directly; a running
        /// server answers with its own.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The server's --retention-days, for a store read directly.
        #[arg(long, env = crate::env::RETENTION_DAYS)]
        retention_days: Option<u32>,
        /// Print JSON, one object an app.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: Command) -> Result<()> {
    let Command::Status {
        target,
        config,
        retention_days,
        json,
    } = command;
    let status: Vec<RetentionStatus> = match target.resolve()? {
        Target::Server(client) => client
            .get("/api/v1/retention")?
            .body_mut()
            .read_json()
            .context("reading the server's retention")?,
        Target::Store(store) => {
            let mut settings = tally_server::Config::new(target.store.data.clone());
            settings.retention_days = retention_days;
            if let Some(path) = &config {
                super::serve::apply_config_file(path, &mut settings)?;
            }
            let apps = store.apps()?;
            settings.retention_status(apps.iter().map(|a| a.name.as_str()))
        }
    };
    for app in &status {
        if json {
            println!("{}", serde_json::to_string(app)?);
        } else {
            println!(
                "{}: events {}; rollups {}",
                app.app,
                kept(app.events_days, app.events_before.as_deref()),
                kept(app.rollups_days, app.rollups_before.as_deref())
            );
        }
    }
    Ok(())
}

/// How long one kind of data is kept, in words.
fn kept(days: Option<u32>, before: Option<&str>) -> String {
    match (days, before) {
        (Some(days), Some(before)) => format!("kept {days} days (those before {before} go)"),
        _ => "kept for ever".to_owned(),
    }
}
