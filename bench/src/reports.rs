//! Report latency through the HTTP API on a data dir filled with
//! `tally demo-data`, and the server's peak memory while answering.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::server::{start_tally, tally_binary};

pub fn run(
    data: &Path,
    store: Option<&str>,
    app: &str,
    repeat: usize,
    tally: Option<PathBuf>,
) -> Result<()> {
    let tally = tally_binary(tally)?;
    let (server, _) = start_tally(data, store, &tally, app)?;
    let token =
        std::fs::read_to_string(data.join("admin-token")).context("reading the admin token")?;
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .new_agent();
    // The last 30 days on Linux: a filtered view as the dashboard asks it.
    let since = (time::OffsetDateTime::now_utc() - time::Duration::days(30)).date();
    let filtered = format!("&since={since}&os=linux");
    println!("| report | filters | first | median of {repeat} | max |");
    println!("| --- | --- | --- | --- | --- |");
    let runs = tally_report::ReportName::ALL
        .map(|r| r.as_str())
        .into_iter()
        .flat_map(|r| [(r, ""), (r, filtered.as_str())]);
    for (report, filters) in runs {
        let extra = if report == "deprecation" {
            "&flag=--legacy-output&days=30"
        } else {
            ""
        };
        let url = format!(
            "{}/api/v1/reports/{report}?app={app}{extra}{filters}",
            server.url
        );
        let mut times = Vec::with_capacity(repeat + 1);
        for _ in 0..=repeat {
            let started = Instant::now();
            let mut response = agent
                .get(&url)
                .header("Authorization", format!("Bearer {}", token.trim()))
                .call()?;
            let status = response.status();
            let body = response.body_mut().read_to_string()?;
            if !status.is_success() {
                bail!("{report}: {status} {body}");
            }
            times.push(started.elapsed());
        }
        let first = times.remove(0);
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {report} | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
            if filters.is_empty() {
                "none"
            } else {
                "last 30 days, linux"
            },
            ms(first),
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap_or(&first)),
        );
    }
    if let Some(rss) = server.peak_rss_mb() {
        println!("server peak RSS: {rss:.0} MB");
    }
    Ok(())
}
