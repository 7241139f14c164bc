//! Report rows from ClickHouse: the rollups its view keeps, merged, for
//! whole days; raw events rolled up on the spot for partial days.

use roaring::RoaringBitmap;
use tally_report::Filter;

use super::http::{Http, quote};
use super::writer::{EVENT_COLUMNS, NONE, from_row};
use crate::StoreError;
use crate::rollup::{self, Agg, Histogram, Need, Part, Row};

pub(super) struct Source<'a> {
    pub(super) http: &'a Http,
    pub(super) filter: &'a Filter,
}

impl rollup::Source for Source<'_> {
    fn filter(&self) -> &Filter {
        self.filter
    }

    fn stored(
        &self,
        need: &Need,
        (first, last): (Option<i32>, Option<i32>),
    ) -> Result<Vec<Row>, StoreError> {
        let f = self.filter;
        // ClickHouse merges the rows a report does not tell apart, install
        // sets included, which cuts what crosses the wire by as much; parts
        // not kept are sent as constants (env as any value it has).
        let mut by = Vec::new();
        let mut part = |p: Part, column: &'static str, blank: &'static str| {
            if need.keeps(p) {
                by.push(column);
                column
            } else {
                blank
            }
        };
        let day = part(Part::Day, "day", "toDate(0)");
        let version = part(Part::Version, "version", "''");
        let os = part(Part::Os, "os", "''");
        let env = part(Part::Env, "env", "any(env)");
        let dims = ["d1", "d2", "d3", "d4"]
            .into_iter()
            .enumerate()
            .map(|(i, column)| format!("{} AS {column}", part(Part::Dim(i), column, "'\\0'")))
            .collect::<Vec<_>>()
            .join(", ");
        let installs = if need.installs {
            "groupUniqArrayMerge(installs)"
        } else {
            "emptyArrayUInt32()"
        };
        let durations = if need.durations {
            "sumMapMerge(durations)"
        } else {
            "(emptyArrayUInt64(), emptyArrayUInt64())"
        };
        let mut sql = format!(
            "SELECT toUInt16({day}) AS n, {version} AS version, {os} AS os, {env} AS env,
                {dims},
                sumMerge(runs) AS runs, sumMerge(ok) AS ok, sumMerge(crashes) AS crashes,
                minMerge(first_us) AS first_us, maxMerge(last_us) AS last_us,
                {installs} AS installs, {durations} AS durations
             FROM (SELECT * FROM rollups WHERE app = {} AND kind = {}",
            quote(&f.app),
            quote(need.kind.as_str()),
        );
        if let Some(first) = first {
            sql.push_str(&format!(" AND day >= toDate({first})"));
        }
        if let Some(last) = last {
            sql.push_str(&format!(" AND day <= toDate({last})"));
        }
        for (column, value) in [
            ("version", f.version.as_deref()),
            ("os", f.os.as_deref()),
            ("env", f.env.map(|e| e.as_str())),
        ] {
            if let Some(value) = value {
                sql.push_str(&format!(" AND {column} = {}", quote(value)));
            }
        }
        // The filter is applied inside, where the names are the table's
        // columns rather than the aliases above; grouping by app when
        // nothing else keeps an empty range from giving one row of zeros.
        if by.is_empty() {
            by.push("app");
        }
        sql.push_str(&format!(") GROUP BY {}", by.join(", ")));
        let mut out = Vec::new();
        self.http.each_row(&sql, |r: Stored| {
            out.push(row(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn events(&self, from: i64, to: i64) -> Result<Vec<(crate::StoredEvent, u32)>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE app = {} AND isNull(name)
             AND timestamp_us >= {from} AND timestamp_us < {to} LIMIT 1 BY id",
            quote(&self.filter.app)
        );
        self.http.rows(&sql)?.iter().map(from_row).collect()
    }
}

/// A merged rollup row as ClickHouse sends it.
#[derive(serde::Deserialize)]
struct Stored {
    n: u16,
    version: String,
    os: String,
    env: String,
    d1: String,
    d2: String,
    d3: String,
    d4: String,
    runs: u64,
    ok: u64,
    crashes: u64,
    first_us: i64,
    last_us: i64,
    installs: Vec<u32>,
    durations: (Vec<u64>, Vec<u64>),
}

fn row(r: Stored) -> Result<Row, StoreError> {
    let dim = |d: String| (d != NONE).then_some(d);
    let mut durations = Histogram::default();
    for (value, n) in r.durations.0.into_iter().zip(r.durations.1) {
        durations.add(value, n);
    }
    let mut installs = r.installs;
    installs.sort_unstable();
    Ok(Row {
        day: i32::from(r.n),
        version: r.version,
        os: r.os,
        env: rollup::parse_env(&r.env).ok_or_else(|| {
            StoreError::Corrupt(format!("ClickHouse rollup row: env {:?}", r.env))
        })?,
        dims: [dim(r.d1), dim(r.d2), dim(r.d3), dim(r.d4)],
        agg: Agg {
            runs: r.runs,
            ok: r.ok,
            crashes: r.crashes,
            first_us: r.first_us,
            last_us: r.last_us,
            installs: RoaringBitmap::from_sorted_iter(installs)
                .map_err(|e| StoreError::Corrupt(format!("ClickHouse install set: {e}")))?,
            durations,
        },
    })
}
