//! Reports over a small hand-built data set whose answers are worked out
//! by hand (in the comments), not by running the code under test: one
//! check per report, which [`report_tests!`](crate::report_tests) runs as
//! one test each against a source of reports over [`data`].

use std::collections::BTreeMap;

use tally_protocol::{ErrorInfo, Event, Outcome, StoredEvent};
use tally_report::{Cell, Query, Report, ReportName};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Answers a report over [`data`] (and whatever else its source holds of
/// other apps).
pub type Ask<'a> = &'a dyn Fn(&Query) -> Report;

/// The app of [`data`].
pub const APP: &str = "reports";

/// The runs of [`data`], one a line: install, version, OS, CI vendor and
/// agent (`-` for none), command, flags (`-` for none), exit code,
/// milliseconds, time.
const RUNS: &str = "
    A 1.0.0 linux   -              -           build  --verbose          0   100 2026-11-01T10:00:00Z
    A 1.0.0 linux   -              -           build  -                  0   200 2026-11-01T11:00:00Z
    B 1.0.0 macos   github-actions -           deploy --force,--region   1   300 2026-11-02T09:00:00Z
    B 1.1.0 macos   github-actions -           deploy --region           0   400 2026-11-03T09:00:00Z
    C 1.1.0 linux   -              claude-code build  --verbose,--legacy 101 500 2026-11-03T12:00:00Z
    D 1.1.0 windows -              -           build  --legacy           0   600 2026-11-08T18:00:00Z
";

/// The data set:
///
/// | # | install | version | os | env | command | flags | exit | ms | day |
/// |---|---|---|---|---|---|---|---|---|---|
/// | 1 | A | 1.0.0 | linux | human | build | --verbose | 0 | 100 | 11-01 (Sun) |
/// | 2 | A | 1.0.0 | linux | human | build | | 0 | 200 | 11-01 |
/// | 3 | B | 1.0.0 | macos | ci (github-actions) | deploy | --force --region | 1 (http.timeout) | 300 | 11-02 (Mon) |
/// | 4 | B | 1.1.0 | macos | ci | deploy | --region | 0 | 400 | 11-03 |
/// | 5 | C | 1.1.0 | linux | agent (claude-code) | build | --verbose --legacy | 101 (crash) | 500 | 11-03 |
/// | 6 | D | 1.1.0 | windows | human | build | --legacy | 0 | 600 | 11-08 (Sun) |
///
/// plus a custom event (`cache.hit`, `layer` = `disk`, `size_mb` = 3, a
/// free-text `note`, `tier` = `gold`) from A, which only `events` counts,
/// and
/// deps: git 2.43.0 on runs 1 and 2, git 2.44.0 on run 6.
pub fn data() -> Vec<StoredEvent> {
    let mut events: Vec<StoredEvent> = RUNS
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| run(i, line))
        .collect();
    let mut custom = events[0].clone();
    custom.event.id = Uuid::from_u128(0xb000_0000_0000_7000_8000_0000_0000_00ff);
    custom.event.name = Some("cache.hit".into());
    custom.event.properties = [
        ("layer".to_owned(), "disk".into()),
        ("size_mb".to_owned(), 3i64.into()),
        ("note".to_owned(), "free text, never counted".into()),
        ("tier".to_owned(), "gold".into()),
    ]
    .into();
    events.push(custom);
    events
}

