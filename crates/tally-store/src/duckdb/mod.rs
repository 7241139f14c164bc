//! The embedded backend: one DuckDB file, `tally.duckdb`, in the data dir.
//!
//! DuckDB lets one process open a file for writing; inside it, any number of
//! connections read while one writer appends. A batch is durable once it is
//! in the write-ahead journal (`journal/` beside the file, see
//! [`crate::journal`]); a loader thread stores it in DuckDB behind, and the
//! store's reads wait for that, so they see every acknowledged event. A
//! crash leaves at most the journal's tail unloaded, which the next open
//! loads.

mod compactor;
mod erase;
mod handoff;
mod installs;
mod loader;
mod rollups;
mod rows;
mod schema;
mod source;
mod writer;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::{Connection, ToSql};

use tally_protocol::StoredEvent;
use tally_rollup::{day_start, micros, retention_cutoff};

use crate::journal::Encoded;
use crate::{App, Caches, ExportFilter, Staged, Store, StoreError, Writer};

/// The file name of the database inside a data dir.
pub const DB_FILE: &str = "tally.duckdb";

/// The folder of the write-ahead journal inside a data dir.
const JOURNAL_DIR: &str = "journal";

/// The most memory DuckDB's buffer pool may hold.
const MEMORY_LIMIT: &str = "256MB";

/// Columns read back by exports, in the order `rows::row_to_event` expects.
const EXPORT_COLUMNS: &str = "id, epoch_us(timestamp), epoch_us(client_timestamp),
    epoch_us(received_at), app, app_version, install_id, command, flags, exit_code,
    outcome, duration_ms, os, arch, os_version, ci, agent, tty, error_kind,
    error_message, error_location, deps, properties, container, wsl, name, source";

/// The embedded store. See the [crate docs](crate) for an example.
pub struct DuckDbStore {
    path: PathBuf,
    // DuckDB connections are not Sync; each operation clones its own.
    root: Mutex<Connection>,
    caches: Caches,
    journal_dir: PathBuf,
    handoff: Arc<handoff::Handoff>,
}

