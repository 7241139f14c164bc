//! Report rows from ClickHouse: the rollups its view keeps, merged, for
//! whole days; raw events rolled up on the spot for partial days.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use roaring::RoaringBitmap;
use tally_protocol::Event;
use tally_report::{Env, Filter};
use tally_rollup::{Agg, Group, Histogram, Kind, Need, Part, Parts, Row, Source, Span};
use time::OffsetDateTime;

use super::http::{Http, quote};
use super::layout::Layout;
use super::schema::{gateway_durations_select, rollups_select};
use super::writer::{EVENT_COLUMNS, NONE, from_row, stored_kind};
use crate::StoreError;

pub(super) struct ClickHouseSource<'a> {
    pub(super) http: &'a Http,
    pub(super) layout: Layout,
    /// Dense numbers for the installs this report has seen.
    pub(super) dense: Dense,
}

/// Install keys renumbered densely, in order of first sight, for one
/// report. Hashes are spread over all 32 bits, where a bitmap keeps almost
/// one container per install; dense numbers pack them, which made the sets
/// of a day 100 times cheaper to merge. (Install numbers are dense already
/// but 64-bit; renumbered alike, they cost a lookup each.) Numbers only
/// need to agree within one report, as its sets are only compared with
/// each other.
#[derive(Default)]
pub(super) struct Dense(Mutex<HashMap<u64, u32>>);

impl Dense {
    /// The numbers of `hashes`, handing out new ones to hashes not seen yet.
    fn numbers(&self, hashes: impl IntoIterator<Item = u64>) -> Vec<u32> {
        let mut numbers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        hashes
            .into_iter()
            .map(|h| {
                let next = numbers.len() as u32;
                *numbers.entry(h).or_insert(next)
            })
            .collect()
    }

    fn set(&self, hashes: Vec<u64>) -> Result<RoaringBitmap, StoreError> {
        let mut set = self.numbers(hashes);
        set.sort_unstable();
        set.dedup();
        RoaringBitmap::from_sorted_iter(set)
            .map_err(|e| StoreError::Corrupt(format!("ClickHouse install set: {e}")))
    }
}

/// Whole days, first and last inclusive; `None` is unbounded on that side.
type Days = (Option<i32>, Option<i32>);

/// How a query sends the installs of each row.
#[derive(Clone, Copy)]
enum InstallsSent {
    /// Not at all.
    Skip,
    /// The set, to be merged further in Rust.
    Set,
    /// Only how many: nothing is merged after.
    Count,
}

