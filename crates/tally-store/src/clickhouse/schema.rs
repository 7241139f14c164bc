//! The ClickHouse tables, created and migrated in order.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so collectors starting
//! together against a new database may all run the same migration; the
//! version rows they add only say how far the schema has come.

use super::http::Http;
use super::installs::{Installs, NUMBER_TABLES};
use super::layout::{Durations, Layout};
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

    /// What a new database's rollups hold: from 21.8 on, where
    /// `groupBitmap` of 64-bit numbers, the bitmap functions erasure needs
    /// and `sumMap` as a simple aggregate are all there, exact bitmaps and
    /// durations as plain arrays.
    fn layout(self) -> Layout {
        if (self.major, self.minor) >= (21, 8) {
            Layout {
                installs: Installs::Numbers,
                durations: Durations::Arrays,
            }
        } else {
            Layout::FIRST
        }
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

/// A migration: what it runs against a server.
type Migration = fn(&Http, Server) -> Result<(), StoreError>;

/// The migrations, in order; index + 1 is the version each produces.
const MIGRATIONS: &[Migration] = &[
    create_tables,
    partition_by_received_day,
    salt_apps,
    source_events,
    erasures_pending,
    named_events,
    rollups_view_on_events,
    number_installs,
];

/// 1: the tables. A new database gets events partitioned by the day
/// they are received at once, so that 2 finds nothing to copy: on
/// ClickHouse 20.10 and later (Atomic databases) a view follows a renamed
/// table, and the copy would leave `rollups_mv` on the old one.
fn create_tables(http: &Http, server: Server) -> Result<(), StoreError> {
    create_tables_partitioned(http, server, Partition::ReceivedDay, server.layout())
}

/// The tables of 1, with events partitioned by `partition` (Tally before
/// 0.1 made them by the client's day) and rollups of `layout` (Tally
/// before 0.1 made hashes and states alone).
fn create_tables_partitioned(
    http: &Http,
    server: Server,
    partition: Partition,
    layout: Layout,
) -> Result<(), StoreError> {
    let few = server.few();
    for sql in [
        events_table("events", few, partition, layout.installs),
        APPS_TABLE.to_owned(),
        rollups_table(few, layout),
        rollups_view(layout),
    ] {
        http.execute(&sql)?;
    }
    Ok(())
}

/// What the events table is partitioned (and so retained) by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partition {
    /// The month of `cday`, the client's day: a clock that reads 1970 put
    /// acknowledged events in a partition retention drops at once, a clock
    /// far ahead in one it never drops, and clocks spread over many months
    /// made inserts that span more partitions than ClickHouse allows.
    /// Tally before 0.1 made it; the tests make it to migrate from.
    #[cfg_attr(not(test), allow(dead_code))]
    ClientDay,
    /// The month of `rday`, the day the server received the event.
    ReceivedDay,
}

/// Every event, all fields; `few` is the type of columns of few values.
/// Both layouts have the same columns to insert, in the same order (`rday`
/// is computed), so `INSERT INTO new SELECT * FROM old` copies one into the
/// other.
fn events_table(name: &str, few: &str, partition: Partition, installs: Installs) -> String {
    let number = match installs {
        Installs::Hashes => "",
        Installs::Numbers => "install_number UInt64,",
    };
    let (rday, key) = match partition {
        Partition::ClientDay => ("", "cday"),
        Partition::ReceivedDay => (
            "-- The day the server received the event: what partitions and
            -- retention go by, whatever the client's clock says. Computed,
            -- so that collectors of every version agree on it.
            rday Date MATERIALIZED toDate(intDiv(received_at_us, 86400000000)),",
            "rday",
        ),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
            id UUID,
            timestamp_us Int64,
            client_timestamp_us Int64,
            received_at_us Int64,
            {rday}
            -- The day of the client's timestamp, which every retry
            -- repeats: with the id, what dedupe looks up.
            cday Date,
            -- The day of the (corrected) timestamp, what reports count by.
            day Date,
            app {few},
            app_version {few},
            install_id UUID,
            install_hash UInt32,
            {number}
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
        PARTITION BY toYYYYMM({key})
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
fn rollups_table(few: &str, layout: Layout) -> String {
    let installs = layout.installs.column_type();
    let durations = layout.durations.column_type();
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
            installs {installs},
            durations {durations}
        ) ENGINE = AggregatingMergeTree
        PARTITION BY toYYYYMM(day)
        ORDER BY (app, kind, day, version, os, env, d1, d2, d3, d4)"
    )
}

