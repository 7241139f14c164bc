//! `tally import-logs`: API gateway and web server access logs into the
//! store, as the usage of the CLI that made the requests.

mod follow;
mod input;
mod sink;

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tally_gateway::agent::Rule;
use tally_gateway::event::{Import, Importer};
use tally_gateway::json::Fields;
use tally_gateway::routes::Routes;
use tally_protocol::StoredEvent;
use time::OffsetDateTime;

use crate::target::{Target, TargetArgs};
use input::{Line, open, read_line};
use sink::{ServerSink, Sink, StoreSink, Stored, Storer};

/// The shape of a log's lines.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// nginx's combined or common log format (with `$request_time` after
    /// them when logged).
    Nginx,
    /// Apache's combined or common log format.
    Apache,
    /// One JSON object a line (see --preset, or `[json]` in --config).
    Json,
}

/// `tally import-logs`' arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The app whose CLI made the requests.
    #[arg(long)]
    app: String,
    /// The log's format.
    #[arg(long, value_enum)]
    format: Format,
    /// For --format json: the field names of a gateway's export
    /// (aws-apigateway, cloudflare, kong, envoy, traefik, caddy).
    #[arg(long)]
    preset: Option<String>,
    /// A TOML file of route templates, User-Agent rules, kept query
    /// parameters, the CLI's name and JSON field names (docs/gateway.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep reading the one file as it grows, across its rotations (a
    /// rename or a copy-and-truncate), until stopped; each imported batch
    /// is said on stdout.
    #[arg(long)]
    follow: bool,
    /// The server whose logs these are, when several behind a balancer
    /// each log their share: the same line in two servers' logs is two
    /// requests. Give each server's files their own name, the same on
    /// every import of them.
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
    /// Log files, plain, gzip or zstd (told by their first bytes); `-`
    /// reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The import's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The name the CLI gives itself in its User-Agent (default: the app).
    cli: Option<String>,
    /// Route templates: `"GET /v1/projects/{id}" = "projects.get"`.
    #[serde(default)]
    routes: HashMap<String, String>,
    /// The maintainers' own User-Agent rules (regexes with named groups).
    #[serde(default)]
    user_agents: Vec<String>,
    /// Query parameters kept as properties; the rest of a query is dropped.
    #[serde(default)]
    query_params: Vec<String>,
    /// Field names for --format json.
    json: Option<Fields>,
}

/// How long a line's repeats are told apart: log times are the requests'
/// starts, a little out of order.
const REPEATS_WITHIN_S: i64 = 120;

/// How often each line's very text came in the last
/// [`REPEATS_WITHIN_S`] seconds of log time of one file: the n-th repeat of
/// a line is the n-th event of it, every time the file is imported. Per
/// file, because a rotated file overlaps the next with the same requests.
#[derive(Default)]
struct Occurrences {
    /// (second, hash of the line) -> how many so far.
    counts: HashMap<(i64, u64), u32>,
    /// The log time of the last forgetting.
    newest: i64,
}

impl Occurrences {
    /// The occurrence of `line`, logged at `second`, counted.
    fn next(&mut self, second: i64, line: &str) -> u32 {
        use std::hash::BuildHasher;
        // Forgotten a window at a time: a line's repeats are told apart
        // for between one and two windows.
        if second >= self.newest + REPEATS_WITHIN_S {
            self.newest = second;
            let oldest = second - REPEATS_WITHIN_S;
            self.counts.retain(|(s, _), _| *s >= oldest);
        }
        // The same hash of a text on every run, so its count is too.
        let hash = foldhash::quality::FixedState::default().hash_one(line);
        let count = self.counts.entry((second, hash)).or_insert(0);
        *count += 1;
        *count - 1
    }
}

/// Events a transaction holds.
const BATCH: usize = 10_000;
/// Malformed lines shown in the summary; the rest are counted.
const SHOWN: usize = 5;

/// What an import came to.
#[derive(Default)]
struct Tally {
    lines: u64,
    imported: u64,
    duplicates: u64,
    bad: u64,
    shown: Vec<String>,
    /// Files that could not be read to their end, and why.
    failed: Vec<String>,
}