impl ClickHouseSource<'_> {
    /// The rollup rows of `kind` for the whole days `days` (first and last,
    /// if any) and of the raw events in `edges`, merged each of the ways
    /// in `groupings`, in that order: ClickHouse merges what a report does
    /// not tell apart, install sets included, which cuts what crosses the
    /// wire by as much. One query reads the rows once for all groupings
    /// (each row taken once per grouping, told apart by its index `g`), so
    /// their states are read and decoded once. Parts a grouping does not
    /// keep are sent blank (env as any value it has).
    fn query(
        &self,
        filter: &Filter,
        kind: Kind,
        groupings: &[Parts],
        (installs, durations): (InstallsSent, bool),
        (days, edges): (Option<Days>, &[(i64, i64)]),
    ) -> Result<Vec<Vec<(Row, u64)>>, StoreError> {
        let mut group_by = vec!["g".to_owned()];
        let mut key = |kept: &dyn Fn(Parts) -> bool, column: &str, blank: &str| {
            let keeping: Vec<String> = (0..groupings.len())
                .filter(|&i| kept(groupings[i]))
                .map(|i| i.to_string())
                .collect();
            let key = if keeping.is_empty() {
                return blank.to_owned();
            } else if keeping.len() == groupings.len() {
                column.to_owned()
            } else {
                format!("if(g IN ({}), {column}, {blank})", keeping.join(", "))
            };
            group_by.push(key.clone());
            key
        };
        let day = key(&|by| by.has(Part::Day), "r_day", "toDate(0)");
        let version = key(&|by| by.has(Part::Version), "r_version", "''");
        let os = key(&|by| by.has(Part::Os), "r_os", "''");
        key(&|by| by.has(Part::Env), "r_env", "''");
        let dims = (0..4)
            // The stored columns d1..d4 are the dimensions' slots.
            .map(|slot| {
                let dim = key(
                    &|by| by.has_slot(slot),
                    &format!("r_d{}", slot + 1),
                    "'\\0'",
                );
                format!("{dim} AS d{}", slot + 1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (set, count) = match installs {
            InstallsSent::Skip => ("emptyArrayUInt64()", "toUInt64(0)"),
            InstallsSent::Set => (self.layout.installs.merged_set(), "toUInt64(0)"),
            InstallsSent::Count => ("emptyArrayUInt64()", self.layout.installs.merged_count()),
        };
        let durations = if durations {
            self.layout.durations.merged()
        } else {
            "(emptyArrayUInt64(), emptyArrayUInt64())"
        };
        let each = (0..groupings.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        // The filter is applied inside, where the names are the table's
        // columns.
        let sql = format!(
            "SELECT toUInt8(g) AS grouping_index, toUInt16({day}) AS n, {version} AS version,
                {os} AS os, any(r_env) AS env, {dims},
                sumMerge(runs) AS runs, sumMerge(ok) AS ok, sumMerge(crashes) AS crashes,
                minMerge(first_us) AS first_us, maxMerge(last_us) AS last_us,
                {set} AS install_set, {count} AS installs_n, {durations} AS histogram
             FROM ({}) ARRAY JOIN [{each}] AS g GROUP BY {}",
            self.rows(filter, kind, days, edges),
            group_by.join(", "),
        );
        let mut out = vec![Vec::new(); groupings.len()];
        self.http.each_row(&sql, |r: Stored| {
            let grouping = usize::from(r.grouping_index);
            let row = row(r, &self.dense)?;
            out.get_mut(grouping)
                .ok_or_else(|| StoreError::Corrupt(format!("ClickHouse grouping {grouping}")))?
                .push(row);
            Ok(())
        })?;
        Ok(out)
    }

    /// The rollup rows of `kind` that pass `filter`: those stored for the
    /// whole days `days`, and those of the raw events in `edges` rolled up
    /// on the spot by the views' own queries, as states of the same types,
    /// so that ClickHouse merges both alike.
    fn rows(
        &self,
        filter: &Filter,
        kind: Kind,
        days: Option<Days>,
        edges: &[(i64, i64)],
    ) -> String {
        let mut parts = Vec::new();
        if let Some((first, last)) = days {
            let mut sql = format!(
                "SELECT {ROLLUP_COLUMNS} FROM rollups WHERE {}",
                wanted(filter, kind, ["kind", "version"])
            );
            if let Some(first) = first {
                sql.push_str(&format!(" AND day >= toDate({first})"));
            }
            if let Some(last) = last {
                sql.push_str(&format!(" AND day <= toDate({last})"));
            }
            parts.push(sql);
        }
        for (from, to) in edges {
            // Filtered before the views' grouping, by the events' columns.
            let of_edge = format!(
                "{} AND timestamp_us >= {from} AND timestamp_us < {to}",
                wanted(filter, kind, ["rk.kind", "app_version"])
            );
            parts.push(format!(
                "SELECT {ROLLUP_COLUMNS} FROM ({} UNION ALL {})",
                rollups_select(&of_edge, self.layout),
                gateway_durations_select(&of_edge, self.layout),
            ));
        }
        parts.join(" UNION ALL ")
    }
}

impl Source for ClickHouseSource<'_> {
    type Error = StoreError;

    fn stored(
        &self,
        filter: &Filter,
        need: &Need,
        days: (Option<i32>, Option<i32>),
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let installs = if need.installs {
            InstallsSent::Set
        } else {
            InstallsSent::Skip
        };
        let rows = self.query(
            filter,
            need.kind,
            &[need.parts()],
            (installs, need.durations),
            (Some(days), &[]),
        )?;
        rows.into_iter()
            .flatten()
            .try_for_each(|(row, _)| each(row))
    }

    // Answered by ClickHouse alone, with counts instead of sets: the raw
    // events of a day the range cuts are rolled up in the same query.
    fn grouped(
        &self,
        filter: &Filter,
        need: &Need,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<Vec<Group>>, StoreError> {
        let span = Span::new(since, until);
        if !span.any_days && span.edges.is_empty() {
            return Ok(vec![Vec::new(); need.groupings.len()]);
        }
        let installs = if need.installs {
            InstallsSent::Count
        } else {
            InstallsSent::Skip
        };
        let groupings = self.query(
            filter,
            need.kind,
            &need.groupings,
            (installs, need.durations),
            (span.any_days.then_some(span.days), &span.edges),
        )?;
        Ok(groupings
            .into_iter()
            .map(|rows| {
                rows.into_iter()
                    .map(|(row, installs)| Group { row, installs })
                    .collect()
            })
            .collect())
    }

    fn events(&self, app: &str, from: i64, to: i64) -> Result<Vec<(Event, u32)>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, {} AS install_key FROM events WHERE app = {}
             AND timestamp_us >= {from} AND timestamp_us < {to} LIMIT 1 BY id",
            self.layout.installs.key(),
            quote(app)
        );
        let events: Vec<(Event, u64)> = self
            .http
            .rows(&sql)?
            .iter()
            .map(|row| {
                let key = row["install_key"].as_u64().ok_or_else(|| {
                    StoreError::Corrupt("ClickHouse event row: install key".into())
                })?;
                Ok((from_row(row)?.event, key))
            })
            .collect::<Result<_, StoreError>>()?;
        let numbers = self.dense.numbers(events.iter().map(|(_, hash)| *hash));
        Ok(events
            .into_iter()
            .zip(numbers)
            .map(|((event, _), number)| (event, number))
            .collect())
    }
}

/// A merged rollup row as ClickHouse sends it.
#[derive(serde::Deserialize)]
struct Stored {
    grouping_index: u8,
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
    // Not named as a column: aliases are visible to the whole query.
    install_set: Vec<u64>,
    installs_n: u64,
    histogram: (Vec<u64>, Vec<u64>),
}

fn row(r: Stored, dense: &Dense) -> Result<(Row, u64), StoreError> {
    let dim = |d: String| (d != NONE).then_some(d);
    let mut durations = Histogram::default();
    for (value, n) in r.histogram.0.into_iter().zip(r.histogram.1) {
        durations.add(value, n);
    }
    let row = Row {
        day: i32::from(r.n),
        version: r.version,
        os: r.os,
        env: Env::parse(&r.env).ok_or_else(|| {
            StoreError::Corrupt(format!("ClickHouse rollup row: env {:?}", r.env))
        })?,
        dims: [dim(r.d1), dim(r.d2), dim(r.d3), dim(r.d4)],
        agg: Agg {
            runs: r.runs,
            ok: r.ok,
            crashes: r.crashes,
            first_us: r.first_us,
            last_us: r.last_us,
            installs: dense.set(r.install_set)?,
            durations,
        },
    };
    Ok((row, r.installs_n))
}

/// The rollup rows' columns, the key's named apart from the table's (so
/// that the grouping keys made of them take the plain names), strings as
/// plain `String`: stored ones are `LowCardinality` from 19.9 on, those
/// rolled up on the spot may not be, and servers before 20.7 find no
/// common type for a UNION of both.
const ROLLUP_COLUMNS: &str = "day AS r_day, toString(version) AS r_version, toString(os) AS r_os, \
    toString(env) AS r_env, d1 AS r_d1, d2 AS r_d2, d3 AS r_d3, d4 AS r_d4, \
    runs, ok, crashes, first_us, last_us, installs, durations";

/// What selects the rows of `kind` that pass `f`, as SQL, where the kind
/// and the version are in the columns `[kind, version]`.
fn wanted(f: &Filter, kind: Kind, [kind_column, version_column]: [&str; 2]) -> String {
    let kinds = match f.source {
        Some(source) => vec![stored_kind(kind, source)],
        None => tally_protocol::Source::ALL
            .into_iter()
            .map(|source| stored_kind(kind, source))
            .collect(),
    };
    let kinds: Vec<String> = kinds.iter().map(|k| quote(k)).collect();
    let mut sql = format!(
        "app = {} AND {kind_column} IN ({})",
        quote(&f.app),
        kinds.join(", "),
    );
    for (column, value) in [
        (version_column, f.version.as_deref()),
        ("os", f.os.as_deref()),
        ("env", f.env.map(|e| e.as_str())),
    ] {
        if let Some(value) = value {
            sql.push_str(&format!(" AND {column} = {}", quote(value)));
        }
    }
    sql
}