/// Written in the same INSERT as the events it counts.
fn rollups_view(layout: Layout) -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS rollups_mv TO rollups AS {}",
        rollups_select("isNull(name)", layout)
    )
}

/// The rollup rows of the events `condition` selects: what `rollups_mv`
/// (invocations) and `rollups_named_mv` (custom events) write of each
/// insert, and what an erasure rolls up again.
pub(super) fn rollups_select(condition: &str, layout: Layout) -> String {
    rollup_rows(
        [
            "toUInt64(1)",
            "toUInt64(exit_code = 0)",
            "toUInt64(crashed)",
        ],
        "if(rk.kind = 'command', [duration_bucket], emptyArrayUInt64()),
            if(rk.kind = 'command', [toUInt64(1)], emptyArrayUInt64())",
        condition,
        layout,
    )
}

/// Rollup rows of the events `condition` selects, counting `runs`, `ok`
/// and `crashes` per event, and `durations` as the `sumMap` arguments.
fn rollup_rows(
    [runs, ok, crashes]: [&str; 3],
    durations: &str,
    condition: &str,
    layout: Layout,
) -> String {
    let installs = layout.installs.state();
    let durations = layout.durations.of(durations);
    format!(
        "SELECT app, rk.kind AS kind, day, app_version AS version, os, env,
        rk.d1 AS d1, rk.d2 AS d2, rk.d3 AS d3, rk.d4 AS d4,
        sumState({runs}) AS runs,
        sumState({ok}) AS ok,
        sumState({crashes}) AS crashes,
        minState(timestamp_us) AS first_us,
        maxState(timestamp_us) AS last_us,
        {installs} AS installs,
        {durations} AS durations
    FROM events ARRAY JOIN rk
    WHERE {condition}
    GROUP BY app, kind, day, version, os, env, d1, d2, d3, d4"
    )
}

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
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the store has schema version {version}, newer than this Tally knows ({}); upgrade Tally",
            MIGRATIONS.len()
        )));
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        migration(http, server)?;
        let now = tally_rollup::micros(time::OffsetDateTime::now_utc());
        http.execute(&format!(
            "INSERT INTO tally_schema VALUES ({}, {now})",
            i + 1
        ))?;
    }
    Ok(())
}

/// The events table in the client's-day layout, while it is copied.
const BY_CLIENT_DAY: &str = "events_by_client_day";
/// The events table in the received-day layout, until it is complete.
const BY_RECEIVED_DAY: &str = "events_by_received_day";

