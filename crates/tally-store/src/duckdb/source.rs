//! Report rows from the embedded store, for `tally_rollup`'s reports.

use duckdb::ToSql;
use tally_protocol::Event;
use tally_report::Filter;
use tally_rollup::{Need, Row, Source};

use super::rollups::{Sets, raw, read};
use crate::StoreError;

/// Report rows from the embedded store: stored rollups for whole days, raw
/// events rolled up on the fly for partial days. Each read has a connection
/// of its own, so a report may read several kinds at once.
impl Source for super::DuckDbStore {
    type Error = StoreError;

    // Install sets merge in Rust here, so rows are returned as stored.
    fn stored(
        &self,
        f: &Filter,
        need: &Need,
        (first, last): (Option<i32>, Option<i32>),
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut condition = String::from("app = ? AND kind = ?");
        let mut args: Vec<Box<dyn ToSql>> =
            vec![Box::new(f.app.clone()), Box::new(need.kind.as_str())];
        let mut bind = |sql: &str, arg: Box<dyn ToSql>| {
            condition.push_str(sql);
            args.push(arg);
        };
        if let Some(first) = first {
            bind(" AND day >= ?", Box::new(first));
        }
        if let Some(last) = last {
            bind(" AND day <= ?", Box::new(last));
        }
        if let Some(version) = &f.version {
            bind(" AND version = ?", Box::new(version.clone()));
        }
        if let Some(os) = &f.os {
            bind(" AND os = ?", Box::new(os.clone()));
        }
        if let Some(env) = f.env {
            bind(" AND env = ?", Box::new(env.as_str()));
        }
        if let Some(source) = f.source {
            bind(" AND source = ?", Box::new(source.as_str()));
        }
        let sets = Sets {
            installs: need.installs,
            durations: need.durations,
        };
        read(
            &self.connection()?,
            &condition,
            &args,
            sets,
            &mut |key, agg| each(Row::new(key, agg)),
        )
    }

    fn events(&self, app: &str, from: i64, to: i64) -> Result<Vec<(Event, u32)>, StoreError> {
        raw(&self.connection()?, Some(app), from, to)
    }
}
