//! The embedded store's tables, created and migrated in order.
//!
//! Each migration runs once, in its own transaction, and bumps
//! `tally_schema.version`; a file written by a newer Tally is refused rather
//! than misread.

use duckdb::Connection;

use crate::StoreError;

/// Migrations in order; index + 1 is the schema version each produces.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    id UUID NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    client_timestamp TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    app VARCHAR NOT NULL,
    app_version VARCHAR NOT NULL,
    install_id UUID NOT NULL,
    command VARCHAR NOT NULL,
    -- Flag names joined by single spaces (names never contain one).
    flags VARCHAR NOT NULL,
    exit_code INTEGER NOT NULL,
    outcome VARCHAR,
    duration_ms BIGINT NOT NULL,
    os VARCHAR NOT NULL,
    arch VARCHAR NOT NULL,
    os_version VARCHAR,
    ci VARCHAR,
    agent VARCHAR,
    tty BOOLEAN,
    error_kind VARCHAR,
    error_message VARCHAR,
    error_location VARCHAR,
    -- Flat JSON objects, NULL when empty.
    deps VARCHAR,
    properties VARCHAR
);
CREATE TABLE apps (
    name VARCHAR PRIMARY KEY,
    ingest_key VARCHAR NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
"#,
    // 2: where the CLI ran, custom events (appended, so the appender's
    // column order holds).
    r#"
ALTER TABLE events ADD COLUMN container BOOLEAN;
ALTER TABLE events ADD COLUMN wsl BOOLEAN;
-- Custom events carry a name; the invocation event has none.
ALTER TABLE events ADD COLUMN name VARCHAR;
"#,
    // 3: rollups for the reports (see `tally_rollup`), and the dense
    // install numbers their install sets hold. Existing events are numbered
    // here and rolled up by `rollups::rebuild` when the store opens.
    r#"
ALTER TABLE events ADD COLUMN install_no INTEGER;
CREATE TABLE installs (install_id UUID NOT NULL, n INTEGER NOT NULL);
INSERT INTO installs
    SELECT install_id, CAST(row_number() OVER (ORDER BY min(timestamp), install_id) - 1 AS INTEGER)
    FROM events GROUP BY install_id;
UPDATE events SET install_no = installs.n FROM installs
    WHERE events.install_id = installs.install_id;
CREATE TABLE rollups (
    app VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    -- Days since 1970-01-01, UTC.
    day INTEGER NOT NULL,
    version VARCHAR NOT NULL,
    os VARCHAR NOT NULL,
    env VARCHAR NOT NULL,
    d1 VARCHAR,
    d2 VARCHAR,
    d3 VARCHAR,
    d4 VARCHAR,
    runs BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    crashes BIGINT NOT NULL,
    first_us BIGINT NOT NULL,
    last_us BIGINT NOT NULL,
    -- A serialized roaring bitmap of install numbers.
    installs BLOB NOT NULL,
    -- (value, count) pairs of little-endian u64s; command rows only.
    durations BLOB
);
"#,
    // 4: how far the journal (see `crate::journal`) is loaded.
    r#"
CREATE TABLE journal_loaded (segment BIGINT NOT NULL, "offset" BIGINT NOT NULL);
INSERT INTO journal_loaded VALUES (0, 0);
"#,
    // 5: client times that Tally before 0.1 stored unchecked (year 0 or
    // 9999), which no export could write, clamped into the window every
    // store holds (`tally_protocol::clock`); the times themselves were
    // the client's clock and meant nothing.
    r#"
UPDATE events SET client_timestamp = TIMESTAMP '1970-01-01 00:00:00'
    WHERE client_timestamp < TIMESTAMP '1970-01-01 00:00:00';
UPDATE events SET client_timestamp = TIMESTAMP '2099-12-31 23:59:59.999999'
    WHERE client_timestamp >= TIMESTAMP '2100-01-01 00:00:00';
"#,
    // 6: each app's secret salt, for foreign user ids (`App::salt`): 244
    // random bits, as `App::new` makes them.
    r#"
ALTER TABLE apps ADD COLUMN salt VARCHAR;
UPDATE apps SET salt = replace(gen_random_uuid()::VARCHAR, '-', '') || replace(gen_random_uuid()::VARCHAR, '-', '');
"#,
    // 7: what saw each event (`tally_protocol::Source`), in the events and
    // in the rollups the reports filter; what is stored before is the
    // SDKs'. (A property is no proof of a gateway: anyone with an ingest
    // key could have sent `source = "gateway"`.)
    r#"
ALTER TABLE events ADD COLUMN source VARCHAR DEFAULT 'sdk';
ALTER TABLE rollups ADD COLUMN source VARCHAR DEFAULT 'sdk';
"#,
];

/// Brings the database to the newest schema.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS tally_schema (version INTEGER NOT NULL)")?;
    let version: Option<i64> =
        conn.query_row("SELECT max(version) FROM tally_schema", [], |r| r.get(0))?;
    let version = version.unwrap_or(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the store has schema version {version}, newer than this Tally knows ({}); upgrade Tally",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO tally_schema VALUES (?)", [i as i64 + 1])?;
        tx.commit()?;
    }
    Ok(())
}