/// 2: events partitioned by the day they were received, copied from the
/// client's-day layout (ClickHouse cannot change a table's partitioning).
///
/// The old table is first renamed away, so that from then on no collector
/// (of this version or an older one) can insert until the new table takes
/// its name: inserts fail (503, and SDKs keep their events and send them
/// again), none is lost, and none lands in the old table after the copy.
/// `rollups_mv` reads the table *named* `events` (ClickHouse resolves a
/// view's source by name), so it rolls up what is inserted into the new
/// table and not the copy, whose events are rolled up already. Each step
/// can be run again: a collector stopped midway carries on where it left.
fn partition_by_received_day(http: &Http, server: Server) -> Result<(), StoreError> {
    let before = tables(http)?;
    if before.iter().any(|t| t == "events") {
        if has_column(http, "events", "rday")? {
            return Ok(()); // another collector did it
        }
        if http
            .execute(&format!("RENAME TABLE events TO {BY_CLIENT_DAY}"))
            .is_err()
        {
            // Another collector renamed it first and is copying it.
            return wait_for_other_copy(http);
        }
    } else if !before.iter().any(|t| t == BY_CLIENT_DAY) {
        return Err(StoreError::Corrupt(
            "the ClickHouse database has no events table".into(),
        ));
    } else if copy_running(http)? {
        return wait_for_other_copy(http);
    }
    let count = |table: &str| -> Result<Option<u64>, StoreError> {
        let rows = http.rows(&format!("SELECT count() AS n FROM {table}"))?;
        Ok(rows.first().and_then(|r| r["n"].as_u64()))
    };
    let copied = tables(http)?.iter().any(|t| t == BY_RECEIVED_DAY)
        && count(BY_RECEIVED_DAY)? == count(BY_CLIENT_DAY)?;
    if !copied {
        http.execute(&format!("DROP TABLE IF EXISTS {BY_RECEIVED_DAY}"))?;
        http.execute(&events_table(
            BY_RECEIVED_DAY,
            server.few(),
            Partition::ReceivedDay,
            Layout::detect(http)?.installs,
        ))?;
        http.execute(&format!(
            "INSERT INTO {BY_RECEIVED_DAY} SELECT * FROM {BY_CLIENT_DAY}"
        ))?;
        if count(BY_RECEIVED_DAY)? != count(BY_CLIENT_DAY)? {
            return Err(StoreError::Unavailable(
                "copying the events table to partition it by received day left rows behind; \
                 start again to copy it anew"
                    .into(),
            ));
        }
    }
    http.execute(&format!("RENAME TABLE {BY_RECEIVED_DAY} TO events"))?;
    http.execute(&format!("DROP TABLE {BY_CLIENT_DAY}"))
}

/// 3: each app's secret salt (`App::salt`). Apps made before get one in a
/// row of their own, dated a microsecond before their first, which is the
/// row `apps` reads (and the one `ReplacingMergeTree` keeps, being the last
/// inserted). Collectors migrating at the same moment may each add one;
/// `apps` reads the least of those, so every collector agrees once it
/// sees them all.
fn salt_apps(http: &Http, _: Server) -> Result<(), StoreError> {
    if !has_column(http, "apps", "salt")? {
        http.execute("ALTER TABLE apps ADD COLUMN salt String")?;
    }
    let unsalted = http.rows(
        "SELECT name, argMin(ingest_key, created_us) AS key, min(created_us) - 1 AS before
         FROM apps GROUP BY name HAVING argMin(salt, created_us) = ''",
    )?;
    if unsalted.is_empty() {
        return Ok(());
    }
    let mut lines = String::new();
    for row in unsalted {
        let row = serde_json::json!({
            "name": row["name"],
            "ingest_key": row["key"],
            "created_us": row["before"],
            "salt": crate::model::new_salt(),
        });
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    http.insert("apps", lines.as_bytes())
}

/// 4: what saw each event (`tally_protocol::Source`). The rollups need no
/// column: a gateway's rows have kinds of their own (`stored_kind`).
/// Collectors of the version before insert without it, and their events
/// are the SDKs'. `rollups_mv` keeps durations of `command` rows only; a
/// view of its own adds those of a gateway's (see
/// [`gateway_durations_view`]), so the first view is never dropped and
/// remade while collectors insert.
fn source_events(http: &Http, server: Server) -> Result<(), StoreError> {
    if !has_column(http, "events", "source")? {
        let added = http.execute(&format!(
            "ALTER TABLE events ADD COLUMN source {} DEFAULT 'sdk'",
            server.few()
        ));
        // A collector migrating at the same moment may have added it first.
        match added {
            Err(_) if has_column(http, "events", "source")? => {}
            other => other?,
        }
    }
    http.execute(&gateway_durations_view(Layout::detect(http)?))
}

/// The durations of a gateway's `command` rows, written in the same
/// INSERT as `rollups_mv`'s rows: rows of zero runs whose counts merge
/// into the same keys (a set of installs it already has, times it already
/// spans) and add only the durations.
fn gateway_durations_view(layout: Layout) -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS rollups_gateway_durations_mv TO rollups AS {}",
        gateway_durations_select("1", layout)
    )
}