/// Run `i` of [`RUNS`], from its line.
fn run(i: usize, line: &str) -> StoredEvent {
    let field: Vec<&str> = line.split_whitespace().collect();
    let given = |s: &str| (s != "-").then(|| s.to_owned());
    let install = Uuid::from_u128(
        0xa000_0000_0000_4000_8000_0000_0000_0000 | u128::from(field[0].as_bytes()[0]),
    );
    let exit_code: i32 = field[7].parse().expect("exit code");
    let (outcome, error) = match exit_code {
        0 => (Outcome::Success, None),
        101 => (
            Outcome::Crash,
            Some(("panic", "boom", Some("src/main.rs:1:1"))),
        ),
        _ => (Outcome::Failure, Some(("http.timeout", "timed out", None))),
    };
    let deps = match i {
        0 | 1 => [("git".to_owned(), "2.43.0".to_owned())].into(),
        5 => [("git".to_owned(), "2.44.0".to_owned())].into(),
        _ => BTreeMap::new(),
    };
    let at = OffsetDateTime::parse(field[9], &Rfc3339).expect("time");
    let (ci, agent) = (given(field[3]), given(field[4]));
    let event = Event {
        id: Uuid::from_u128(0xb000_0000_0000_7000_8000_0000_0000_0000 | i as u128),
        timestamp: at,
        app: APP.into(),
        app_version: field[1].into(),
        install_id: install,
        name: None,
        command: field[5].into(),
        flags: given(field[6]).map_or_else(Vec::new, |f| f.split(',').map(str::to_owned).collect()),
        exit_code,
        outcome: Some(outcome),
        duration_ms: field[8].parse().expect("duration"),
        os: field[2].into(),
        arch: "x86_64".into(),
        os_version: None,
        tty: Some(ci.is_none() && agent.is_none()),
        ci,
        agent,
        container: Some(false),
        wsl: None,
        error: error.map(|(kind, message, location)| ErrorInfo {
            kind: kind.into(),
            message: message.into(),
            location: location.map(str::to_owned),
        }),
        deps,
        properties: BTreeMap::new(),
        source: tally_protocol::Source::Sdk,
    };
    StoredEvent {
        client_timestamp: at,
        received_at: at,
        event,
    }
}

fn ask(ask: Ask<'_>, report: ReportName, params: &[(&str, &str)]) -> Report {
    let mut all: BTreeMap<String, String> = [("app".to_owned(), APP.to_owned())].into();
    for (k, v) in params {
        all.insert((*k).to_owned(), (*v).to_owned());
    }
    let query = Query::from_params(report, &all).expect("valid query");
    ask(&query)
}

fn t(s: &str) -> Cell {
    Cell::Text(s.into())
}

fn i(n: i64) -> Cell {
    Cell::Int(n)
}

fn f(x: f64) -> Cell {
    Cell::Float(x)
}

/// The rows of table `name`, keeping only `columns`.
fn rows(report: &Report, name: &str, columns: &[&str]) -> Vec<Vec<Cell>> {
    let table = report
        .table(name)
        .unwrap_or_else(|| panic!("{} has no table {name}", report.report));
    let index: Vec<usize> = columns
        .iter()
        .map(|c| {
            table
                .columns
                .iter()
                .position(|x| x == c)
                .unwrap_or_else(|| panic!("{name} has no column {c}: {:?}", table.columns))
        })
        .collect();
    table
        .rows
        .iter()
        .map(|r| index.iter().map(|&i| r[i].clone()).collect())
        .collect()
}

/// `commands`, unfiltered and with each filter. build: runs 1,2,5,6 by A,C,D;
/// 1,2,6 exit 0. deploy: 3,4 by B; 4 exits 0.
pub fn commands(s: Ask<'_>) {
    assert_eq!(
        rows(
            &ask(s, ReportName::Commands, &[]),
            "commands",
            &["command", "runs", "installs", "success_rate"]
        ),
        [
            vec![t("build"), i(4), i(3), f(0.75)],
            vec![t("deploy"), i(2), i(1), f(0.5)]
        ]
    );
    // Filters: CI is B's deploys; 1.1.0 is runs 4,5,6; linux is 1,2,5;
    // since 11-03 is 4,5,6; humans are 1,2,6.
    let commands = |params: &[(&str, &str)]| {
        rows(
            &ask(s, ReportName::Commands, params),
            "commands",
            &["command", "runs"],
        )
    };
    assert_eq!(commands(&[("env", "ci")]), [vec![t("deploy"), i(2)]]);
    assert_eq!(
        commands(&[("version", "1.1.0")]),
        [vec![t("build"), i(2)], vec![t("deploy"), i(1)]]
    );
    assert_eq!(commands(&[("os", "linux")]), [vec![t("build"), i(3)]]);
    assert_eq!(
        commands(&[("since", "2026-11-03")]),
        [vec![t("build"), i(2)], vec![t("deploy"), i(1)]]
    );
    assert_eq!(commands(&[("env", "human")]), [vec![t("build"), i(3)]]);
    assert_eq!(
        commands(&[("until", "2026-11-02")]),
        [vec![t("build"), i(2)]]
    );
}

