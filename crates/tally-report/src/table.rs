//! What a report answers: named tables of cells, and their renderings.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::escape;

/// One value in a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// No value.
    Null,
    /// A count or other integer.
    Int(i64),
    /// A rate, share or duration.
    Float(f64),
    /// Text.
    Text(String),
    /// A yes/no.
    Bool(bool),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(n) => n.to_string(),
            Cell::Float(x) => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.4}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_owned()
                }
            }
            Cell::Text(s) => s.clone(),
            Cell::Bool(b) => b.to_string(),
        }
    }

    /// What a CSV cell holds: text neutralised for spreadsheets (see
    /// [`Report::to_csv`]); numbers as they are, so `-3` stays a number.
    fn csv_text(&self) -> String {
        match self {
            Cell::Text(s) => escape::for_csv(s).into_owned(),
            other => other.text(),
        }
    }
}

/// A table: named columns and rows of cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// What the table holds, e.g. "versions" or "adoption".
    pub name: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
    /// How many rows the table has without the query's limit
    /// ([`Query::limit`](crate::Query::limit)). When there are more than
    /// the limit, the table lists those that count most and sums the rest
    /// in a last row whose key cells read [`OTHER`]; its runs are their
    /// sum, its installs empty (an install may be in several of them).
    #[serde(default)]
    pub total_rows: usize,
}

/// What the key cells of a row read when it holds several values: those
/// beyond a report's limit, or values the server stored as `(other)`
/// because their field had too many distinct values that day.
pub const OTHER: &str = "(other)";

/// What a report left out because it had fewer installs than the app
/// shows (see [`Query::min_installs`](crate::Query::min_installs)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hidden {
    /// The fewest distinct installs a group shown has.
    pub min_installs: u64,
    /// Groups left out, and counts of installs blanked (`null`).
    pub groups: u64,
}

/// A report's answer: one or more tables.
///
/// ```
/// use tally_report::{Cell, Report, Table};
/// let report = Report {
///     report: "commands".into(),
///     tables: vec![Table {
///         name: "commands".into(),
///         columns: vec!["command".into(), "runs".into()],
///         rows: vec![vec![Cell::Text("build".into()), Cell::Int(3)]],
///         total_rows: 1,
///     }],
///     hidden: None,
/// };
/// assert_eq!(report.to_csv(), "command,runs\nbuild,3\n");
/// assert_eq!(report.to_text(), "command    runs\nbuild         3\n");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The report's name.
    pub report: String,
    /// Its tables, the main one first.
    pub tables: Vec<Table>,
    /// What it left out for having too few installs, when the app hides
    /// small groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Hidden>,
}