/// The gateway durations rows of the events `condition` selects.
pub(super) fn gateway_durations_select(condition: &str, layout: Layout) -> String {
    rollup_rows(
        ["toUInt64(0)"; 3],
        "[duration_bucket], [toUInt64(1)]",
        &format!("isNull(name) AND rk.kind = 'gateway.command' AND ({condition})"),
        layout,
    )
}

/// 5: erasures written down before they delete anything, crossed out
/// when done (see `erase.rs`).
fn erasures_pending(http: &Http, _: Server) -> Result<(), StoreError> {
    http.execute(
        "CREATE TABLE IF NOT EXISTS erasures_pending (
            app String,
            install_id UUID,
            days Array(String)
        ) ENGINE = MergeTree ORDER BY (app, install_id)",
    )
}

/// 6: custom events rolled up (their `rk` rows, of kinds `event` and
/// `event_property`), by a view of their own beside `rollups_mv`, which
/// is never dropped and remade while collectors insert. Custom events
/// stored before have no `rk` rows, and stay out of the rollups.
fn named_events(http: &Http, _: Server) -> Result<(), StoreError> {
    http.execute(&format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS rollups_named_mv TO rollups AS {}",
        rollups_select("isNotNull(name)", Layout::detect(http)?)
    ))
}

/// 7: `rollups_mv` on the table named `events` again where 2 left it on
/// the table it copied from (ClickHouse 20.10 and later: views follow a
/// renamed table in Atomic databases), which rolled nothing up since. A
/// view that reads `events` is left as it is.
fn rollups_view_on_events(http: &Http, _: Server) -> Result<(), StoreError> {
    let rows = http.rows(&format!(
        "SELECT count() AS n FROM system.tables
         WHERE database = {db} AND name = 'events' AND has(dependencies_table, 'rollups_mv')",
        db = super::http::quote(http.database())
    ));
    // Servers without the column (none Tally supports) keep the view.
    let Ok(rows) = rows else { return Ok(()) };
    if rows.first().and_then(|r| r["n"].as_u64()) != Some(0) {
        return Ok(());
    }
    http.execute("DROP TABLE IF EXISTS rollups_mv")?;
    http.execute(&rollups_view(Layout::detect(http)?))
}

/// 8: the install numbers of exact install sets, in databases made with
/// them (see `installs.rs`); those made before keep their hashes.
fn number_installs(http: &Http, _: Server) -> Result<(), StoreError> {
    if Layout::detect(http)?.installs == Installs::Numbers {
        for sql in NUMBER_TABLES {
            http.execute(sql)?;
        }
    }
    Ok(())
}

/// Whether a collector is copying the events table into the new layout.
fn copy_running(http: &Http) -> Result<bool, StoreError> {
    let rows = http.rows(&format!(
        "SELECT count() AS n FROM system.processes
         WHERE query LIKE 'INSERT INTO {BY_RECEIVED_DAY} %' AND query NOT LIKE '%system.processes%'"
    ))?;
    Ok(rows.first().and_then(|r| r["n"].as_u64()) != Some(0))
}

/// Waits a minute at most for another collector's copy to finish (at once
/// for a new, empty database), so collectors started together all start.
fn wait_for_other_copy(http: &Http) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if tables(http)?.iter().any(|t| t == "events") && has_column(http, "events", "rday")? {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    Err(StoreError::Unavailable(
        "another collector is copying the events table to partition it by the day events \
         are received; start this one again once it is done"
            .into(),
    ))
}

/// The tables of the database.
fn tables(http: &Http) -> Result<Vec<String>, StoreError> {
    let rows = http.rows(&format!(
        "SELECT name FROM system.tables WHERE database = {}",
        super::http::quote(http.database())
    ))?;
    Ok(rows
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect())
}

