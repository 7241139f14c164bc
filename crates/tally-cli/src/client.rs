//! A small blocking client of a server's admin API.

use std::io::Read;

use anyhow::{Context, Result, bail};
use ureq::http::Response;

pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Self {
        // A server that stops answering fails the command instead of
        // hanging it; an answer's body (an export) may take as long as it
        // takes.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            .timeout_recv_response(Some(std::time::Duration::from_secs(120)))
            .build()
            .new_agent();
        Self {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {token}"),
        }
    }

    /// GET `path` (with its query), failing on a non-2xx answer.
    pub fn get(&self, path: &str) -> Result<Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .get(&url)
            .header("Authorization", &self.auth)
            .call()
            .with_context(|| format!("GET {url}"))?;
        check(response)
    }

    /// POST a JSON body to `path`, failing on a non-2xx answer.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .post(&url)
            .header("Authorization", &self.auth)
            .send_json(body)
            .with_context(|| format!("POST {url}"))?;
        check(response)
    }
}

impl Client {
    /// DELETE `path` (with its query), failing on a non-2xx answer.
    pub fn delete(&self, path: &str) -> Result<Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .delete(&url)
            .header("Authorization", &self.auth)
            .call()
            .with_context(|| format!("DELETE {url}"))?;
        check(response)
    }

    /// POST gzip-compressed JSON to `path`, handing back whatever the
    /// server answered: the caller tells a refusal worth retrying (429,
    /// 503) from one that is not, and passes the rest to [`check`].
    pub fn post_gzip(&self, path: &str, gzipped: &[u8]) -> Result<Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        self.agent
            .post(&url)
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .send(gzipped)
            .with_context(|| format!("POST {url}"))
    }
}

/// Turns an error answer into an error naming the server's reason.
pub fn check(mut response: Response<ureq::Body>) -> Result<Response<ureq::Body>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let mut text = String::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(64 * 1024)
        .read_to_string(&mut text);
    let reason = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or(text);
    bail!("the server answered {status}: {reason}")
}

/// Percent-encodes a query value (app names and RFC 3339 times only need
/// the reserved characters escaped).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