/// `flags`: --legacy on runs 5 and 6, --verbose on 1 and 5, --region on 3
/// and 4, --force on 3.
pub fn flags(s: Ask<'_>) {
    assert_eq!(
        rows(
            &ask(s, ReportName::Flags, &[]),
            "flags",
            &["command", "flag", "runs", "installs"]
        ),
        [
            vec![t("build"), t("--legacy"), i(2), i(2)],
            vec![t("build"), t("--verbose"), i(2), i(2)],
            vec![t("deploy"), t("--region"), i(2), i(1)],
            vec![t("deploy"), t("--force"), i(1), i(1)],
        ]
    );
}

/// `versions`. 1.1.0: B, C, D (3 of 4 installs); 1.0.0: A, B.
pub fn versions(s: Ask<'_>) {
    let versions = ask(s, ReportName::Versions, &[]);
    assert_eq!(
        rows(
            &versions,
            "versions",
            &["version", "installs", "runs", "share"]
        ),
        [
            vec![t("1.1.0"), i(3), i(3), f(0.75)],
            vec![t("1.0.0"), i(2), i(3), f(0.5)]
        ]
    );
    assert_eq!(
        rows(
            &versions,
            "latest",
            &[
                "latest_version",
                "installs_on_latest",
                "installs",
                "share_on_latest"
            ]
        ),
        [vec![t("1.1.0"), i(3), i(4), f(0.75)]]
    );
    assert_eq!(
        rows(&versions, "adoption", &["day", "version", "installs"]),
        [
            vec![t("2026-11-01"), t("1.0.0"), i(1)],
            vec![t("2026-11-02"), t("1.0.0"), i(1)],
            vec![t("2026-11-03"), t("1.1.0"), i(2)],
            vec![t("2026-11-08"), t("1.1.0"), i(1)],
        ]
    );
}

/// `platforms`: linux is A and C (runs 1, 2, 5), macos B, windows D.
pub fn platforms(s: Ask<'_>) {
    assert_eq!(
        rows(
            &ask(s, ReportName::Platforms, &[]),
            "os",
            &["os", "installs", "runs"]
        ),
        [
            vec![t("linux"), i(2), i(3)],
            vec![t("macos"), i(1), i(2)],
            vec![t("windows"), i(1), i(1)]
        ]
    );
}

/// `environments`: humans A and D (runs 1, 2, 6), CI B, the agent C.
pub fn environments(s: Ask<'_>) {
    assert_eq!(
        rows(
            &ask(s, ReportName::Environments, &[]),
            "env",
            &["env", "installs", "runs"]
        ),
        [
            vec![t("human"), i(2), i(3)],
            vec![t("ci"), i(1), i(2)],
            vec![t("agent"), i(1), i(1)]
        ]
    );
}

/// `errors`: run 3's timeout (no location) and run 5's panic; outcomes of
/// all six runs.
pub fn errors(s: Ask<'_>) {
    let errors = ask(s, ReportName::Errors, &[]);
    assert_eq!(
        rows(
            &errors,
            "errors",
            &[
                "kind",
                "location",
                "runs",
                "installs",
                "versions",
                "first_seen"
            ]
        ),
        [
            vec![
                t("http.timeout"),
                t(""),
                i(1),
                i(1),
                t("1.0.0"),
                t("2026-11-02T09:00:00Z")
            ],
            vec![
                t("panic"),
                t("src/main.rs:1:1"),
                i(1),
                i(1),
                t("1.1.0"),
                t("2026-11-03T12:00:00Z")
            ],
        ]
    );
    // B's timeout came from deploy, C's crash from build.
    assert_eq!(
        rows(
            &errors,
            "commands",
            &["kind", "command", "runs", "installs"]
        ),
        [
            vec![t("http.timeout"), t("deploy"), i(1), i(1)],
            vec![t("panic"), t("build"), i(1), i(1)]
        ]
    );
    assert_eq!(
        rows(&errors, "outcomes", &["outcome", "runs"]),
        [
            vec![t("success"), i(4)],
            vec![t("crash"), i(1)],
            vec![t("failure"), i(1)]
        ]
    );
}

