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

/// Erases `install` of `apps` in one transaction, tried again when the
/// compactor changed the same rows meanwhile; returns the raw events
/// erased, or `None` if no event of the install was ever stored.
pub(super) fn forget_install(
    conn: &mut Connection,
    apps: &[&str],
    install: Uuid,
) -> Result<Option<u64>, StoreError> {
    let mut tries = 0;
    loop {
        match erase(conn, apps, install) {
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

fn erase(conn: &mut Connection, apps: &[&str], install: Uuid) -> Result<Option<u64>, StoreError> {
    let tx = conn.transaction()?;
    // The install's number: its row, or (for events a loader numbered
    // while an earlier erasure ran) the number its events carry.
    let number: Option<u32> = tx.query_row(
        "SELECT coalesce((SELECT n FROM installs WHERE install_id = ? LIMIT 1),
                         (SELECT install_no FROM events WHERE install_id = ? LIMIT 1))",
        [install, install],
        |r| r.get(0),
    )?;
    let Some(number) = number else {
        // Never numbered: no event of it was ever stored.
        return Ok(None);
    };
    let (mut erased, mut held) = (0, false);
    for &app in apps {
        let (events, in_sets) = erase_from(&tx, app, install, number)?;
        erased += events;
        held |= in_sets;
    }
    let elsewhere: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM events WHERE install_id = ?)",
        [install],
        |r| r.get(0),
    )?;
    if !elsewhere {
        // The row keeps its number, so that no later install is given it
        // (the rollups of days past retention may still count it); its id
        // goes.
        tx.execute(
            "UPDATE installs SET install_id = gen_random_uuid() WHERE install_id = ?",
            [install],
        )?;
    }
    tx.commit()?;
    Ok((erased > 0 || held).then_some(erased))
}

/// Erases install `install` (numbered `number`) of `app`; returns the raw
/// events erased, and whether rollups of days past retention held it.
fn erase_from(
    conn: &Connection,
    app: &str,
    install: Uuid,
    number: u32,
) -> Result<(u64, bool), StoreError> {
    let days: BTreeSet<i32> = {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT epoch_us(timestamp) // ? FROM events WHERE app = ? AND install_id = ?",
        )?;
        stmt.query_map(params![tally_rollup::DAY_US, app, install], |r| {
            r.get::<_, i64>(0)
        })?
        .map(|d| d.map(|d| d as i32))
        .collect::<Result<_, _>>()?
    };
    // Rollups before the app's first raw day count events that are gone:
    // they cannot be rolled up again, only lose the install. (Retention
    // goes by the same time as the rollups' days, so every day from the
    // first on is whole.)
    let first: Option<i64> = conn.query_row(
        "SELECT min(epoch_us(timestamp)) FROM events WHERE app = ?",
        [app],
        |r| r.get(0),
    )?;
    let erased = conn.execute(
        "DELETE FROM events WHERE app = ? AND install_id = ?",
        params![app, install],
    )? as u64;
    for &day in &days {
        conn.execute(
            "DELETE FROM rollups WHERE app = ? AND day = ?",
            params![app, day],
        )?;
        let mut again = Rollups::default();
        rollups::each_raw(
            conn,
            Some(app),
            day_start(day),
            day_start(day + 1),
            &mut |event, n| {
                again.add(&event, n);
            },
        )?;
        rollups::append(conn, &again)?;
    }
    let held = leave_install_sets(conn, app, first.map_or(i32::MAX, day_of), number)?;
    Ok((erased, held))
}

/// Takes install `number` out of the install sets of `app`'s rollup rows
/// of the days before `before`, a day at a time; says whether any held it.
fn leave_install_sets(
    conn: &Connection,
    app: &str,
    before: i32,
    number: u32,
) -> Result<bool, StoreError> {
    let mut any = false;
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
        any |= held;
    }
    Ok(any)
}
