//! `tally export`: stored events as NDJSON on stdout.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;

use anyhow::{Context, Result};
use tally_protocol::StoredEvent;
use tally_store::ExportFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::urlencode;
use crate::target::{Target, TargetArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only events of this app.
    #[arg(long)]
    app: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    since: Option<OffsetDateTime>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    until: Option<OffsetDateTime>,
    #[command(flatten)]
    target: TargetArgs,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub fn run(args: Args) -> Result<()> {
    let filter = ExportFilter {
        app: args.app,
        since: args.since,
        until: args.until,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    match args.target.resolve()? {
        Target::Server(client) => {
            let mut query = Vec::new();
            if let Some(app) = &filter.app {
                query.push(format!("app={}", urlencode(app)));
            }
            for (name, time) in [("since", filter.since), ("until", filter.until)] {
                if let Some(time) = time {
                    query.push(format!("{name}={}", urlencode(&time.format(&Rfc3339)?)));
                }
            }
            let mut response = client.get(&format!("/api/v1/export?{}", query.join("&")))?;
            std::io::copy(&mut response.body_mut().as_reader(), &mut out)
                .context("the export from the server stopped midway (its log says why)")?;
        }
        Target::Store(store) => {
            let mut line = Vec::new();
            let mut failed = None;
            store.export(
                &filter,
                &mut |event| match write_line(&mut out, &mut line, &event) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        ControlFlow::Break(())
                    }
                },
            )?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Writes `event` and a newline to `out` whole, made in `line` first so
/// that an event that cannot be written leaves no half line behind.
fn write_line(out: &mut impl Write, line: &mut Vec<u8>, event: &StoredEvent) -> Result<()> {
    line.clear();
    serde_json::to_writer(&mut *line, event)
        .with_context(|| format!("event {} cannot be written", event.event.id))?;
    line.push(b'\n');
    out.write_all(line).context("writing the export")
}
