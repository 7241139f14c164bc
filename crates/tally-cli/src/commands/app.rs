//! `tally app add|list`: the apps and their ingest keys.

use std::io::Write;

use anyhow::Result;
use clap::Subcommand;
use tally_store::App;

use crate::target::{Target, TargetArgs};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Register an app and print its ingest key (and nothing else).
    Add {
        /// The app's name, as its SDK reports it.
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List the apps and their ingest keys.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Add { name, target } => {
            let app: App = match target.resolve()? {
                Target::Store(store) => store.add_app(&name)?,
                Target::Server(client) => client
                    .post("/api/v1/apps", &serde_json::json!({ "name": name }))?
                    .body_mut()
                    .read_json()?,
            };
            println!("{}", app.ingest_key);
        }
        Command::List { target } => {
            let apps: Vec<App> = match target.resolve()? {
                Target::Store(store) => store.apps()?,
                Target::Server(client) => client.get("/api/v1/apps")?.body_mut().read_json()?,
            };
            let mut out = std::io::stdout().lock();
            for app in apps {
                writeln!(out, "{}\t{}", app.name, app.ingest_key)?;
            }
        }
    }
    Ok(())
}
