//! The embedded store's rollups (see `tally_rollup`): appended in each
//! commit, merged per day now and then, read by the reports.

use std::borrow::Cow;
use std::collections::BTreeSet;

use duckdb::{Connection, ToSql, params};
use tally_protocol::{Event, Source};
use tally_report::Env;
use tally_rollup::{Agg, Histogram, Key, Kind, Rollups, day_of, day_start};

use super::EXPORT_COLUMNS;
use super::rows::row_to_event;
use crate::StoreError;

/// Columns of a rollup row before its sets, in table order.
const COLUMNS: &str = "app, kind, day, version, os, env, d1, d2, d3, d4, runs, ok, crashes, \
                       first_us, last_us";

/// Appends `rollups` to the rollup table; returns how many rows.
pub(super) fn append(conn: &Connection, rollups: &Rollups) -> Result<usize, StoreError> {
    let mut appender = conn.appender("rollups")?;
    for (key, agg) in rollups.rows() {
        let [d1, d2, d3, d4] = key.dims.each_ref().map(|d| d.as_deref());
        let durations = (key.kind == Kind::Command).then(|| agg.durations.to_bytes());
        appender.append_row(params![
            key.app.as_ref(),
            key.kind.as_str(),
            key.day,
            key.version.as_ref(),
            key.os.as_ref(),
            key.env.as_str(),
            d1,
            d2,
            d3,
            d4,
            agg.runs as i64,
            agg.ok as i64,
            agg.crashes as i64,
            agg.first_us,
            agg.last_us,
            agg.installs_bytes(),
            durations,
            key.source.as_str(),
        ])?;
    }
    appender.flush()?;
    Ok(rollups.len())
}

/// Which of a row's sets to read: the bulk of a row, and of the work.
#[derive(Clone, Copy)]
pub(super) struct Sets {
    pub(super) installs: bool,
    pub(super) durations: bool,
}

pub(super) const ALL_SETS: Sets = Sets {
    installs: true,
    durations: true,
};

/// Reads rollup rows selected by `condition` (SQL over the rollup columns),
/// with the sets that `sets` asks for (the others are left empty), handing
/// each to `each` as it comes.
pub(super) fn read(
    conn: &Connection,
    condition: &str,
    args: &[Box<dyn ToSql>],
    sets: Sets,
    each: &mut dyn FnMut(Key<'static>, Agg) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let installs = if sets.installs {
        "installs"
    } else {
        "NULL::BLOB"
    };
    let durations = if sets.durations {
        "durations"
    } else {
        "NULL::BLOB"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS}, {installs}, {durations}, source FROM rollups WHERE {condition}"
    ))?;
    let mut rows = stmt.query(duckdb::params_from_iter(args.iter()))?;
    while let Some(r) = rows.next()? {
        let kind: String = r.get(1)?;
        let env: String = r.get(5)?;
        let source: String = r.get(17)?;
        let corrupt =
            |what: &str, value: &str| StoreError::Corrupt(format!("rollup {what} {value:?}"));
        let installs: Option<Vec<u8>> = r.get(15)?;
        let durations: Option<Vec<u8>> = r.get(16)?;
        let text = |i: usize| r.get::<_, String>(i).map(Cow::Owned);
        let dim = |i: usize| r.get::<_, Option<String>>(i).map(|d| d.map(Cow::Owned));
        let key = Key {
            app: text(0)?,
            kind: Kind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
            day: r.get(2)?,
            version: text(3)?,
            os: text(4)?,
            env: Env::parse(&env).ok_or_else(|| corrupt("env", &env))?,
            source: Source::parse(&source).ok_or_else(|| corrupt("source", &source))?,
            dims: [dim(6)?, dim(7)?, dim(8)?, dim(9)?],
        };
        let agg = Agg {
            runs: r.get::<_, i64>(10)? as u64,
            ok: r.get::<_, i64>(11)? as u64,
            crashes: r.get::<_, i64>(12)? as u64,
            first_us: r.get(13)?,
            last_us: r.get(14)?,
            installs: installs
                .map(|i| Agg::installs_from(&i))
                .transpose()?
                .unwrap_or_default(),
            durations: durations
                .map(|d| Histogram::from_bytes(&d))
                .transpose()?
                .unwrap_or_default(),
        };
        each(key, agg)?;
    }
    Ok(())
}

/// Rollup rows merged in memory at once, at most, by [`compact`].
const COMPACT_SLICE_ROWS: i64 = 200_000;

