//! `health`: success and crash rate per version and per command, against
//! the previous version, with changes beyond noise flagged.

use std::collections::BTreeMap;

use tally_report::{Cell, Query, Table, compare_versions};

use super::table::{columns, ratio, runs};
use super::{Src, read_range};
use crate::{Agg, Dim, Error, Group, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let need = Need::new(Kind::Command, &[&[Part::Version, Part::Dim(Dim::Command)]]).counts_only();
    let [groups] = read_range(source, &need, query)?;
    Ok(tables(&groups))
}

fn tables(groups: &[Group]) -> Vec<Table> {
    let mut by_version: BTreeMap<String, Agg> = BTreeMap::new();
    let mut by_command: BTreeMap<String, BTreeMap<String, Agg>> = BTreeMap::new();
    for row in groups.iter().map(|g| &g.row) {
        let counts = Agg {
            runs: row.agg.runs,
            ok: row.agg.ok,
            crashes: row.agg.crashes,
            ..Agg::default()
        };
        by_version
            .entry(row.version.clone())
            .or_default()
            .merge(&counts);
        by_command
            .entry(row.dim(Dim::Command).unwrap_or_default().to_owned())
            .or_default()
            .entry(row.version.clone())
            .or_default()
            .merge(&counts);
    }
    let names = |first: &[&str]| -> Vec<String> {
        let mut all = first.to_vec();
        all.extend([
            "version",
            "runs",
            "success_rate",
            "previous_version",
            "previous_success_rate",
            "crash_rate",
            "previous_crash_rate",
            "regression",
        ]);
        columns(&all)
    };
    let versions = Table {
        name: "versions".into(),
        columns: names(&[]),
        rows: rows_for(&[], &by_version),
    };
    let mut command_rows: Vec<Vec<Cell>> = by_command
        .iter()
        .flat_map(|(command, versions)| rows_for(&[Cell::Text(command.clone())], versions))
        .collect();
    // Regressions first: they are what a maintainer opens this page for.
    command_rows.sort_by_key(|row| row.last() != Some(&Cell::Bool(true)));
    let commands = Table {
        name: "commands".into(),
        columns: names(&["command"]),
        rows: command_rows,
    };
    vec![versions, commands]
}

/// One row per version, newest first, each against the version before it,
/// after the cells of `prefix`.
fn rows_for(prefix: &[Cell], versions: &BTreeMap<String, Agg>) -> Vec<Vec<Cell>> {
    let mut ordered: Vec<(&String, &Agg)> = versions.iter().collect();
    ordered.sort_by(|a, b| compare_versions(a.0, b.0));
    let mut out = Vec::new();
    for (i, (version, t)) in ordered.iter().enumerate() {
        let mut row = prefix.to_vec();
        row.extend([Cell::Text((*version).clone()), runs(t), ratio(t.ok, t.runs)]);
        match i.checked_sub(1).map(|p| ordered[p]) {
            Some((pv, p)) => row.extend([
                Cell::Text(pv.clone()),
                ratio(p.ok, p.runs),
                ratio(t.crashes, t.runs),
                ratio(p.crashes, p.runs),
                Cell::Bool(
                    worse(t.ok, t.runs, p.ok, p.runs, false)
                        || worse(t.crashes, t.runs, p.crashes, p.runs, true),
                ),
            ]),
            None => row.extend([
                Cell::Null,
                Cell::Null,
                ratio(t.crashes, t.runs),
                Cell::Null,
                Cell::Bool(false),
            ]),
        }
        out.push(row);
    }
    out.reverse(); // newest first
    out
}

/// Whether a rate moved the bad way beyond noise: a two-proportion z-test at
/// |z| > 3 (about one false alarm in 700 comparisons), with at least 30 runs
/// on each side. `higher_is_worse` for crash rates, not for success rates.
fn worse(k1: u64, n1: u64, k0: u64, n0: u64, higher_is_worse: bool) -> bool {
    if n1 < 30 || n0 < 30 {
        return false;
    }
    let (p1, p0) = (k1 as f64 / n1 as f64, k0 as f64 / n0 as f64);
    let pooled = (k1 + k0) as f64 / (n1 + n0) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n0 as f64)).sqrt();
    if se == 0.0 {
        return false;
    }
    let z = (p1 - p0) / se;
    if higher_is_worse { z > 3.0 } else { z < -3.0 }
}