/// `durations`: build 1.0.0 took 100 and 200 ms, the lower is the discrete
/// median.
pub fn durations(s: Ask<'_>) {
    assert_eq!(
        rows(
            &ask(s, ReportName::Durations, &[]),
            "durations",
            &["command", "version", "runs", "p50_ms", "p99_ms"]
        ),
        [
            vec![t("build"), t("1.0.0"), i(2), i(100), i(200)],
            vec![t("build"), t("1.1.0"), i(2), i(500), i(600)],
            vec![t("deploy"), t("1.0.0"), i(1), i(300), i(300)],
            vec![t("deploy"), t("1.1.0"), i(1), i(400), i(400)],
        ]
    );
}

/// `installs`: new, active and retained installs.
pub fn installs(s: Ask<'_>) {
    // Weeks start on Monday: A's first run (Sun 11-01) is in the week of
    // 10-26; B, C and D first appear in the week of 11-02.
    let installs = ask(s, ReportName::Installs, &[]);
    assert_eq!(
        rows(&installs, "new", &["week", "new_installs"]),
        [vec![t("2026-10-26"), i(1)], vec![t("2026-11-02"), i(3)]]
    );
    // Active on each day with runs: that day, the 7 and the 30 days up to it.
    // 11-03: B, C that day; A, B, C within 7 days. 11-08: D that day; B, C,
    // D within 7 (11-01 is 7 days back, outside); all four within 30.
    assert_eq!(
        rows(&installs, "active", &["day", "daily", "weekly", "monthly"]),
        [
            vec![t("2026-11-01"), i(1), i(1), i(1)],
            vec![t("2026-11-02"), i(1), i(2), i(2)],
            vec![t("2026-11-03"), i(2), i(3), i(3)],
            vec![t("2026-11-08"), i(1), i(3), i(4)],
        ]
    );
    // Cohort 11-02 (B, C, D): all three active in week 0, none later.
    assert!(
        rows(&installs, "retention", &["cohort", "week", "installs"]).contains(&vec![
            t("2026-11-02"),
            i(0),
            i(3)
        ])
    );
}

/// `deprecation` of a flag and of a command.
pub fn deprecation(s: Ask<'_>) {
    // --legacy in the 30 days before 11-10: runs 5 and 6, installs C and D,
    // of 4 active installs.
    let deprecation = ask(
        s,
        ReportName::Deprecation,
        &[("flag", "--legacy"), ("until", "2026-11-10")],
    );
    assert_eq!(
        rows(
            &deprecation,
            "usage",
            &["runs", "installs", "active_installs", "share", "last_seen"]
        ),
        [vec![i(2), i(2), i(4), f(0.5), t("2026-11-08T18:00:00Z")]]
    );
    assert_eq!(
        rows(&deprecation, "by_version", &["version", "runs", "installs"]),
        [vec![t("1.1.0"), i(2), i(2)]]
    );
    let by_command = ask(
        s,
        ReportName::Deprecation,
        &[("command", "deploy"), ("until", "2026-11-10")],
    );
    assert_eq!(
        rows(&by_command, "usage", &["runs", "installs"]),
        [vec![i(2), i(1)]]
    );
}

/// `health`. 1.1.0: runs 4, 6 succeed, 5 crashes; 1.0.0: runs 1, 2
/// succeed, 3 fails.
pub fn health(s: Ask<'_>) {
    assert_eq!(
        rows(
            &ask(s, ReportName::Health, &[]),
            "versions",
            &[
                "version",
                "runs",
                "success_rate",
                "previous_version",
                "crash_rate",
                "regression"
            ]
        ),
        [
            vec![
                t("1.1.0"),
                i(3),
                f(0.6667),
                t("1.0.0"),
                f(0.3333),
                Cell::Bool(false)
            ],
            vec![
                t("1.0.0"),
                i(3),
                f(0.6667),
                Cell::Null,
                f(0.0),
                Cell::Bool(false)
            ],
        ]
    );
}

