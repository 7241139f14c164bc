//! Report rows from ClickHouse: the rollups its view keeps, merged, for
//! whole days; raw events rolled up on the spot for partial days.

use roaring::RoaringBitmap;
use serde_json::Value;
use tally_report::Filter;
use time::OffsetDateTime;

use super::http::{Http, quote};
use super::writer::{EVENT_COLUMNS, NONE, from_row};
use crate::StoreError;
use crate::rollup::{self, Agg, Histogram, Kind, Row, Span};

pub(super) struct Source<'a> {
    pub(super) http: &'a Http,
    pub(super) filter: &'a Filter,
}

impl rollup::Source for Source<'_> {
    fn rows(
        &self,
        kind: Kind,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<Row>, StoreError> {
        let f = self.filter;
        let span = Span::new(since, until);
        let mut out = Vec::new();
        if span.any_days {
            let mut sql = format!(
                "SELECT toUInt16(day) AS n, version, os, env, d1, d2, d3, d4,
                    sumMerge(runs) AS runs, sumMerge(ok) AS ok, sumMerge(crashes) AS crashes,
                    minMerge(first_us) AS first_us, maxMerge(last_us) AS last_us,
                    groupUniqArrayMerge(installs) AS installs, sumMapMerge(durations) AS durations
                 FROM rollups WHERE app = {} AND kind = {}",
                quote(&f.app),
                quote(kind.as_str())
            );
            if let Some(first) = span.days.0 {
                sql.push_str(&format!(" AND day >= toDate({first})"));
            }
            if let Some(last) = span.days.1 {
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
            sql.push_str(" GROUP BY day, version, os, env, d1, d2, d3, d4");
            self.http.each_row(&sql, |r| {
                out.push(row(&r)?);
                Ok(())
            })?;
        }
        for &(from, to) in &span.edges {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE app = {} AND isNull(name)
                 AND timestamp_us >= {from} AND timestamp_us < {to} LIMIT 1 BY id",
                quote(&f.app)
            );
            let events = self
                .http
                .rows(&sql)?
                .iter()
                .map(from_row)
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(rollup::rows_from_events(
                events.iter().map(|(e, n)| (&e.event, *n)),
                kind,
                f,
            ));
        }
        Ok(out)
    }
}

fn row(r: &Value) -> Result<Row, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("ClickHouse rollup row: {what}"));
    let text = |k: &str| r[k].as_str().map(str::to_owned).ok_or_else(|| corrupt(k));
    let count = |k: &str| r[k].as_u64().ok_or_else(|| corrupt(k));
    let dim = |k: &str| -> Result<Option<String>, StoreError> {
        let d = text(k)?;
        Ok((d != NONE).then_some(d))
    };
    let env = text("env")?;
    let numbers = |v: &Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    let mut durations = Histogram::default();
    let (values, counts) = (numbers(&r["durations"][0]), numbers(&r["durations"][1]));
    for (value, n) in values.into_iter().zip(counts) {
        durations.add(value, n);
    }
    let installs: RoaringBitmap = numbers(&r["installs"])
        .into_iter()
        .map(|n| n as u32)
        .collect();
    Ok(Row {
        day: i32::from(count("n")? as u16),
        version: text("version")?,
        os: text("os")?,
        env: rollup::parse_env(&env).ok_or_else(|| corrupt("env"))?,
        dims: [dim("d1")?, dim("d2")?, dim("d3")?, dim("d4")?],
        agg: Agg {
            runs: count("runs")?,
            ok: count("ok")?,
            crashes: count("crashes")?,
            first_us: r["first_us"].as_i64().ok_or_else(|| corrupt("first_us"))?,
            last_us: r["last_us"].as_i64().ok_or_else(|| corrupt("last_us"))?,
            installs,
            durations,
        },
    })
}
