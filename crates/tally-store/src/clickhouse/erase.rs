//! Erasing one install from ClickHouse (see
//! [`crate::Store::forget_install`]).
//!
//! Deletes are mutations, which ClickHouse runs behind; each step waits
//! for them, so what is gone is gone when the erasure returns. The rollups
//! of the install's days are deleted and rolled up again from the events
//! left, with the views' own queries. An event another collector inserts
//! for the same app and day while that runs (between the delete of the
//! day's rollups and their new rows, well under a second) is counted in
//! them twice or not at all: `docs/scaling.md` says so.

use uuid::Uuid;

use super::http::{Http, quote};
use super::schema::{gateway_durations_select, rollups_select, wait_for_mutations};
use super::writer::install_hash;
use crate::StoreError;

/// Erases `install` of `app`; returns the raw events erased.
pub(super) fn forget_install(http: &Http, app: &str, install: Uuid) -> Result<u64, StoreError> {
    let app = quote(app);
    // A UUID we formatted: safe to inline.
    let whose = format!("app = {app} AND install_id = toUUID('{install}')");
    let days = http.rows(&format!(
        "SELECT toString(day) AS day, uniqExact(id) AS n FROM events WHERE {whose} GROUP BY day"
    ))?;
    let erased: u64 = days.iter().filter_map(|r| r["n"].as_u64()).sum();
    let days: Vec<String> = days
        .iter()
        .filter_map(|r| r["day"].as_str())
        .map(|d| format!("toDate({})", quote(d)))
        .collect();
    if !days.is_empty() {
        let of_days = format!("app = {app} AND day IN ({})", days.join(", "));
        http.execute(&format!("ALTER TABLE events DELETE WHERE {whose}"))?;
        http.execute(&format!("ALTER TABLE rollups DELETE WHERE {of_days}"))?;
        wait_for_mutations(http)?;
        for select in [rollups_select(&of_days), gateway_durations_select(&of_days)] {
            http.execute(&format!("INSERT INTO rollups {select}"))?;
        }
    }
    leave_install_sets(http, &app, install_hash(install))?;
    Ok(erased)
}

/// Takes install hash `hash` out of the install sets of the rollup rows of
/// `app` (quoted) on days before its first raw event, whose events are
/// gone and cannot be rolled up again.
fn leave_install_sets(http: &Http, app: &str, hash: u32) -> Result<(), StoreError> {
    let horizon = http.rows(&format!(
        "SELECT count() AS n, toString(min(day)) AS first FROM events WHERE app = {app}"
    ))?;
    let before = match horizon.first() {
        Some(row) if row["n"].as_u64() != Some(0) => {
            let first = row["first"].as_str().unwrap_or("1970-01-01");
            format!(" AND day < toDate({})", quote(first))
        }
        _ => String::new(),
    };
    let holding =
        format!("app = {app}{before} AND has(finalizeAggregation(installs), toUInt32({hash}))");
    let held = http.rows(&format!("SELECT count() AS n FROM rollups WHERE {holding}"))?;
    if held.first().and_then(|r| r["n"].as_u64()).unwrap_or(0) == 0 {
        return Ok(());
    }
    // Rows without the install, then the rows with it gone: a delete
    // of the rows that hold it leaves the new ones, and 18.16 cannot
    // UPDATE a column of aggregate states.
    http.execute(&format!(
        "INSERT INTO rollups SELECT app, kind, day, version, os, env, d1, d2, d3, d4, \
         runs, ok, crashes, first_us, last_us, \
         arrayReduce('groupUniqArrayState', \
             arrayFilter(x -> x != toUInt32({hash}), finalizeAggregation(installs))), \
         durations FROM rollups WHERE {holding}"
    ))?;
    http.execute(&format!("ALTER TABLE rollups DELETE WHERE {holding}"))?;
    wait_for_mutations(http)
}