fn has_column(http: &Http, table: &str, column: &str) -> Result<bool, StoreError> {
    let rows = http.rows(&format!(
        "SELECT count() AS n FROM system.columns WHERE database = {} AND table = {} AND name = {}",
        super::http::quote(http.database()),
        super::http::quote(table),
        super::http::quote(column),
    ))?;
    Ok(rows.first().and_then(|r| r["n"].as_u64()).unwrap_or(0) > 0)
}

/// Forgets one app's events (by the day they were received) and rollups
/// older than their days, row by row: partitions are months of every app.
/// A delete is a mutation ClickHouse runs behind; this waits for it, so
/// what is gone is gone when it returns.
pub(super) fn retain_app(
    http: &Http,
    app: &str,
    events_days: Option<u32>,
    rollups_days: Option<u32>,
) -> Result<(), StoreError> {
    for table in ["events", "rollups"] {
        // A table-wide TTL set by `retain_days` would forget what an app
        // keeps longer (ClickHouse 20 and later can remove it; before, a
        // TTL can only be removed by hand).
        let _ = http.execute(&format!("ALTER TABLE {table} REMOVE TTL"));
    }
    for (table, column, days) in [
        ("events", "rday", events_days),
        ("rollups", "day", rollups_days),
    ] {
        let Some(days) = days else { continue };
        let cutoff = tally_rollup::from_micros(tally_rollup::day_start(
            tally_rollup::retention_cutoff(days),
        ))
        .date();
        http.execute(&format!(
            "ALTER TABLE {table} DELETE WHERE app = {} AND {column} < toDate('{cutoff}')",
            super::http::quote(app)
        ))?;
    }
    wait_for_mutations(http)
}