/// `deps`: git 2.43.0 on A's two runs, 2.44.0 on D's.
pub fn deps(s: Ask<'_>) {
    assert_eq!(
        rows(
            &ask(s, ReportName::Deps, &[]),
            "deps",
            &["tool", "version", "installs", "runs"]
        ),
        [
            vec![t("git"), t("2.44.0"), i(1), i(1)],
            vec![t("git"), t("2.43.0"), i(1), i(2)]
        ]
    );
}

/// The rows and total of table `name` with `limit`, keeping `columns`.
fn limited(
    s: Ask<'_>,
    report: ReportName,
    name: &str,
    limit: &str,
    columns: &[&str],
) -> (Vec<Vec<Cell>>, usize) {
    let report = ask(s, report, &[("limit", limit)]);
    let total = report.table(name).map_or(0, |t| t.total_rows);
    (rows(&report, name, columns), total)
}

/// `events`: A's one `cache.hit`, on 11-01 with 1.0.0; of its properties
/// `layer` is shown (the schema's choice), `size_mb`, a number, never.
pub fn events(s: Ask<'_>) {
    let mut all: BTreeMap<String, String> = [("app".to_owned(), APP.to_owned())].into();
    all.insert("since".into(), "2026-10-01".into());
    let mut query = Query::from_params(ReportName::Events, &all).expect("valid query");
    let plain = s(&query);
    assert_eq!(
        rows(&plain, "events", &["event", "installs", "runs"]),
        [vec![t("cache.hit"), i(1), i(1)]]
    );
    assert_eq!(
        rows(&plain, "versions", &["event", "version", "runs"]),
        [vec![t("cache.hit"), t("1.0.0"), i(1)]]
    );
    assert_eq!(
        rows(&plain, "trend", &["day", "event", "runs"]),
        [vec![t("2026-11-01"), t("cache.hit"), i(1)]]
    );
    assert!(
        plain.table("properties").is_none(),
        "nothing shown unless declared"
    );
    // `tier` is not shown, `size_mb` is a number, `note` is free text.
    query.shown_properties = vec![
        ("cache.hit".into(), "layer".into()),
        ("cache.hit".into(), "size_mb".into()),
        ("cache.hit".into(), "note".into()),
    ];
    assert_eq!(
        rows(
            &s(&query),
            "properties",
            &["event", "property", "value", "installs", "runs"]
        ),
        [vec![t("cache.hit"), t("layer"), t("disk"), i(1), i(1)]]
    );
}

