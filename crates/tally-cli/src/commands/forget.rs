//! `tally forget --install-id ID [--app NAME]`: erase one install, as its
//! user asked, through the server that holds the store or on the store
//! itself.

use anyhow::{Context, Result, bail};

use crate::client::urlencode;
use crate::target::{Target, TargetArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// The install to erase (its user finds it with `<cli> telemetry
    /// status`).
    #[arg(long, value_name = "UUID")]
    install_id: uuid::Uuid,
    /// Only the install of this app; of every app when not given.
    #[arg(long)]
    app: Option<String>,
}

/// What the server answers an erasure.
#[derive(serde::Deserialize)]
struct Erased {
    erased_events: u64,
}

pub fn run(args: Args) -> Result<()> {
    let install = args.install_id;
    let erased = match args.target.resolve()? {
        Target::Server(client) => {
            let query = args
                .app
                .as_deref()
                .map(|app| format!("?app={}", urlencode(app)))
                .unwrap_or_default();
            let erased: Erased = client
                .delete(&format!("/api/v1/installs/{install}{query}"))?
                .body_mut()
                .read_json()
                .context("reading the server's answer")?;
            erased.erased_events
        }
        Target::Store(store) => {
            let apps: Vec<String> = store.apps()?.into_iter().map(|a| a.name).collect();
            let chosen = match &args.app {
                Some(app) if !apps.contains(app) => bail!("no app {app:?} in the store"),
                Some(app) => vec![app.clone()],
                None => apps,
            };
            let apps: Vec<&str> = chosen.iter().map(String::as_str).collect();
            let erased = store
                .forget_install(&apps, install)
                .with_context(|| format!("erasing install {install}"))?;
            if erased.is_some() {
                // Forwarding is the server's: it has the destinations' keys.
                eprintln!(
                    "Note: no server holds the store, so forwarding destinations were not told; \
                     delete the install there by hand, or erase it again while the server runs."
                );
            }
            erased.unwrap_or(0)
        }
    };
    let whose = args
        .app
        .map_or_else(|| "every app".to_owned(), |app| format!("app {app}"));
    println!(
        "Erased install {install} of {whose}: {erased} event(s), and its part in the rollups."
    );
    Ok(())
}