impl Report {
    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Aligned columns for a terminal; a heading per table when there are
    /// several.
    ///
    /// Control characters (C0, DEL, C1) and bidi controls are shown as
    /// `\u{..}` escapes, so a client's text cannot drive the reader's
    /// terminal (an OSC 52 sequence would write their clipboard).
    ///
    /// ```
    /// use tally_report::{Cell, Report, Table};
    /// let osc52 = "\u{1b}]52;c;cm0gLXJm\u{7}";
    /// let report = Report {
    ///     report: "commands".into(),
    ///     tables: vec![Table {
    ///         name: "commands".into(),
    ///         columns: vec!["command".into()],
    ///         rows: vec![vec![Cell::Text(osc52.into())]],
    ///         total_rows: 1,
    ///     }],
    ///     hidden: None,
    /// };
    /// assert_eq!(report.to_text(), "command\n\\u{1b}]52;c;cm0gLXJm\\u{7}\n");
    /// ```
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (i, table) in self.tables.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if self.tables.len() > 1 {
                let _ = writeln!(out, "== {} ==", escape::for_terminal(&table.name));
            }
            let cells: Vec<Vec<String>> = table
                .rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|cell| escape::for_terminal(&cell.text()).into_owned())
                        .collect()
                })
                .collect();
            let columns: Vec<String> = table
                .columns
                .iter()
                .map(|name| escape::for_terminal(name).into_owned())
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(c, name)| {
                    cells
                        .iter()
                        .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                        .chain([name.chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let numeric: Vec<bool> = (0..table.columns.len())
                .map(|c| {
                    table.rows.iter().all(|r| {
                        matches!(r.get(c), Some(Cell::Int(_) | Cell::Float(_) | Cell::Null))
                    })
                })
                .collect();
            let line = |out: &mut String, row: &[String]| {
                let mut text = String::new();
                for (c, value) in row.iter().enumerate() {
                    if c > 0 {
                        text.push_str("    ");
                    }
                    let width = widths[c];
                    if numeric[c] {
                        let _ = write!(text, "{value:>width$}");
                    } else {
                        let _ = write!(text, "{value:<width$}");
                    }
                }
                out.push_str(text.trim_end());
                out.push('\n');
            };
            line(&mut out, &columns);
            for row in &cells {
                line(&mut out, row);
            }
            if table.rows.is_empty() {
                out.push_str("(no data)\n");
            }
            if table.total_rows > table.rows.len() {
                let total = table.total_rows;
                let _ = writeln!(out, "({total} rows in all; the rest are summed in {OTHER})");
            }
        }
        if let Some(hidden) = self.hidden.filter(|h| h.groups > 0) {
            let _ = writeln!(
                out,
                "\n({} groups of fewer than {} installs are hidden)",
                hidden.groups, hidden.min_installs
            );
        }
        out
    }

    /// CSV: the tables one after another, each with its header row and a
    /// blank line between them.
    ///
    /// Text comes from clients, so it is neutralised for whoever opens the
    /// file: by OWASP's CSV-injection rule, a text cell (or header) that
    /// starts with `=`, `+`, `-`, `@`, tab, CR or NUL, which a spreadsheet
    /// would evaluate as a formula, gets a `'` in front; numeric cells are
    /// written as they are, so a count of `-3` stays a number. Control and
    /// bidi characters are escaped as in [`Report::to_text`], since CSV is
    /// often printed to a terminal. [`Report`]'s JSON keeps the exact text.
    ///
    /// ```
    /// use tally_report::{Cell, Report, Table};
    /// let report = Report {
    ///     report: "commands".into(),
    ///     tables: vec![Table {
    ///         name: "commands".into(),
    ///         columns: vec!["command".into(), "change".into()],
    ///         rows: vec![vec![Cell::Text("=HYPERLINK(\"http://x\")".into()), Cell::Int(-3)]],
    ///         total_rows: 1,
    ///     }],
    ///     hidden: None,
    /// };
    /// assert_eq!(report.to_csv(), "command,change\n\"'=HYPERLINK(\"\"http://x\"\")\",-3\n");
    /// ```
    pub fn to_csv(&self) -> String {
        let mut out = Vec::new();
        for (i, table) in self.tables.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            let mut writer = csv::Writer::from_writer(&mut out);
            let _ = writer.write_record(
                table
                    .columns
                    .iter()
                    .map(|name| escape::for_csv(name).into_owned()),
            );
            for row in &table.rows {
                let _ = writer.write_record(row.iter().map(Cell::csv_text));
            }
            let _ = writer.flush();
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(columns: &[&str], rows: Vec<Vec<Cell>>) -> Report {
        Report {
            report: "r".into(),
            tables: vec![Table {
                name: "t".into(),
                columns: columns.iter().map(|c| (*c).to_owned()).collect(),
                total_rows: rows.len(),
                rows,
            }],
            hidden: None,
        }
    }

    #[test]
    fn csv_quotes_client_text_that_looks_negative_but_not_numbers() {
        let report = report(
            &["version", "change", "share"],
            vec![vec![
                Cell::Text("-3".into()),
                Cell::Int(-3),
                Cell::Float(-0.5),
            ]],
        );
        assert_eq!(report.to_csv(), "version,change,share\n'-3,-3,-0.5\n");
    }

    #[test]
    fn a_limited_table_says_how_many_rows_there_are() {
        let mut limited = report(
            &["version", "runs"],
            vec![
                vec![Cell::Text("1.0".into()), Cell::Int(3)],
                vec![Cell::Text(OTHER.into()), Cell::Int(5)],
            ],
        );
        assert!(!limited.to_text().contains("in all"));
        limited.tables[0].total_rows = 12;
        assert!(
            limited
                .to_text()
                .ends_with("(other)       5\n(12 rows in all; the rest are summed in (other))\n"),
            "{}",
            limited.to_text()
        );
    }

    #[test]
    fn escaped_cells_keep_the_table_aligned() {
        let report = report(
            &["flag", "runs"],
            vec![
                vec![Cell::Text("--a\u{202e}".into()), Cell::Int(1)],
                vec![Cell::Text("--bb".into()), Cell::Int(22)],
            ],
        );
        assert_eq!(
            report.to_text(),
            "flag           runs\n--a\\u{202e}       1\n--bb             22\n"
        );
    }
}
