//! `tally import-logs` on real-looking access logs: each request a run of
//! its CLI's feature, malformed lines counted with their line numbers, and
//! a second import of the same lines (here gzipped) storing nothing twice.

use std::io::Write;

use time::OffsetDateTime;
use time::macros::format_description;

use crate::support::{add_app, data_dir, export, tally};

/// An hour ago, in whole seconds (as access logs write times).
fn an_hour_ago() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("time")
        - time::Duration::hours(1)
}

/// `tally import-logs` of the nginx `log` into app mycli of `data`, with
/// `extra` arguments, running, its stdout piped.
fn spawn_import(
    data: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
) -> std::process::Child {
    std::process::Command::new(crate::support::TALLY)
        .args(["import-logs", "--app", "mycli", "--format", "nginx"])
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg(log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// `tally import-logs` of nginx `files` into app mycli of `data`.
fn import_nginx(data: &std::path::Path, files: &[&std::path::Path]) -> (bool, String, String) {
    import_nginx_to(&["--data", data.to_str().expect("utf-8")], files)
}

/// `tally import-logs` of nginx `files` into app mycli of the store that
/// `target` names.
fn import_nginx_to(target: &[&str], files: &[&std::path::Path]) -> (bool, String, String) {
    let mut args = vec!["import-logs", "--app", "mycli", "--format", "nginx"];
    args.extend(target);
    args.extend(files.iter().map(|f| f.to_str().expect("utf-8")));
    tally(&args)
}

/// An nginx combined line at `t`, with the request time.
fn nginx(t: OffsetDateTime, request: &str, status: u16, ua: &str) -> String {
    let at = t
        .format(format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .expect("format");
    format!(r#"203.0.113.9 - - [{at}] "{request} HTTP/1.1" {status} 512 "-" "{ua}" 0.042"#)
}

#[test]
fn access_logs_import_as_runs_once_whatever_is_imported_again() {
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8");
    add_app(dir.path(), "mycli");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "query_params = [\"dry\"]\n[routes]\n\"GET /v1/projects/{id}\" = \"projects.get\"\n\"POST /v1/deploys\" = \"deploys.create\"\n",
    )
    .expect("config");
    let t = an_hour_ago();
    let ua = "mycli/1.4.2 (linux; x86_64)";
    let same = nginx(t, "GET /v1/projects/42", 200, ua);
    let lines = [
        same.clone(),
        // The same request twice in one second: two runs.
        same,
        nginx(
            t,
            "POST /v1/deploys?dry=1&token=hunter2",
            201,
            "mycli/1.4.1 (darwin; arm64; agent=claude-code)",
        ),
        nginx(t, "POST /v1/deploys", 500, ua),
        "not a log line".to_owned(),
        nginx(t, "GET /v1/users/ada@example.com", 404, "curl/8.5.0"),
        r#"203.0.113.9 - - [broken] "GET / HTTP/1.1" 200 1"#.to_owned(),
    ];
    let log = dir.path().join("access.log");
    std::fs::write(&log, lines.join("\n") + "\n").expect("log");
    let import = |file: &std::path::Path| {
        tally(&[
            "import-logs",
            "--app",
            "mycli",
            "--format",
            "nginx",
            "--config",
            config.to_str().expect("utf-8"),
            "--data",
            data,
            file.to_str().expect("utf-8"),
        ])
    };
    let (ok, stdout, stderr) = import(&log);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("7 lines"), "{stdout}");
    assert!(
        stdout.contains("5 requests imported, 0 imported before, 2 malformed lines"),
        "{stdout}"
    );
    assert!(stdout.contains("access.log:5: "), "{stdout}");
    assert!(
        stdout.contains("access.log:7: the time is not like"),
        "{stdout}"
    );

    let stored = export(dir.path(), "mycli");
    assert_eq!(stored.len(), 5);
    let text = serde_json::to_string(&stored).expect("json");
    for private in ["203.0.113.9", "hunter2", "ada@example.com"] {
        assert!(!text.contains(private), "{private} stored: {text}");
    }
    let commands: Vec<&str> = stored
        .iter()
        .map(|e| e["command"].as_str().expect("command"))
        .collect();
    assert_eq!(commands.iter().filter(|c| **c == "projects.get").count(), 2);
    assert!(commands.contains(&"GET /v1/users/{id}"), "{commands:?}");
    let deploy = stored
        .iter()
        .find(|e| e["agent"] == "claude-code")
        .expect("the agent's run");
    assert_eq!(
        (deploy["os"].as_str(), deploy["app_version"].as_str()),
        (Some("macos"), Some("1.4.1"))
    );
    assert_eq!(deploy["properties"]["query.dry"], "1");

    // Again, gzipped: nothing new.
    let gz = dir.path().join("access.log.1.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(&std::fs::read(&log).expect("log"))
        .expect("gzip");
    std::fs::write(&gz, encoder.finish().expect("gzip")).expect("write");
    let (ok, stdout, stderr) = import(&gz);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("0 requests imported, 5 imported before"),
        "{stdout}"
    );
    assert_eq!(export(dir.path(), "mycli").len(), 5);

    let (ok, report, stderr) = tally(&[
        "report", "commands", "--app", "mycli", "--data", data, "--format", "json",
    ]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    let rows = report["tables"][0]["rows"].as_array().expect("rows");
    assert!(
        rows.iter().any(|r| r[0] == "projects.get" && r[1] == 2),
        "{report}"
    );
}

#[test]
fn an_unknown_app_or_preset_is_one_line_on_stderr() {
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8");
    add_app(dir.path(), "mycli");
    let log = dir.path().join("a.log");
    std::fs::write(&log, "").expect("log");
    let log = log.to_str().expect("utf-8");
    for wrong in [
        &["--app", "nope", "--format", "nginx"][..],
        &["--app", "mycli", "--format", "json", "--preset", "nope"],
        &["--app", "mycli", "--format", "json"],
    ] {
        let mut args = vec!["import-logs", "--data", data, log];
        args.extend_from_slice(wrong);
        let (ok, _, stderr) = tally(&args);
        assert!(!ok, "{args:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// `--follow` across a rename and a copy-and-truncate, with a line written
/// in two halves: every line imported, none twice.
#[test]
fn following_a_log_through_its_rotations_loses_nothing_and_repeats_nothing() {
    use std::io::BufRead;
    let dir = data_dir();
    add_app(dir.path(), "mycli");
    let log = dir.path().join("access.log");
    let t = an_hour_ago();
    let line = |n: u32| {
        nginx(
            t,
            &format!("GET /v1/projects/{n}"),
            200,
            "mycli/1.4.2 (linux; x86_64)",
        ) + "\n"
    };
    let append = |path: &std::path::Path, text: &str| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("append");
    };
    append(&log, &(line(1) + &line(2) + &line(3)));
    let mut child = spawn_import(dir.path(), &log, &["--follow"]);
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for said in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(said);
        }
    });
    let wait_for = |n: u32| loop {
        let said = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the follower says");
        if said.contains(&format!(": {n} requests imported")) {
            return said;
        }
    };
    wait_for(3);
    // A line written in two halves is read once whole.
    let fourth = line(4);
    append(&log, &fourth[..20]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    append(&log, &(fourth[20..].to_owned() + &line(5)));
    wait_for(5);
    // Rotated by a rename; the writer still writes to the old file once.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    append(&rotated, &line(6));
    append(&log, &(line(7) + &line(8)));
    wait_for(8);
    // Copied and truncated.
    std::fs::write(&log, line(9)).expect("truncate");
    wait_for(9);
    // Truncated and written again past where the reading was: read anew
    // from the start, not from the middle of a line.
    std::fs::write(&log, line(10) + &line(11) + &line(12)).expect("truncate");
    wait_for(12);
    // A line the server never finished before the file was rotated.
    append(&log, &line(13)[..30]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::rename(&log, dir.path().join("access.log.2")).expect("rename");
    append(&log, &line(14));
    let said = wait_for(13);
    assert!(said.ends_with(", 1 malformed lines"), "{said}");
    let _ = child.kill();
    let _ = child.wait();
    let stored = export(dir.path(), "mycli");
    let mut commands: Vec<String> = stored
        .iter()
        .map(|e| e["command"].as_str().expect("command").to_owned())
        .collect();
    commands.sort();
    assert_eq!(commands.len(), 13, "{commands:?}");
    commands.dedup();
    assert_eq!(commands, ["GET /v1/projects/{id}"]);
    let ids: std::collections::HashSet<&str> = stored
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 13);

    // A compressed file is not written to as it is read.
    let gz = dir.path().join("old.log.gz");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(line(1).as_bytes()).expect("gzip");
    std::fs::write(&gz, gzip.finish().expect("gzip")).expect("write");
    let (ok, _, stderr) = tally(&[
        "import-logs",
        "--follow",
        "--app",
        "mycli",
        "--format",
        "nginx",
        "--data",
        dir.path().to_str().expect("utf-8"),
        gz.to_str().expect("utf-8"),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("gzip-compressed: import it without --follow"),
        "{stderr}"
    );
}

/// A client choosing a new path (or User-Agent) for every request makes
/// no more than 1,000 distinct commands (or versions); the rest are
/// `(other)`.
#[test]
fn paths_and_user_agents_chosen_by_clients_are_capped() {
    let dir = data_dir();
    add_app(dir.path(), "mycli");
    let t = an_hour_ago();
    let word = |mut n: u32| {
        let mut w = String::new();
        for _ in 0..4 {
            w.push((b'a' + (n % 26) as u8) as char);
            n /= 26;
        }
        w
    };
    let lines: String = (0..1005)
        .map(|n| {
            nginx(
                t,
                &format!("GET /v1/{}", word(n)),
                200,
                &format!("mycli/1.{}", word(n)),
            ) + "\n"
        })
        .collect();
    let log = dir.path().join("access.log");
    std::fs::write(&log, lines).expect("log");
    let (ok, _, stderr) = import_nginx(dir.path(), &[&log]);
    assert!(ok, "{stderr}");
    let stored = export(dir.path(), "mycli");
    assert_eq!(stored.len(), 1005);
    for field in ["command", "app_version"] {
        let distinct: std::collections::HashSet<&str> = stored
            .iter()
            .map(|e| e[field].as_str().expect("text"))
            .collect();
        assert_eq!(distinct.len(), 1001, "{field}");
        assert!(distinct.contains("(other)"), "{field}");
    }
}

/// A line too long, a time no store believes, and a file cut short are
/// each counted, and cost nothing else.
#[test]
fn what_cannot_be_read_is_counted_and_the_rest_imported() {
    let dir = data_dir();
    add_app(dir.path(), "mycli");
    let t = an_hour_ago();
    let ua = "mycli/1.4.2 (linux; x86_64)";
    let long = nginx(t, &format!("GET /{}", "x".repeat(70 * 1024)), 200, ua);
    let ancient =
        r#"1.2.3.4 - - [01/Jan/1000:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "mycli/1.0""#;
    let text = [
        nginx(t, "GET /a", 200, ua),
        long,
        ancient.to_owned(),
        nginx(t, "GET /b", 200, ua),
    ]
    .join("\n")
        + "\n";
    let log = dir.path().join("access.log");
    std::fs::write(&log, &text).expect("log");
    // The same lines gzipped, and cut off halfway.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let cut = dir.path().join("access.log.1.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).expect("cut");
    let (ok, stdout, stderr) = import_nginx(dir.path(), &[&log, &cut]);
    assert!(!ok, "a file cut short is an error: {stdout}");
    assert!(stderr.contains("access.log.1.gz"), "{stderr}");
    assert!(
        stdout.contains("access.log:2: longer than 64 KiB"),
        "{stdout}"
    );
    assert!(stdout.contains("access.log:3: timestamp"), "{stdout}");
    assert_eq!(export(dir.path(), "mycli").len(), 2);
}

/// Regression: the count of a line's repeats started again at every new
/// second, so a request logged a little out of order was taken for one
/// stored before and dropped. A rotated file overlapping the next holds the
/// same requests: its lines count once.
#[test]
fn repeats_out_of_order_count_and_an_overlap_does_not() {
    let dir = data_dir();
    add_app(dir.path(), "mycli");
    let t = an_hour_ago();
    let ua = "mycli/1.4.2 (linux; x86_64)";
    let (l, m) = (
        nginx(t, "GET /v1/a", 200, ua),
        nginx(t + time::Duration::seconds(1), "GET /v1/b", 200, ua),
    );
    let (first, second) = (
        dir.path().join("access.log.1"),
        dir.path().join("access.log"),
    );
    std::fs::write(&first, format!("{l}\n{m}\n{l}\n")).expect("log");
    std::fs::write(&second, format!("{l}\n")).expect("log");
    let (ok, stdout, stderr) = import_nginx(dir.path(), &[&first, &second]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("3 requests imported, 1 imported before"),
        "{stdout}"
    );
    // Again: every line stored before.
    let (ok, stdout, _) = import_nginx(dir.path(), &[&first, &second]);
    assert!(
        ok && stdout.contains("0 requests imported, 4 imported before"),
        "{stdout}"
    );
}

/// The commands of `tally report commands` of the store `target` names
/// for `source` (sdk, gateway or all), with their runs.
fn commands_seen_by(target: &[&str], source: &str) -> Vec<(String, u64)> {
    let mut args = vec![
        "report", "commands", "--app", "mycli", "--format", "json", "--source", source,
    ];
    args.extend(target);
    let (ok, report, stderr) = tally(&args);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    let mut rows: Vec<(String, u64)> = report["tables"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[0].as_str().expect("command").to_owned(),
                r[1].as_u64().expect("runs"),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn an_import_while_the_server_runs_goes_through_it_and_reports_tell_the_sources_apart() {
    let dir = data_dir();
    let data = dir.path().to_str().expect("utf-8");
    let key = add_app(dir.path(), "mycli");
    let server = crate::support::TestServer::start(dir.path());
    let mut run = tally_testkit::events::fresh("mycli");
    run.command = "deploy".into();
    let (status, answer) = server.send(&key, std::slice::from_ref(&run));
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );

    // An ingest key cannot pass its runs off as a gateway's requests.
    let mut forged = tally_testkit::events::fresh("mycli");
    forged.source = tally_protocol::Source::Gateway;
    let (status, answer) = server.send(&key, &[forged]);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["rejected"][0]["field"], "source", "{answer}");

    // The data dir is the server's: the import finds it and sends to it.
    imported_twice_and_told_apart(&dir.path().join("access.log"), &["--data", data]);

    let (status, text) = server.get("/api/v1/export?app=mycli", Some(&server.admin_token()));
    assert_eq!(status, 200);
    let sources: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .map(|e| e["source"].as_str().unwrap_or("sdk").to_owned())
        .collect();
    assert_eq!(sources.iter().filter(|s| *s == "gateway").count(), 3);
    assert_eq!(sources.len(), 4);
}

/// Imports three requests into the store `target` names, which holds one
/// SDK run of `deploy`, twice (the second storing nothing), and checks
/// that the commands report counts each side under its source.
fn imported_twice_and_told_apart(log: &std::path::Path, target: &[&str]) {
    let t = an_hour_ago();
    let ua = "mycli/1.4.2 (linux; x86_64)";
    let lines = [
        nginx(t, "GET /v1/projects/1", 200, ua),
        nginx(t, "GET /v1/projects/2", 200, ua),
        nginx(t, "POST /v1/deploys", 500, ua),
    ];
    std::fs::write(log, lines.join("\n") + "\n").expect("log");
    let (ok, stdout, stderr) = import_nginx_to(target, &[log]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("3 requests imported, 0 imported before"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = import_nginx_to(target, &[log]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("0 requests imported, 3 imported before"),
        "{stdout}"
    );

    let sdk = vec![("deploy".to_owned(), 1)];
    let gateway = vec![
        ("GET /v1/projects/{id}".to_owned(), 2),
        ("POST /v1/deploys".to_owned(), 1),
    ];
    assert_eq!(commands_seen_by(target, "sdk"), sdk);
    assert_eq!(commands_seen_by(target, "gateway"), gateway);
    let mut both = [sdk, gateway].concat();
    both.sort();
    assert_eq!(commands_seen_by(target, "all"), both);
}

#[test]
fn an_import_into_clickhouse_counts_beside_a_running_collectors_runs() {
    let clickhouse = tally_testkit::clickhouse::LocalServer::start();
    let store = clickhouse.store_url("imports");
    let (ok, stdout, stderr) = tally(&["app", "add", "mycli", "--store", &store]);
    assert!(ok, "{stderr}");
    let key = stdout.trim().to_owned();
    let dir = data_dir();
    let server = crate::support::TestServer::start_with(dir.path(), &["--store", &store]);
    let mut run = tally_testkit::events::fresh("mycli");
    run.command = "deploy".into();
    let (status, answer) = server.send(&key, &[run]);
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    // ClickHouse takes the import's inserts beside the collector's.
    imported_twice_and_told_apart(&dir.path().join("access.log"), &["--store", &store]);
}

/// The most memory (VmHWM, in bytes) the process `child` held before it
/// exited, looked up every 10 ms.
fn peak_memory(child: &mut std::process::Child) -> u64 {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().expect("wait").is_none() {
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        let kb = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        peak = peak.max(kb.unwrap_or(0) * 1024);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    peak
}

#[test]
fn a_gigabyte_is_read_in_bounded_memory() {
    let dir = data_dir();
    add_app(dir.path(), "mycli");
    // A gigabyte with no newline in it (a sparse file: it takes no room),
    // then a line: the import streams past the one endless line.
    let log = dir.path().join("huge.log");
    let file = std::fs::File::create(&log).expect("create");
    file.set_len(1 << 30).expect("sparse gigabyte");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open");
    let line = nginx(an_hour_ago(), "GET /v1/whoami", 200, "mycli/1.0.0");
    writeln!(file, "\n{line}").expect("write");
    drop(file);
    let mut child = spawn_import(dir.path(), &log, &[]);
    let peak = peak_memory(&mut child);
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("1 requests imported, 0 imported before, 1 malformed lines"),
        "{stdout}"
    );
    assert!(
        stdout.contains("huge.log:1: longer than 64 KiB"),
        "{stdout}"
    );
    assert!(
        peak > 0 && peak < 300 << 20,
        "the import of 1 GiB peaked at {} MiB",
        peak >> 20
    );
}
