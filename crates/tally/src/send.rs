//! One request to the server and what became of it: stored, too large,
//! refused for good, or not now (with the reason debug mode prints).

use std::fmt;
use std::io::{Read, Write};
use std::time::Duration;

use tally_protocol::{Batch, IngestResponse};

/// What became of one request.
pub(crate) enum Sent {
    /// A 2xx with the server's answer: every event is accounted for.
    Stored,
    /// Over one of the server's size or count limits (413).
    TooLarge,
    /// Never to be taken as it is (400, 415).
    Refused(u16),
    /// Not stored now; the events stay for a later try.
    Later {
        retry_after: Option<Duration>,
        why: Failure,
    },
}

/// Why the events of a request are still in the spool.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An `https://` endpoint in a build without the `tls` feature.
    NoTls,
    /// No answer: name lookup, connection, TLS handshake or timeout.
    Network(ureq::Error),
    /// An answer whose status means "not now" (or a redirect, not followed).
    Status(u16),
    /// A 2xx whose body is not the server's answer (a proxy's or a portal's page).
    NotTally(u16),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoTls => {
                f.write_str("https needs the SDK's `tls` feature, which this build turned off")
            }
            Failure::Network(e) => write!(f, "{e}"),
            Failure::Status(401) => {
                f.write_str("the server answered 401: the ingest key is missing or unknown")
            }
            Failure::Status(status @ 300..=399) => write!(
                f,
                "the server answered {status}, a redirect, which the SDK does not follow: \
                 set the endpoint to where it points"
            ),
            Failure::Status(status) => write!(f, "the server answered {status}"),
            Failure::NotTally(status) => write!(
                f,
                "the server answered {status} with a body that is not Tally's (a proxy?)"
            ),
        }
    }
}

/// The line debug mode prints when a send failed.
pub(crate) fn failure_line(url: &str, why: &Failure) -> String {
    format!("sending to {url} failed: {why}; the events stay in the spool for a later run")
}

/// Whether `url` needs TLS that this build lacks. Asked before ureq is: it
/// panics on an https URL without a TLS provider.
fn lacks_tls(url: &str) -> bool {
    !cfg!(feature = "tls")
        && url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Sends `batch` gzip-compressed, waiting at most `budget`.
pub(crate) fn send(
    url: &str,
    key: &str,
    user_agent: &str,
    batch: &Batch,
    budget: Duration,
) -> Sent {
    if lacks_tls(url) {
        return Sent::Later {
            retry_after: None,
            why: Failure::NoTls,
        };
    }
    let Ok(json) = serde_json::to_vec(batch) else {
        return Sent::Refused(0);
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gz.write_all(&json).is_err() {
        return Sent::Refused(0);
    }
    let Ok(body) = gz.finish() else {
        return Sent::Refused(0);
    };
    let response = agent(budget)
        .post(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .header("User-Agent", user_agent)
        .send(&body[..]);
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            return Sent::Later {
                retry_after: None,
                why: Failure::Network(e),
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 => {
            // The body is checked so a proxy's 200 page does not count as stored.
            let mut text = String::new();
            let parsed = response
                .body_mut()
                .as_reader()
                .take(1 << 20)
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| serde_json::from_str::<IngestResponse>(&text).ok());
            if parsed.is_some() {
                Sent::Stored
            } else {
                Sent::Later {
                    retry_after: None,
                    why: Failure::NotTally(status),
                }
            }
        }
        413 => Sent::TooLarge,
        400 | 415 => Sent::Refused(status),
        _ => Sent::Later {
            retry_after,
            why: Failure::Status(status),
        },
    }
}

/// An agent that waits at most `budget`, follows no redirect, and hands
/// every status back as an answer.
fn agent(budget: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(budget))
        .timeout_connect(Some(budget.min(Duration::from_secs(3))))
        .max_redirects(0)
        .build()
        .into()
}

/// What the server answers an erasure.
#[derive(serde::Deserialize)]
struct Erased {
    erased_events: u64,
}

/// Asks the server at `endpoint` to erase the install that `secret` makes;
/// returns how many of its events it erased, or why it did not, in a
/// sentence.
pub(crate) fn erase(
    endpoint: &str,
    key: &str,
    user_agent: &str,
    secret: &tally_protocol::InstallSecret,
    budget: Duration,
) -> Result<u64, String> {
    let url = format!(
        "{}/v1/installs/{}",
        endpoint.trim_end_matches('/'),
        secret.install_id()
    );
    if lacks_tls(&url) {
        return Err(Failure::NoTls.to_string());
    }
    let response = agent(budget)
        .delete(&url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Tally-Install-Secret", secret.as_str())
        .header("User-Agent", user_agent)
        .call();
    let mut response = response.map_err(|e| format!("{url}: {}", Failure::Network(e)))?;
    let status = response.status().as_u16();
    let mut text = String::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(1 << 16)
        .read_to_string(&mut text);
    match (status, serde_json::from_str::<Erased>(&text)) {
        (200..=299, Ok(erased)) => Ok(erased.erased_events),
        (200..=299, Err(_)) => Err(format!("{url}: {}", Failure::NotTally(status))),
        _ => {
            // The server's reason, when it gave one.
            // The server's reason, on one line and short, whatever it sent.
            let reason = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .map(|r| {
                    r.chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .take(200)
                        .collect::<String>()
                });
            Err(match reason {
                Some(reason) => format!("{url}: the server answered {status}: {reason}"),
                None => format!("{url}: {}", Failure::Status(status)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{closed_port, event};

    #[test]
    fn a_failed_send_says_why_in_one_line() {
        let url = "https://tally.example.com/v1/batch";
        assert_eq!(
            failure_line(url, &Failure::NoTls),
            "sending to https://tally.example.com/v1/batch failed: https needs the SDK's \
             `tls` feature, which this build turned off; the events stay in the spool for a later run"
        );
        for (status, says) in [
            (503, "the server answered 503"),
            (401, "the ingest key is missing or unknown"),
            (308, "a redirect, which the SDK does not follow"),
        ] {
            let line = failure_line(url, &Failure::Status(status));
            assert!(line.contains(says), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        let line = failure_line(url, &Failure::NotTally(200));
        assert!(line.contains("not Tally's"), "{line}");
    }

    /// Regression: without `tls`, ureq panics on an https URL.
    #[test]
    fn an_unreachable_endpoint_is_a_reason_not_a_panic() {
        let batch = Batch {
            sent_at: time::OffsetDateTime::now_utc(),
            events: vec![event(1)],
            dropped: 0,
        };
        let closed = closed_port();
        let https = closed.replacen("http://", "HTTPS://", 1);
        for url in [closed, https] {
            let Sent::Later { why, .. } = send(&url, "tk", "t/1", &batch, Duration::from_secs(5))
            else {
                panic!("{url} took the batch");
            };
            let line = failure_line(&url, &why).to_lowercase();
            let expected = if url.starts_with("HTTPS") && !cfg!(feature = "tls") {
                "https needs the sdk's `tls` feature"
            } else {
                "refused"
            };
            assert!(line.contains(expected), "{line}");
        }
    }
}