/// Waits for the mutations of the events and rollups to be done, a minute
/// at most.
pub(super) fn wait_for_mutations(http: &Http) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let rows = http.rows(&format!(
            "SELECT count() AS n FROM system.mutations
             WHERE database = {} AND table IN ('events', 'rollups', 'erasures_pending', 'install_numbers')
               AND is_done = 0",
            super::http::quote(http.database())
        ))?;
        if rows.first().and_then(|r| r["n"].as_u64()) == Some(0) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(StoreError::Unavailable(
                "ClickHouse has not finished deleting what retention or an erasure forgets; \
                 it goes on behind"
                    .into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Keeps `days` whole days: every server drops the monthly partitions that
/// end before the cutoff; servers with TTL also forget the days before it
/// in the months that remain, as they merge. Events go by the day they were
/// received (`rday`), rollups by the day they count (`day`, the corrected
/// timestamp's), so no client clock keeps an event longer or shorter.
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
        for (table, column) in [("events", "rday"), ("rollups", "day")] {
            http.execute(&format!(
                "ALTER TABLE {table} MODIFY TTL {column} + INTERVAL {days} DAY"
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Writer;
    use tally_testkit::clickhouse::LocalServer;
    use tally_testkit::events::sample;

    use super::super::http::Target;

    fn sum(http: &Http, sql: &str) -> u64 {
        let rows = http.rows(sql).expect("query");
        rows.first().and_then(|r| r["n"].as_u64()).expect("a count")
    }

    /// An invocation event (rolled up), received about an hour ago.
    fn invocation(n: u32) -> tally_protocol::StoredEvent {
        let mut e = sample(
            n,
            "legacy",
            time::OffsetDateTime::now_utc() - time::Duration::hours(1),
        );
        e.event.name = None;
        e
    }

    fn insert(http: &Http, events: Vec<tally_protocol::StoredEvent>) {
        let mut writer = super::super::writer::ClickHouseWriter {
            http: http.clone(),
            installs: Layout::detect(http).expect("layout").installs,
            numbering: Default::default(),
        };
        let new = writer.insert(&mut events.into()).expect("insert");
        assert!(new.iter().all(|&n| n));
    }

    /// A database of schema 1, events in it, then this Tally's migration:
    /// every event is kept, in partitions of the day it was received, its
    /// rollups are not counted again, and later inserts are rolled up.
    #[test]
    fn events_partitioned_by_client_day_are_moved_to_received_day() {
        moved_to_received_day(&LocalServer::start());
    }

    /// The same on the current engine, whose views follow a renamed table.
    #[test]
    fn events_partitioned_by_client_day_are_moved_on_the_current_engine() {
        moved_to_received_day(&LocalServer::start_current().expect("PyPI's chdb-core"));
    }

    fn moved_to_received_day(server: &LocalServer) {
        let http = Http::new(&Target::parse(&server.store_url("legacy"), None).expect("url"))
            .expect("connects");
        http.execute_global("CREATE DATABASE legacy")
            .expect("database");
        let detected = Server::detect(&http).expect("version");
        create_tables_partitioned(&http, detected, Partition::ClientDay, Layout::FIRST)
            .expect("schema 1");
        http.execute("CREATE TABLE tally_schema (version UInt32, applied_us Int64) ENGINE = MergeTree ORDER BY version")
            .expect("versions");
        http.execute("INSERT INTO tally_schema VALUES (1, 0)")
            .expect("version 1");
        let old: Vec<_> = (0..30)
            .map(|n| {
                let mut e = invocation(n);
                // A client clock that read 1970, and one a month apart per event.
                e.client_timestamp =
                    tally_rollup::from_micros(i64::from(n) * 31 * tally_rollup::DAY_US);
                e
            })
            .collect();
        insert(&http, old);
        let months = "SELECT count(DISTINCT partition) AS n FROM system.parts
                      WHERE database = 'legacy' AND table = 'events' AND active";
        assert!(
            sum(&http, months) > 20,
            "schema 1 partitions by the client's month"
        );
        let runs = "SELECT sumMerge(runs) AS n FROM rollups WHERE kind = 'command'";
        assert_eq!(sum(&http, runs), 30);

        migrate(&http).expect("migrate");
        assert_eq!(sum(&http, "SELECT count() AS n FROM events"), 30);
        assert_eq!(sum(&http, months), 1, "the month the events were received");
        assert_eq!(sum(&http, runs), 30, "the copy is not rolled up again");
        assert_eq!(
            tables(&http)
                .expect("tables")
                .iter()
                .filter(|t| t.starts_with("events"))
                .count(),
            1
        );
        insert(&http, vec![invocation(99)]);
        assert_eq!(sum(&http, runs), 31, "what is inserted after is rolled up");
        migrate(&http).expect("a second start finds nothing to do");
        assert_eq!(sum(&http, "SELECT count() AS n FROM events"), 31);
    }

    /// Apps made before salts existed get one when the store is migrated,
    /// keep their key, and read the same salt on every later start.
    #[test]
    fn apps_made_before_salts_get_one_that_stays() {
        let server = LocalServer::start();
        let url = server.store_url("unsalted");
        let http = Http::new(&Target::parse(&url, None).expect("url")).expect("connects");
        http.execute_global("CREATE DATABASE unsalted")
            .expect("database");
        let detected = Server::detect(&http).expect("version");
        create_tables_partitioned(&http, detected, Partition::ClientDay, Layout::FIRST)
            .expect("schema 1");
        http.execute("CREATE TABLE tally_schema (version UInt32, applied_us Int64) ENGINE = MergeTree ORDER BY version")
            .expect("versions");
        http.execute("INSERT INTO tally_schema VALUES (1, 0), (2, 0)")
            .expect("version 2");
        http.insert(
            "apps",
            br#"{"name": "old", "ingest_key": "tk_old", "created_us": 1000}"#,
        )
        .expect("an app of schema 2");
        let open = || crate::StoreSpec::new(std::path::Path::new("unused"), Some(&url)).open();
        let apps = open().expect("migrate").apps().expect("apps");
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].ingest_key, "tk_old");
        assert_eq!(apps[0].salt.len(), 64, "{apps:?}");
        let again = open().expect("reopen").apps().expect("apps");
        assert_eq!(again, apps);
        assert_eq!(again[0].salt, apps[0].salt);
    }
}
