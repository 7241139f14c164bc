//! The ClickHouse tables, created and migrated in order.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so collectors starting
//! together against a new database may all run the same migration; the
//! version rows they add only say how far the schema has come.

use super::http::Http;
use crate::StoreError;

/// What the server can do, read off `version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Server {
    major: u32,
    minor: u32,
}

impl Server {
    fn detect(http: &Http) -> Result<Server, StoreError> {
        let rows = http.rows("SELECT version() AS v")?;
        let text = rows
            .first()
            .and_then(|r| r["v"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        Ok(Server {
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
        })
    }

    /// Table TTLs arrived in 19.6.
    fn ttl(self) -> bool {
        (self.major, self.minor) >= (19, 6)
    }

    /// LowCardinality became a regular type in 19.9; earlier servers (such
    /// as Debian's 18.16) keep plain strings.
    fn low_cardinality(self) -> bool {
        (self.major, self.minor) >= (19, 9)
    }

    /// A string column type for few distinct values.
    fn few(self) -> &'static str {
        if self.low_cardinality() {
            "LowCardinality(String)"
        } else {
            "String"
        }
    }
}

/// The migrations, in order; index + 1 is the version each produces.
fn migrations(server: Server) -> Vec<Vec<String>> {
    let few = server.few();
    vec![vec![
        events_table(few),
        APPS_TABLE.to_owned(),
        rollups_table(few),
        ROLLUPS_VIEW.to_owned(),
    ]]
}

/// Every event, all fields; `few` is the type of columns of few values.
fn events_table(few: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS events (
            id UUID,
            timestamp_us Int64,
            client_timestamp_us Int64,
            received_at_us Int64,
            -- The day of the client's timestamp, which every retry
            -- repeats: with the id, what dedupe looks up.
            cday Date,
            -- The day of the (corrected) timestamp, what reports count by.
            day Date,
            app {few},
            app_version {few},
            install_id UUID,
            install_hash UInt32,
            command {few},
            flags Array(String),
            exit_code Int32,
            outcome Nullable(String),
            duration_ms UInt64,
            os {few},
            arch {few},
            os_version Nullable(String),
            ci Nullable(String),
            agent Nullable(String),
            tty Nullable(UInt8),
            error_kind Nullable(String),
            error_message Nullable(String),
            error_location Nullable(String),
            deps String,
            properties String,
            container Nullable(UInt8),
            wsl Nullable(UInt8),
            name Nullable(String),
            env {few},
            crashed UInt8,
            duration_bucket UInt64,
            -- The rollup rows the event counts in (tally_rollup::keys_of),
            -- NUL for a missing value; read by rollups_mv.
            rk Nested(kind String, d1 String, d2 String, d3 String, d4 String)
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(cday)
        ORDER BY (app, cday, id)"
    )
}

/// Apps and their ingest keys, which every collector reads.
const APPS_TABLE: &str = "CREATE TABLE IF NOT EXISTS apps (
    name String,
    ingest_key String,
    created_us Int64
) ENGINE = ReplacingMergeTree ORDER BY name";

/// The rollup rows (see `tally_rollup`), merged by ClickHouse as it merges
/// parts.
fn rollups_table(few: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS rollups (
            app {few},
            kind {few},
            day Date,
            version {few},
            os {few},
            env {few},
            d1 String,
            d2 String,
            d3 String,
            d4 String,
            runs AggregateFunction(sum, UInt64),
            ok AggregateFunction(sum, UInt64),
            crashes AggregateFunction(sum, UInt64),
            first_us AggregateFunction(min, Int64),
            last_us AggregateFunction(max, Int64),
            installs AggregateFunction(groupUniqArray, UInt32),
            durations AggregateFunction(sumMap, Array(UInt64), Array(UInt64))
        ) ENGINE = AggregatingMergeTree
        PARTITION BY toYYYYMM(day)
        ORDER BY (app, kind, day, version, os, env, d1, d2, d3, d4)"
    )
}

/// Written in the same INSERT as the events it counts.
const ROLLUPS_VIEW: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS rollups_mv TO rollups AS
    SELECT app, rk.kind AS kind, day, app_version AS version, os, env,
        rk.d1 AS d1, rk.d2 AS d2, rk.d3 AS d3, rk.d4 AS d4,
        sumState(toUInt64(1)) AS runs,
        sumState(toUInt64(exit_code = 0)) AS ok,
        sumState(toUInt64(crashed)) AS crashes,
        minState(timestamp_us) AS first_us,
        maxState(timestamp_us) AS last_us,
        groupUniqArrayState(install_hash) AS installs,
        sumMapState(
            if(rk.kind = 'command', [duration_bucket], emptyArrayUInt64()),
            if(rk.kind = 'command', [toUInt64(1)], emptyArrayUInt64())) AS durations
    FROM events ARRAY JOIN rk
    WHERE isNull(name)
    GROUP BY app, kind, day, version, os, env, d1, d2, d3, d4";

/// Creates the database if needed and brings it to the newest schema.
pub(super) fn migrate(http: &Http) -> Result<(), StoreError> {
    http.execute_global(&format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        http.database()
    ))?;
    let server = Server::detect(http)?;
    http.execute(
        "CREATE TABLE IF NOT EXISTS tally_schema (version UInt32, applied_us Int64)
         ENGINE = MergeTree ORDER BY version",
    )?;
    let rows = http.rows("SELECT max(version) AS v FROM tally_schema")?;
    let version = rows.first().and_then(|r| r["v"].as_u64()).unwrap_or(0) as usize;
    let migrations = migrations(server);
    if version > migrations.len() {
        return Err(StoreError::Corrupt(format!(
            "the store has schema version {version}, newer than this Tally knows ({}); upgrade Tally",
            migrations.len()
        )));
    }
    for (i, statements) in migrations.iter().enumerate().skip(version) {
        for sql in statements {
            http.execute(sql)?;
        }
        let now = tally_rollup::micros(time::OffsetDateTime::now_utc());
        http.execute(&format!(
            "INSERT INTO tally_schema VALUES ({}, {now})",
            i + 1
        ))?;
    }
    Ok(())
}

/// Keeps `days` whole days: every server drops the monthly partitions that
/// end before the cutoff; servers with TTL also forget the days before it
/// in the months that remain, as they merge.
pub(super) fn retain_days(http: &Http, days: u32) -> Result<(), StoreError> {
    let cutoff = tally_rollup::retention_cutoff(days);
    let first_kept = tally_rollup::from_micros(tally_rollup::day_start(cutoff)).date();
    // A partition is a month (YYYYMM); it goes when it ends before the cutoff.
    let first_kept_month = first_kept.year() * 100 + i32::from(u8::from(first_kept.month()));
    let parts = http.rows(&format!(
        "SELECT DISTINCT table, partition FROM system.parts
         WHERE database = {} AND table IN ('events', 'rollups') AND active",
        super::http::quote(http.database())
    ))?;
    for part in parts {
        let (Some(table), Some(month)) = (part["table"].as_str(), part["partition"].as_str())
        else {
            continue;
        };
        if month.parse::<i32>().is_ok_and(|m| m < first_kept_month) {
            http.execute(&format!("ALTER TABLE {table} DROP PARTITION {month}"))?;
        }
    }
    if Server::detect(http)?.ttl() {
        for (table, column) in [("events", "cday"), ("rollups", "day")] {
            http.execute(&format!(
                "ALTER TABLE {table} MODIFY TTL {column} + INTERVAL {days} DAY"
            ))?;
        }
    }
    Ok(())
}
