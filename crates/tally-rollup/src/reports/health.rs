//! `health`: success and crash rate per version and per command, against
//! the previous version, with changes beyond noise flagged.

use std::collections::BTreeMap;

use tally_report::{Cell, Query, Table, compare_versions};

use super::table::{ratio, runs};
use super::top::{Top, is_other, other_key, summed};
use super::{Src, read_range};
use crate::{Agg, Dim, Error, Group, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    let need = Need::new(Kind::Command, &[&[Part::Version, Part::Dim(Dim::Command)]]).counts_only();
    let [groups] = read_range(source, &need, query)?;
    Ok(tables(&groups, query.limit))
}

/// A row of a health table, with the counts it was made of.
struct Line {
    cells: Vec<Cell>,
    counts: Agg,
    regression: bool,
}

fn tables(groups: &[Group], limit: Option<usize>) -> Vec<Table> {
    let mut by_version: BTreeMap<String, Agg> = BTreeMap::new();
    let mut by_command: BTreeMap<String, BTreeMap<String, Agg>> = BTreeMap::new();
    for row in groups.iter().map(|g| &g.row) {
        by_version
            .entry(row.version.clone())
            .or_default()
            .merge_counts(&row.agg);
        by_command
            .entry(row.dim(Dim::Command).unwrap_or_default().to_owned())
            .or_default()
            .entry(row.version.clone())
            .or_default()
            .merge_counts(&row.agg);
    }
    let versions = lines_for(&[], &by_version);
    let mut commands: Vec<Line> = by_command
        .iter()
        .flat_map(|(command, versions)| lines_for(&[Cell::Text(command.clone())], versions))
        .collect();
    // Regressions first: they are what a maintainer opens this page for.
    commands.sort_by_key(|line| !line.regression);
    vec![
        table("versions", &[], versions, limit),
        table("commands", &["command"], commands, limit),
    ]
}

/// The table of `lines`, whose key is the columns `first` and the version;
/// the first `limit` lines by regression, then runs.
fn table(name: &str, first: &[&str], lines: Vec<Line>, limit: Option<usize>) -> Table {
    let mut names = first.to_vec();
    names.extend([
        "version",
        "runs",
        "success_rate",
        "previous_version",
        "previous_success_rate",
        "crash_rate",
        "previous_crash_rate",
        "regression",
        "improvement",
    ]);
    let key = first.len() + 1;
    let top = Top::new(
        lines,
        limit,
        |line| is_other(&line.cells[..key]),
        |a, b| (b.regression, b.counts.runs).cmp(&(a.regression, a.counts.runs)),
    );
    top.table(
        name,
        &names,
        |line| line.cells,
        |rest| {
            let t = summed(rest.iter().map(|line| &line.counts));
            let mut cells = other_key(key);
            cells.extend([runs(&t), ratio(t.ok, t.runs), Cell::Null, Cell::Null]);
            cells.extend([ratio(t.crashes, t.runs), Cell::Null, Cell::Null, Cell::Null]);
            cells
        },
    )
}

/// One line per version, newest first, each against the version before
/// it, after the cells of `prefix`.
fn lines_for(prefix: &[Cell], versions: &BTreeMap<String, Agg>) -> Vec<Line> {
    let mut ordered: Vec<(&String, &Agg)> = versions.iter().collect();
    ordered.sort_by(|a, b| compare_versions(a.0, b.0));
    let mut out = Vec::new();
    for (i, (version, t)) in ordered.iter().enumerate() {
        let mut row = prefix.to_vec();
        row.extend([Cell::Text((*version).clone()), runs(t), ratio(t.ok, t.runs)]);
        let regression = match i.checked_sub(1).map(|p| ordered[p]) {
            Some((pv, p)) => {
                let regression = worse(t.ok, t.runs, p.ok, p.runs, false)
                    || worse(t.crashes, t.runs, p.crashes, p.runs, true);
                // The previous version worse than this one, by the same test.
                let improvement = !regression
                    && (worse(p.ok, p.runs, t.ok, t.runs, false)
                        || worse(p.crashes, p.runs, t.crashes, t.runs, true));
                row.extend([
                    Cell::Text(pv.clone()),
                    ratio(p.ok, p.runs),
                    ratio(t.crashes, t.runs),
                    ratio(p.crashes, p.runs),
                    Cell::Bool(regression),
                    Cell::Bool(improvement),
                ]);
                regression
            }
            None => {
                row.extend([
                    Cell::Null,
                    Cell::Null,
                    ratio(t.crashes, t.runs),
                    Cell::Null,
                    Cell::Bool(false),
                    Cell::Bool(false),
                ]);
                false
            }
        };
        out.push(Line {
            cells: row,
            counts: (*t).clone(),
            regression,
        });
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