/// Every report with groups of one install hidden (`min_installs` 2): no
/// group of fewer appears in any table, and each report says how many it
/// left out. By hand: linux (A, C) is the one OS kept; of the flags,
/// `--verbose` (A, C) and `--legacy` (C, D).
pub fn small_groups(s: Ask<'_>) {
    let hiding = |report: ReportName, params: &[(&str, &str)]| {
        let mut all: BTreeMap<String, String> = [("app".to_owned(), APP.to_owned())].into();
        all.extend(
            params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut query = Query::from_params(report, &all).expect("valid query");
        query.min_installs = Some(2);
        s(&query)
    };
    let platforms = hiding(ReportName::Platforms, &[]);
    assert_eq!(
        rows(&platforms, "os", &["os", "installs", "runs"]),
        [vec![t("linux"), i(2), i(3)]]
    );
    let hidden = platforms.hidden.expect("hidden");
    assert_eq!(hidden.min_installs, 2);
    assert!(hidden.groups >= 2, "{hidden:?}");
    assert!(
        platforms
            .to_text()
            .contains("groups of fewer than 2 installs are hidden")
    );
    for shown in [platforms.to_text(), platforms.to_csv()] {
        assert!(
            !shown.contains("macos") && !shown.contains("windows"),
            "{shown}"
        );
    }
    assert_eq!(
        rows(
            &hiding(ReportName::Flags, &[]),
            "flags",
            &["flag", "installs"]
        ),
        [vec![t("--legacy"), i(2)], vec![t("--verbose"), i(2)]]
    );
    for report in ReportName::ALL {
        let answer = hiding(report, &[("flag", "--legacy")]);
        for table in &answer.tables {
            for (c, column) in table.columns.iter().enumerate() {
                if !column.contains("installs")
                    && !["daily", "weekly", "monthly"].contains(&column.as_str())
                {
                    continue;
                }
                for row in &table.rows {
                    assert!(
                        !matches!(row[c], Cell::Int(1)),
                        "{report:?}/{}: a group of one install: {row:?}",
                        table.name
                    );
                }
            }
        }
    }
}

/// Each report with a `limit`: the rows that count most, the rest summed
/// in one `(other)` row (empty installs, as those of several rows do not
/// add up), and how many rows there are in all.
pub fn limits(s: Ask<'_>) {
    let other = || t(tally_report::OTHER);
    // OS: linux (2 installs, 3 runs) is kept; macos and windows are 3 runs.
    assert_eq!(
        limited(
            s,
            ReportName::Platforms,
            "os",
            "1",
            &["os", "installs", "runs"]
        ),
        (
            vec![
                vec![t("linux"), i(2), i(3)],
                vec![other(), Cell::Null, i(3)]
            ],
            3
        )
    );
    // Humans (runs 1, 2, 6) are kept; CI (3, 4) and the agent (5) folded.
    assert_eq!(
        limited(
            s,
            ReportName::Environments,
            "env",
            "1",
            &["env", "installs", "runs"]
        ),
        (
            vec![
                vec![t("human"), i(2), i(3)],
                vec![other(), Cell::Null, i(3)]
            ],
            3
        )
    );
    // Flags, two runs each but --force: the first two in the table's order.
    assert_eq!(
        limited(
            s,
            ReportName::Flags,
            "flags",
            "2",
            &["command", "flag", "runs", "installs"]
        ),
        (
            vec![
                vec![t("build"), t("--legacy"), i(2), i(2)],
                vec![t("build"), t("--verbose"), i(2), i(2)],
                vec![other(), other(), i(3), Cell::Null],
            ],
            4
        )
    );
    // Runs 4 of success, then the crash (5) and the failure (3) together.
    assert_eq!(
        limited(
            s,
            ReportName::Errors,
            "outcomes",
            "1",
            &["outcome", "runs", "installs"]
        ),
        (
            vec![
                vec![t("success"), i(4), i(3)],
                vec![other(), i(2), Cell::Null]
            ],
            3
        )
    );
    // The deploys (300 and 400 ms) are folded: percentiles of both.
    assert_eq!(
        limited(
            s,
            ReportName::Durations,
            "durations",
            "2",
            &["command", "version", "runs", "p50_ms", "p99_ms"]
        ),
        (
            vec![
                vec![t("build"), t("1.0.0"), i(2), i(100), i(200)],
                vec![t("build"), t("1.1.0"), i(2), i(500), i(600)],
                vec![other(), other(), i(2), i(300), i(400)],
            ],
            4
        )
    );
    // Health per command: deploy's two versions (run 4 succeeded, run 3
    // failed) make the (other) row, with no previous version to compare.
    assert_eq!(
        limited(
            s,
            ReportName::Health,
            "commands",
            "2",
            &[
                "command",
                "version",
                "runs",
                "success_rate",
                "crash_rate",
                "previous_version",
                "regression"
            ]
        ),
        (
            vec![
                vec![
                    t("build"),
                    t("1.1.0"),
                    i(2),
                    f(0.5),
                    f(0.5),
                    t("1.0.0"),
                    Cell::Bool(false)
                ],
                vec![
                    t("build"),
                    t("1.0.0"),
                    i(2),
                    f(1.0),
                    f(0.0),
                    Cell::Null,
                    Cell::Bool(false)
                ],
                vec![
                    other(),
                    other(),
                    i(2),
                    f(0.5),
                    f(0.0),
                    Cell::Null,
                    Cell::Null
                ],
            ],
            4
        )
    );
    // One row beyond the limit is listed as itself: folding it would
    // hide its name for nothing.
    assert_eq!(
        limited(
            s,
            ReportName::Commands,
            "commands",
            "1",
            &["command", "runs"]
        ),
        (vec![vec![t("build"), i(4)], vec![t("deploy"), i(2)]], 2)
    );
    // Tables of days are not limited.
    let (active, total) = limited(s, ReportName::Installs, "active", "1", &["day"]);
    assert_eq!((active.len(), total), (4, 4));
}

/// Every report over [`varied`](crate::events::varied) data, unfiltered,
/// limited to two rows a table, and with filters that cut days, pick
/// versions, OSes and environments.
pub fn varied_queries() -> Vec<Query> {
    let filters: [&[(&str, &str)]; 11] = [
        &[],
        &[("limit", "2")],
        &[("since", "2026-10-25"), ("until", "2026-11-03")],
        &[
            ("since", "2026-10-25T13:30:00Z"),
            ("until", "2026-11-03T08:00:00Z"),
        ],
        &[
            ("since", "2026-10-28T01:00:00Z"),
            ("until", "2026-10-28T05:00:00Z"),
        ],
        &[("version", "1.1.0"), ("os", "macos")],
        &[("env", "ci"), ("since", "2026-10-30")],
        &[("env", "agent")],
        // Whole days of a gateway's requests (durations included), and
        // the SDKs' runs alone.
        &[
            ("source", "gateway"),
            ("since", "2026-10-25"),
            ("until", "2026-11-03"),
        ],
        &[("source", "sdk")],
        // A gateway's requests over days the range cuts.
        &[
            ("source", "gateway"),
            ("since", "2026-10-25T13:30:00Z"),
            ("until", "2026-11-03T08:00:00Z"),
        ],
    ];
    let mut queries = Vec::new();
    for report in ReportName::ALL {
        for filter in filters {
            let mut params: BTreeMap<String, String> = filter
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            params.insert("app".into(), "varied".into());
            if report == ReportName::Deprecation {
                params.insert("flag".into(), "--legacy".into());
                params.insert("until".into(), "2026-11-08".into());
            }
            let mut query = Query::from_params(report, &params).expect("valid query");
            query.shown_properties = vec![
                ("cache.hit".into(), "layer".into()),
                ("cache.miss".into(), "warm".into()),
            ];
            // With small groups hidden too: what is left out is the same
            // on every store.
            let mut hiding = query.clone();
            hiding.min_installs = Some(12);
            queries.push(query);
            queries.push(hiding);
        }
    }
    queries
}

/// Each report of [`varied_queries`] that `ask` answers over `events` is
/// the answer of rolling the events up on the spot
/// ([`MemorySource`](tally_rollup::MemorySource)); `phase` names the state
/// of what answers in failures.
pub fn answers_match_events(ask: Ask<'_>, events: &[StoredEvent], phase: &str) {
    let numbered = tally_rollup::MemorySource::number(events.iter().map(|e| e.event.clone()));
    for query in varied_queries() {
        let answer = ask(&query);
        let source = tally_rollup::MemorySource::new(&numbered);
        let expected = tally_rollup::answer(&source, &query).expect("in memory");
        assert_eq!(answer, expected, "{phase}: {query:?}");
        // A gateway records no custom events.
        let none = query.report == ReportName::Events
            && query.filter.source == Some(tally_report::Source::Gateway);
        // Hiding small groups, a report that left everything out says so.
        let hid = answer.hidden.is_some_and(|h| h.groups > 0);
        assert!(
            none || hid || answer.tables.iter().any(|t| !t.rows.is_empty()),
            "{phase}: {query:?} is empty, so it proves nothing"
        );
    }
}

/// One test per report, each asking the reports `$ask` answers (an
/// expression made anew for each test, giving a `Fn(&Query) -> Report`
/// over [`data`]).
#[macro_export]
macro_rules! report_tests {
    ($ask:expr) => {
        $crate::report_tests!(@each $ask; versions platforms commands flags errors durations
            installs environments deprecation health deps limits small_groups events);
    };
    (@each $ask:expr; $($report:ident)*) => {
        $(
            #[test]
            fn $report() {
                let ask = $ask;
                $crate::reports::$report(&ask);
            }
        )*
    };
}
