//! Every environment variable the `tally` binary reads, in one place.

/// The data dir (`--data`).
pub const DATA: &str = "TALLY_DATA";
/// A shared store instead of the data dir's embedded one (`--store`), e.g.
/// `clickhouse://127.0.0.1:8123/tally`.
pub const STORE: &str = "TALLY_STORE";
/// The ClickHouse password for `--store`, so that it is not in the URL,
/// where `ps` shows it (`--clickhouse-password-file` is the other way).
pub const CLICKHOUSE_PASSWORD: &str = "TALLY_CLICKHOUSE_PASSWORD";
/// Days of events `tally serve` keeps (`--retention-days`).
pub const RETENTION_DAYS: &str = "TALLY_RETENTION_DAYS";
/// The token `GET /metrics` needs (`--metrics-token-file` is the other way);
/// unset, the metrics are open.
pub const METRICS_TOKEN: &str = "TALLY_METRICS_TOKEN";
/// Events per second one app may send to `tally serve`
/// (`--app-events-per-second`).
pub const APP_EVENTS_PER_SECOND: &str = "TALLY_APP_EVENTS_PER_SECOND";
/// The config file of `tally serve` (`--config`).
pub const CONFIG: &str = "TALLY_CONFIG";
/// The listen address of `tally serve` (`--listen`).
pub const LISTEN: &str = "TALLY_LISTEN";
/// A running server's URL for admin commands (`--server`).
pub const SERVER: &str = "TALLY_SERVER";
/// The admin token for `--server` (`--token`).
pub const TOKEN: &str = "TALLY_TOKEN";
/// Log filter, in `tracing_subscriber::EnvFilter` syntax (default "info").
pub const LOG: &str = "TALLY_LOG";
