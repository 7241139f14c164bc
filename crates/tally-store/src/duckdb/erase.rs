//! Erasing one install from the embedded store (see
//! [`crate::Store::forget_install`]).

use std::collections::BTreeSet;

use duckdb::{Connection, ToSql, params};
use tally_rollup::{Rollups, day_of, day_start};
use uuid::Uuid;

use super::rollups::{self, ALL_SETS};
use crate::StoreError;

/// How often an erasure that met a concurrent change of the same rollup
/// rows (the compactor's) is tried again.
const TRIES: usize = 5;

/// Erases `install` of `app` in one transaction, tried again when the
/// compactor changed the same rows meanwhile; returns the raw events
/// erased.
pub(super) fn forget_install(
    conn: &mut Connection,
    app: &str,
    install: Uuid,
) -> Result<u64, StoreError> {
    let mut tries = 0;
    loop {
        match erase(conn, app, install) {
            Err(StoreError::DuckDb(e))
                if tries + 1 < TRIES && e.to_string().contains("onflict") =>
            {
                tries += 1;
                tracing::debug!(error = %e, "An erasure met a concurrent change; trying again.");
            }
            other => return other,
        }
    }
}

fn erase(conn: &mut Connection, app: &str, install: Uuid) -> Result<u64, StoreError> {
    let tx = conn.transaction()?;
    let number: Option<u32> = tx
        .query_row(
            "SELECT n FROM installs WHERE install_id = ?",
            [install],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some(number) = number else {
        // Never numbered: no event of it was ever stored.
        return Ok(0);
    };
    let days: BTreeSet<i32> = {
        let mut stmt = tx.prepare(
            "SELECT DISTINCT epoch_us(timestamp) // ? FROM events WHERE app = ? AND install_id = ?",
        )?;
        stmt.query_map(params![tally_rollup::DAY_US, app, install], |r| {
            r.get::<_, i64>(0)
        })?
        .map(|d| d.map(|d| d as i32))
        .collect::<Result<_, _>>()?
    };
    // Rollups before the app's first raw day count events that are gone:
    // they cannot be rolled up again, only lose the install.
    let horizon: Option<i64> = tx.query_row(
        "SELECT min(epoch_us(timestamp)) FROM events WHERE app = ?",
        [app],
        |r| r.get(0),
    )?;
    let erased = tx.execute(
        "DELETE FROM events WHERE app = ? AND install_id = ?",
        params![app, install],
    )? as u64;
    for &day in &days {
        tx.execute(
            "DELETE FROM rollups WHERE app = ? AND day = ?",
            params![app, day],
        )?;
        let mut again = Rollups::default();
        for (event, install) in rollups::raw(&tx, Some(app), day_start(day), day_start(day + 1))? {
            again.add(&event, install);
        }
        rollups::append(&tx, &again)?;
    }
    let before = horizon.map_or(i32::MAX, day_of);
    leave_install_sets(&tx, app, before, number)?;
    let elsewhere: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM events WHERE install_id = ?)",
        [install],
        |r| r.get(0),
    )?;
    if !elsewhere {
        tx.execute("DELETE FROM installs WHERE install_id = ?", [install])?;
    }
    tx.commit()?;
    Ok(erased)
}

/// Takes install `number` out of the install sets of `app`'s rollup rows
/// of the days before `before`, a day at a time.
fn leave_install_sets(
    conn: &Connection,
    app: &str,
    before: i32,
    number: u32,
) -> Result<(), StoreError> {
    let days: Vec<i32> = {
        let mut stmt = conn
            .prepare("SELECT DISTINCT day FROM rollups WHERE app = ? AND day < ? ORDER BY day")?;
        stmt.query_map(params![app, before], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for day in days {
        let args: Vec<Box<dyn ToSql>> = vec![Box::new(app.to_owned()), Box::new(day)];
        let mut rows = Rollups::default();
        let mut held = false;
        rollups::read(
            conn,
            "app = ? AND day = ?",
            &args,
            ALL_SETS,
            &mut |key, mut agg| {
                held |= agg.installs.remove(number);
                rows.merge(key, &agg);
                Ok(())
            },
        )?;
        if held {
            conn.execute(
                "DELETE FROM rollups WHERE app = ? AND day = ?",
                params![app, day],
            )?;
            rollups::append(conn, &rows)?;
        }
    }
    Ok(())
}