/// Merges the rows of each key of `days` into one, so readers find one row
/// per key however many commits added to it.
///
/// A day's rows are merged in slices of about [`COMPACT_SLICE_ROWS`], by a
/// hash of their key, so that all rows of a key are in one slice and memory
/// stays bounded however many keys senders made; each slice is a
/// transaction of its own. A day whose rows all have keys of their own is
/// left as it is.
pub(super) fn compact(conn: &mut Connection, days: &BTreeSet<i32>) -> Result<(), StoreError> {
    compact_in_slices(conn, days, COMPACT_SLICE_ROWS)
}

/// [`compact`] in slices of about `slice_rows`.
pub(super) fn compact_in_slices(
    conn: &mut Connection,
    days: &BTreeSet<i32>,
    slice_rows: i64,
) -> Result<(), StoreError> {
    const KEY: &str = "app, kind, version, os, env, source, d1, d2, d3, d4";
    for day in days {
        // Day numbers are integers we hold: safe to inline.
        let (rows, keys): (i64, i64) = conn.query_row(
            &format!("SELECT count(*), count(DISTINCT ({KEY})) FROM rollups WHERE day = {day}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if rows == keys {
            continue;
        }
        let slices = (rows + slice_rows - 1) / slice_rows;
        for slice in 0..slices {
            let condition = if slices == 1 {
                format!("day = {day}")
            } else {
                format!("day = {day} AND hash({KEY}) % {slices} = {slice}")
            };
            let tx = conn.transaction()?;
            let mut merged = Rollups::default();
            read(&tx, &condition, &[], ALL_SETS, &mut |key, agg| {
                merged.merge(key, &agg);
                Ok(())
            })?;
            tx.execute(&format!("DELETE FROM rollups WHERE {condition}"), [])?;
            append(&tx, &merged)?;
            tx.commit()?;
        }
    }
    Ok(())
}

/// Rolls up events stored before rollups existed (or whose rollups were
/// lost): runs when the rollup table is empty but events exist. Custom
/// events, which Tally before 0.2 left out of the rollups, are rolled up
/// once too.
pub(super) fn rebuild_if_missing(conn: &mut Connection) -> Result<(), StoreError> {
    let exists = |conn: &Connection, sql: &str| -> Result<bool, StoreError> {
        Ok(conn.query_row(&format!("SELECT EXISTS ({sql})"), [], |r| r.get(0))?)
    };
    let all = !exists(conn, "SELECT 1 FROM rollups")?;
    let named = !all
        && !exists(conn, "SELECT 1 FROM rollups WHERE kind = 'event'")?
        && exists(conn, "SELECT 1 FROM events WHERE name IS NOT NULL")?;
    if !all && !named {
        return Ok(());
    }
    let (first, last): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT min(epoch_us(timestamp)), max(epoch_us(timestamp)) FROM events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(());
    };
    tracing::info!("rolling up the stored events for the reports (once)");
    let tx = conn.transaction()?;
    for day in day_of(first)..=day_of(last) {
        let mut rollups = Rollups::default();
        each_raw(
            &tx,
            None,
            day_start(day),
            day_start(day + 1),
            &mut |event, install| {
                if all || event.name.is_some() {
                    rollups.add(&event, install);
                }
            },
        )?;
        append(&tx, &rollups)?;
    }
    tx.commit()?;
    Ok(())
}

/// Events in `[from, to)` (microseconds), of `app` if given, with their
/// install numbers.
pub(super) fn raw(
    conn: &Connection,
    app: Option<&str>,
    from: i64,
    to: i64,
) -> Result<Vec<(Event, u32)>, StoreError> {
    let mut out = Vec::new();
    each_raw(conn, app, from, to, &mut |event, n| out.push((event, n)))?;
    Ok(out)
}

/// [`raw`], each event handed to `each` as it is read, so that a day of
/// many events is never in memory at once.
pub(super) fn each_raw(
    conn: &Connection,
    app: Option<&str>,
    from: i64,
    to: i64,
    each: &mut dyn FnMut(Event, u32),
) -> Result<(), StoreError> {
    let mut sql = format!(
        "SELECT {EXPORT_COLUMNS}, install_no FROM events \
         WHERE timestamp >= make_timestamp(?) AND timestamp < make_timestamp(?)"
    );
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(from), Box::new(to)];
    if let Some(app) = app {
        sql.push_str(" AND app = ?");
        args.push(Box::new(app.to_owned()));
    }
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(duckdb::params_from_iter(args.iter()))?;
    while let Some(r) = rows.next()? {
        let install: Option<u32> = r.get(27)?;
        let event = row_to_event(r)?;
        let install = install.ok_or_else(|| {
            StoreError::Corrupt(format!("event {} has no install number", event.event.id))
        })?;
        each(event.event, install);
    }
    Ok(())
}