impl DuckDbStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Caches::default())
    }

    /// Opens the store in `dir`, keeping at most what `caches` says in
    /// memory.
    pub fn open_with(dir: &Path, caches: Caches) -> Result<Self, StoreError> {
        let data_dir_error = |source| StoreError::DataDir {
            path: dir.to_owned(),
            source,
        };
        // Private before DuckDB makes a file in it: DuckDB makes its files
        // with the umask's mode, and remakes its WAL after each checkpoint.
        crate::owner_only::create_dir(dir).map_err(data_dir_error)?;
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path).map_err(|e| {
            if e.to_string().contains("lock") {
                StoreError::Locked { path: path.clone() }
            } else {
                StoreError::from(e)
            }
        })?;
        for file in [path.clone(), dir.join(format!("{DB_FILE}.wal"))] {
            crate::owner_only::restrict(&file).map_err(data_dir_error)?;
        }
        // DuckDB's buffer pool otherwise grows to most of the machine's
        // memory; reports read rollups and ingest appends, so a small pool
        // does (DuckDB spills to disk beyond it).
        conn.execute_batch(&format!(
            "SET memory_limit = '{MEMORY_LIMIT}'; SET threads = 1"
        ))?;
        schema::migrate(&mut conn)?;
        rollups::rebuild_if_missing(&mut conn)?;
        let journal_dir = dir.join(JOURNAL_DIR);
        let handoff = Arc::new(handoff::Handoff::default());
        // A store that cannot load its journal for want of room (or memory)
        // opens all the same, failed: a server on it starts (and refuses
        // ingest and reads), and its loader loads the journal once it can.
        // A store that refused to open would restart in a loop.
        match loader::recover(&mut conn, caches, &journal_dir) {
            Ok(()) => {}
            Err(e) if e.passes() => {
                tracing::error!(error = %e, "Loading the journal failed for want of room, memory or open files; it is loaded once it can be.");
                handoff.failed(&e);
            }
            Err(e) => return Err(e),
        }
        Ok(Self {
            path,
            root: Mutex::new(conn),
            caches,
            journal_dir,
            handoff,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> Result<Connection, StoreError> {
        let root = self
            .root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(root.try_clone()?)
    }
}

impl Store for DuckDbStore {
    fn writer(&self) -> Result<Box<dyn Writer>, StoreError> {
        Ok(Box::new(writer::DuckDbWriter::open(
            self.connection()?,
            self.caches,
            self.journal_dir.clone(),
            Arc::clone(&self.handoff),
        )?))
    }

    fn stage(&self, events: Vec<StoredEvent>) -> Staged {
        let encoded = Encoded::new(&events);
        Staged::prepared(events, Box::new(encoded))
    }

    fn export(
        &self,
        filter: &ExportFilter,
        sink: &mut dyn FnMut(StoredEvent) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        self.handoff.wait_complete()?;
        let conn = self.connection()?;
        let mut sql = format!("SELECT {EXPORT_COLUMNS} FROM events WHERE true");
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(app) = &filter.app {
            sql.push_str(" AND app = ?");
            args.push(Box::new(app.clone()));
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND timestamp >= make_timestamp(?)");
            args.push(Box::new(micros(since)));
        }
        if let Some(until) = filter.until {
            sql.push_str(" AND timestamp < make_timestamp(?)");
            args.push(Box::new(micros(until)));
        }
        sql.push_str(" ORDER BY timestamp, id");
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(duckdb::params_from_iter(args.iter()))?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            count += 1;
            if sink(rows::row_to_event(row)?).is_break() {
                break;
            }
        }
        Ok(count)
    }

    fn report(&self, query: &tally_report::Query) -> Result<tally_report::Report, StoreError> {
        self.handoff.wait_complete()?;
        tally_rollup::answer(self, query)
    }

    fn retain_days(&self, days: u32) -> Result<(), StoreError> {
        let cutoff = retention_cutoff(days);
        let conn = self.connection()?;
        conn.execute(
            "DELETE FROM events WHERE timestamp < make_timestamp(?)",
            [day_start(cutoff)],
        )?;
        conn.execute("DELETE FROM rollups WHERE day < ?", [cutoff])?;
        Ok(())
    }

    fn retain_app(
        &self,
        app: &str,
        events_days: Option<u32>,
        rollups_days: Option<u32>,
    ) -> Result<(), StoreError> {
        let conn = self.connection()?;
        if let Some(days) = events_days {
            conn.execute(
                "DELETE FROM events WHERE app = ? AND timestamp < make_timestamp(?)",
                duckdb::params![app, day_start(retention_cutoff(days))],
            )?;
        }
        if let Some(days) = rollups_days {
            conn.execute(
                "DELETE FROM rollups WHERE app = ? AND day < ?",
                duckdb::params![app, retention_cutoff(days)],
            )?;
        }
        Ok(())
    }

    fn forget_install(
        &self,
        apps: &[&str],
        install: uuid::Uuid,
    ) -> Result<Option<u64>, StoreError> {
        // What was acknowledged before is in the tables before it goes.
        self.handoff.wait_complete()?;
        let erased = erase::forget_install(&mut self.connection()?, apps, install)?;
        self.handoff.forgotten(install);
        Ok(erased)
    }

    fn unloaded_events(&self) -> usize {
        self.handoff.unloaded()
    }

    fn failure(&self) -> Option<String> {
        self.handoff.failure()
    }

    fn installs_in_memory(&self) -> usize {
        self.handoff
            .installs_held
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add_app(&self, name: &str) -> Result<App, StoreError> {
        tally_protocol::check_app_name(name).map_err(StoreError::InvalidAppName)?;
        let conn = self.connection()?;
        let exists: i64 =
            conn.query_row("SELECT count(*) FROM apps WHERE name = ?", [name], |r| {
                r.get(0)
            })?;
        if exists > 0 {
            return Err(StoreError::AppExists(name.to_owned()));
        }
        let app = App::new(name);
        conn.execute(
            "INSERT INTO apps (name, ingest_key, salt) VALUES (?, ?, ?)",
            [&app.name, &app.ingest_key, &app.salt],
        )?;
        Ok(app)
    }

    fn apps(&self) -> Result<Vec<App>, StoreError> {
        let conn = self.connection()?;
        let mut stmt = conn.prepare("SELECT name, ingest_key, salt FROM apps ORDER BY name")?;
        let apps = stmt
            .query_map([], |r| {
                Ok(App {
                    name: r.get(0)?,
                    ingest_key: r.get(1)?,
                    salt: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(apps)
    }
}

#[cfg(test)]
mod tests;
