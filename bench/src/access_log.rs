//! Synthetic access logs for the `tally import-logs` benchmark: nginx
//! combined lines with the request time, or Envoy's JSON, of a mix of
//! CLIs, versions, platforms, routes and statuses.

use std::io::{BufWriter, Write};

use anyhow::Result;
use time::OffsetDateTime;
use time::macros::format_description;

const USER_AGENTS: &[&str] = &[
    "benchcli/2.4.0 (linux; x86_64; ci=github-actions)",
    "benchcli/2.4.0 (darwin; arm64)",
    "benchcli/2.3.1 (windows; x86_64; agent=claude-code)",
    "benchcli/2.3.1 (linux; aarch64)",
    "aws-cli/2.15.0 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.6",
    "curl/8.5.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
];
const REQUESTS: &[&str] = &[
    "GET /v1/projects/4242",
    "POST /v1/projects/4242/deploys",
    "GET /v1/deploys/0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01/logs",
    "GET /v1/whoami",
    "DELETE /v1/keys/77",
];
const STATUSES: &[u16] = &[200, 200, 200, 201, 404, 500];

/// Writes `lines` lines to stdout, `json` for Envoy's JSON, else nginx's.
pub fn run(lines: u64, json: bool) -> Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let start = OffsetDateTime::now_utc() - time::Duration::days(1);
    let clf = format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    for i in 0..lines {
        let at = start + time::Duration::milliseconds((i / 10) as i64);
        let pick = |n: usize, salt: u64| {
            (i.wrapping_mul(2654435761).wrapping_add(salt) % n as u64) as usize
        };
        let ua = USER_AGENTS[pick(USER_AGENTS.len(), 1)];
        let request = REQUESTS[pick(REQUESTS.len(), 7)];
        let status = STATUSES[pick(STATUSES.len(), 13)];
        let user = pick(5000, 3);
        if json {
            let (method, path) = request.split_once(' ').unwrap_or(("GET", "/"));
            let at = at.format(&time::format_description::well_known::Rfc3339)?;
            writeln!(
                out,
                r#"{{"start_time":"{at}","method":"{method}","path":"{path}","response_code":{status},"user_agent":"{ua}","duration":{},"x-forwarded-for":"203.0.113.{}"}}"#,
                i % 200,
                i % 250
            )?;
        } else {
            writeln!(
                out,
                r#"203.0.113.{} - user{user} [{}] "{request} HTTP/1.1" {status} {} "-" "{ua}" 0.{:03}"#,
                i % 250,
                at.format(clf)?,
                i % 4096,
                i % 1000
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
