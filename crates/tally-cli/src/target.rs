//! Where an admin command acts: a running server over HTTP, or the data
//! dir directly when no server holds it.
//!
//! DuckDB lets one process open a store, so with `--data DIR` the command
//! tries the file first; if a server holds it, the command finds that
//! server through `DIR/server.json` and talks to it with `DIR/admin-token`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tally_store::{Store, StoreError, StoreSpec};

use crate::client::Client;

/// Written by `tally serve` into its data dir while it runs.
pub const SERVER_FILE: &str = "server.json";

/// The content of [`SERVER_FILE`].
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ServerFile {
    /// The base URL the server listens on.
    pub url: String,
}

/// Which store a command uses: `--store`, or the data dir's own.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// The data dir: its embedded store (unless --store names another) and
    /// the admin token.
    #[arg(long, env = crate::env::DATA, default_value = "tally-data")]
    pub data: PathBuf,
    /// A shared store in place of the data dir's, e.g.
    /// clickhouse://tally@127.0.0.1:8123/tally, or over HTTPS (ClickHouse
    /// Cloud) clickhouses://tally@HOST:8443/tally, with ?ca_file=PATH for a
    /// private CA; takes precedence over --data. Give the password with --clickhouse-password-file or
    /// TALLY_CLICKHOUSE_PASSWORD rather than in the URL, which `ps` shows.
    #[arg(long, env = crate::env::STORE, hide_env_values = true)]
    pub store: Option<String>,
    /// A file whose first line is the ClickHouse password for --store.
    #[arg(long, value_name = "PATH", requires = "store")]
    pub clickhouse_password_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The store the arguments name, with the ClickHouse password from
    /// --clickhouse-password-file or the environment if either gives one.
    pub fn spec(&self) -> Result<StoreSpec> {
        let spec = StoreSpec::new(&self.data, self.store.as_deref());
        let password = match &self.clickhouse_password_file {
            Some(file) => {
                let text = std::fs::read_to_string(file).with_context(|| {
                    format!("reading the ClickHouse password in {}", file.display())
                })?;
                Some(text.lines().next().unwrap_or_default().to_owned())
            }
            None => std::env::var(crate::env::CLICKHOUSE_PASSWORD).ok(),
        };
        Ok(match password {
            Some(password) => spec.with_password(password),
            None => spec,
        })
    }
}

/// How the user said where to act: a store, or the server running on it.
#[derive(clap::Args, Debug)]
pub struct TargetArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// A running server's URL; takes precedence over --store and --data,
    /// which are otherwise used directly (or through the server that holds
    /// the data dir).
    #[arg(long, env = crate::env::SERVER)]
    pub server: Option<String>,
    /// The admin token for --server.
    #[arg(long, env = crate::env::TOKEN, hide_env_values = true)]
    pub token: Option<String>,
}

/// A resolved place to act.
pub enum Target {
    Server(Client),
    Store(Box<dyn Store>),
}

impl TargetArgs {
    pub fn resolve(&self) -> Result<Target> {
        if let Some(url) = &self.server {
            let Some(token) = &self.token else {
                bail!(
                    "--server needs --token (or {}) with the admin token",
                    crate::env::TOKEN
                );
            };
            return Ok(Target::Server(Client::new(url, token)));
        }
        let spec = self.store.spec()?;
        match spec.open() {
            Ok(store) => Ok(Target::Store(store)),
            // DuckDB lets one process open a data dir: if it is the
            // server's, ask the server.
            Err(StoreError::Locked { .. }) => running_server(&self.store.data).map(Target::Server),
            Err(e) => Err(e).with_context(|| format!("opening {spec}")),
        }
    }
}

fn running_server(dir: &Path) -> Result<Client> {
    let file = dir.join(SERVER_FILE);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "the store in {} is in use, but {} is missing",
            dir.display(),
            file.display()
        )
    })?;
    let server: ServerFile =
        serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    let token_file = dir.join(tally_server::ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading {}", token_file.display()))?;
    Ok(Client::new(&server.url, token.trim()))
}