/// Imports the files `args` names (or follows the one).
pub fn run(args: Args) -> Result<()> {
    if args.follow && (args.files.len() != 1 || args.files[0].as_os_str() == "-") {
        bail!("--follow reads one file, by its path");
    }
    let (config, fields, routes, rules) = settings(&args)?;
    // Into the store, or through the server that holds it.
    let (sink, secret): (Box<dyn Sink + Send>, Vec<u8>) = match args.target.resolve()? {
        Target::Store(store) => {
            let app = store
                .apps()?
                .into_iter()
                .find(|a| a.name == args.app)
                .with_context(|| format!("no app {:?} in the store (tally app add)", args.app))?;
            let writer = store.writer()?;
            let key = tally_gateway::event::user_key(&app.salt);
            (Box::new(StoreSink { store, writer }), key.to_vec())
        }
        Target::Server(client) => {
            let sink = ServerSink {
                client,
                app: args.app.clone(),
            };
            let key = sink.user_key()?;
            (Box::new(sink), key)
        }
    };
    let mut importer = Importer::new(Import {
        app: &args.app,
        cli: config.cli.as_deref().unwrap_or(&args.app),
        secret: &secret,
        routes: &routes,
        rules: &rules,
        query_params: &config.query_params,
        instance: args.instance.as_deref().unwrap_or_default(),
    });
    let mut storer = Storer::start(sink)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    for file in &args.files {
        let mut run = FileRun {
            importer: &mut importer,
            fields: fields.as_ref(),
            storer: &mut storer,
            tally: &mut tally,
            batch: Vec::with_capacity(BATCH),
            seen: Occurrences::default(),
            started,
        };
        if args.follow {
            return run.follow(file);
        }
        run.read(open(file)?, file)?;
    }
    summary(tally, args.files.len(), started)
}

/// The config file, and what it and the arguments make: the JSON field
/// names, the routes, the User-Agent rules.
fn settings(args: &Args) -> Result<(Config, Option<Fields>, Routes, Vec<Rule>)> {
    let config: Config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
        None => Config::default(),
    };
    let fields = match (args.format, &args.preset, config.json.clone()) {
        (Format::Json, Some(preset), _) => Some(Fields::preset(preset).with_context(|| {
            let known: Vec<&str> = tally_gateway::json::presets().collect();
            format!("no preset {preset:?}: {}", known.join(", "))
        })?),
        (Format::Json, None, Some(fields)) => Some(fields),
        (Format::Json, None, None) => {
            bail!("--format json needs --preset or a [json] table in --config")
        }
        _ => None,
    };
    let mut routes = Routes::default();
    for (template, feature) in &config.routes {
        routes.add(template, feature)?;
    }
    let rules = config
        .user_agents
        .iter()
        .map(|p| Rule::new(p).with_context(|| format!("user_agents: {p:?}")))
        .collect::<Result<Vec<_>>>()?;
    Ok((config, fields, routes, rules))
}

/// Prints what the import came to; fails if a file could not be read to
/// its end.
fn summary(tally: Tally, files: usize, started: Instant) -> Result<()> {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let Tally {
        lines,
        imported,
        duplicates,
        bad,
        shown,
        failed,
    } = tally;
    println!(
        "{} files, {lines} lines in {:.1} s: {imported} requests imported, {duplicates} imported before, {bad} malformed lines",
        files,
        started.elapsed().as_secs_f64()
    );
    for line in shown {
        println!("  {line}");
    }
    if let Some(first) = failed.first() {
        bail!(
            "{} of the files could not be read to their end (what came before is imported): {first}",
            failed.len()
        );
    }
    Ok(())
}

/// One file's import.
struct FileRun<'a, 'i> {
    importer: &'a mut Importer<'i>,
    fields: Option<&'a Fields>,
    storer: &'a mut Storer,
    tally: &'a mut Tally,
    batch: Vec<StoredEvent>,
    /// How often each line's text came in the file.
    seen: Occurrences,
    started: Instant,
}

impl FileRun<'_, '_> {
    fn read(&mut self, mut reader: Box<dyn BufRead>, path: &std::path::Path) -> Result<()> {
        let mut buf = Vec::new();
        let mut number = 0u64;
        let terminal = std::io::stderr().is_terminal();
        loop {
            buf.clear();
            let read = match read_line(&mut reader, &mut buf) {
                Ok(read) => read,
                Err(e) => {
                    // A file cut short (still being compressed, a full
                    // disk) costs its rest, not the import.
                    self.tally.failed.push(format!("{}: {e}", path.display()));
                    break;
                }
            };
            match read {
                Line::End => break,
                Line::Whole => {
                    number += 1;
                    self.take(&buf, path, number)?;
                }
                Line::TooLong => {
                    number += 1;
                    self.tally.lines += 1;
                    self.bad(path, number, "longer than 64 KiB");
                }
            }
            if terminal && self.batch.is_empty() {
                let secs = self.started.elapsed().as_secs_f64();
                eprint!(
                    "\r{} lines, {:.0} lines/s, {} malformed",
                    self.tally.lines,
                    self.tally.lines as f64 / secs.max(1e-9),
                    self.tally.bad
                );
            }
        }
        self.settle()
    }

    /// One line's bytes, counted and read; a full batch is stored.
    fn take(&mut self, buf: &[u8], path: &std::path::Path, number: u64) -> Result<()> {
        self.tally.lines += 1;
        match std::str::from_utf8(buf) {
            Ok(line) => self.line(line.trim_end_matches(['\n', '\r']), path, number),
            Err(_) => self.bad(path, number, "not UTF-8"),
        }
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str, path: &std::path::Path, number: u64) {
        if line.trim().is_empty() {
            return;
        }
        let owned = self
            .fields
            .map(|fields| tally_gateway::json::parse(fields, line));
        let request = match &owned {
            None => tally_gateway::access::parse(line),
            Some(parsed) => parsed
                .as_ref()
                .map(tally_gateway::json::Request::as_access)
                .map_err(|e| *e),
        };
        match request {
            Ok(request) => {
                let now = OffsetDateTime::now_utc();
                let limits = tally_protocol::Limits::default();
                // A time to come is refused before it is counted: it would
                // hold back the forgetting of every repeat after it.
                if request.time > now + limits.max_future {
                    return self.bad(path, number, "the time is in the future");
                }
                let occurrence = self.seen.next(request.time.unix_timestamp(), line);
                let event = self.importer.event(&request, line, occurrence);
                // Judged as every event reaching a store is: its time
                // believable (and on UTC), its fields within the limits.
                match tally_protocol::admit(
                    event,
                    self.importer.import().app,
                    now,
                    time::Duration::ZERO,
                    &limits,
                ) {
                    Ok((event, client_timestamp)) => self.batch.push(StoredEvent {
                        event,
                        client_timestamp,
                        received_at: now,
                    }),
                    Err(e) => self.bad(path, number, &format!("{}: {}", e.field, e.reason)),
                }
            }
            Err(e) => self.bad(path, number, &e.to_string()),
        }
    }

    fn bad(&mut self, path: &std::path::Path, number: u64, reason: &str) {
        self.tally.bad += 1;
        if self.tally.shown.len() < SHOWN {
            self.tally
                .shown
                .push(format!("{}:{number}: {reason}", path.display()));
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let stored = self.storer.store(std::mem::take(&mut self.batch))?;
        self.count(stored);
        let _ = std::io::stderr().flush();
        Ok(())
    }

    /// Stores what is read so far, and waits for it to be stored.
    fn settle(&mut self) -> Result<()> {
        self.flush()?;
        let stored = self.storer.settle()?;
        self.count(stored);
        Ok(())
    }

    fn count(&mut self, stored: Vec<Stored>) {
        for stored in stored {
            self.tally.imported += stored.new;
            self.tally.duplicates += stored.duplicates;
            for reason in stored.refused {
                self.tally.bad += 1;
                if self.tally.shown.len() < SHOWN {
                    self.tally.shown.push(reason);
                }
            }
        }
    }
}
