//! JSON access logs, one object a line, with the field names each gateway
//! uses: presets for AWS API Gateway, Cloudflare Logpush (HTTP requests),
//! Kong, Envoy, Traefik and Caddy, or names of the maintainers' choosing.
//! A name may be a dotted path into nested objects (`request.method`);
//! where a value is an array (Caddy's headers), its first item counts.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::access::BadLine;

/// The unit a duration field counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Seconds (fractions allowed).
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl Unit {
    fn to_ms(self, n: f64) -> f64 {
        match self {
            Self::S => n * 1e3,
            Self::Ms => n,
            Self::Us => n / 1e3,
            Self::Ns => n / 1e6,
        }
    }
}

/// Where a JSON line keeps each part of a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// When the request came: RFC 3339, the access log's
    /// `10/Oct/2026:13:55:36 +0000`, or seconds, milliseconds or
    /// nanoseconds since the epoch (told apart by their size).
    pub time: String,
    /// The method.
    pub method: String,
    /// The path (a query after `?` is cut off).
    pub path: String,
    /// The status.
    pub status: String,
    /// The User-Agent.
    pub user_agent: String,
    /// How long it took, if logged.
    pub duration: Option<String>,
    /// `duration`'s unit.
    #[serde(default = "ms")]
    pub duration_unit: Unit,
    /// The token or auth subject that stands for a user, if logged.
    pub user: Option<String>,
}

fn ms() -> Unit {
    Unit::Ms
}

impl Fields {
    /// The fields of a named preset: `aws-apigateway`, `cloudflare`,
    /// `kong`, `envoy`, `traefik` or `caddy`.
    ///
    /// ```
    /// let kong = tally_gateway::json::Fields::preset("kong").expect("a preset");
    /// assert_eq!(kong.method, "request.method");
    /// assert!(tally_gateway::json::Fields::preset("nope").is_none());
    /// ```
    pub fn preset(name: &str) -> Option<Self> {
        let (_, [time, method, path, status, ua, duration, user], unit) =
            PRESETS.iter().find(|(preset, ..)| *preset == name)?;
        let some = |field: &str| Some(field.to_owned()).filter(|f| !f.is_empty());
        Some(Fields {
            time: (*time).into(),
            method: (*method).into(),
            path: (*path).into(),
            status: (*status).into(),
            user_agent: (*ua).into(),
            duration: some(duration),
            duration_unit: *unit,
            user: some(user),
        })
    }
}

/// The names of the presets, for saying which there are.
///
/// ```
/// assert!(tally_gateway::json::presets().any(|p| p == "envoy"));
/// ```
pub fn presets() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(name, ..)| *name)
}

/// The presets: each gateway's names for the time, method, path, status,
/// User-Agent, duration and user ("" where it logs none), and the
/// duration's unit. docs/gateway.md says what each field holds.
const PRESETS: &[(&str, [&str; 7], Unit)] = &[
    // The $context variables of AWS's JSON example.
    (
        "aws-apigateway",
        [
            "requestTime",
            "httpMethod",
            "path",
            "status",
            "userAgent",
            "responseLatency",
            "principalId",
        ],
        Unit::Ms,
    ),
    (
        "cloudflare",
        [
            "EdgeStartTimestamp",
            "ClientRequestMethod",
            "ClientRequestPath",
            "EdgeResponseStatus",
            "ClientRequestUserAgent",
            "EdgeTimeToFirstByteMs",
            "",
        ],
        Unit::Ms,
    ),
    (
        "kong",
        [
            "started_at",
            "request.method",
            "request.uri",
            "response.status",
            "request.headers.user-agent",
            "latencies.request",
            "consumer.username",
        ],
        Unit::Ms,
    ),
    (
        "envoy",
        [
            "start_time",
            "method",
            "path",
            "response_code",
            "user_agent",
            "duration",
            "",
        ],
        Unit::Ms,
    ),
    (
        "traefik",
        [
            "StartUTC",
            "RequestMethod",
            "RequestPath",
            "DownstreamStatus",
            "request_User-Agent",
            "Duration",
            "",
        ],
        Unit::Ns,
    ),
    (
        "caddy",
        [
            "ts",
            "request.method",
            "request.uri",
            "status",
            "request.headers.User-Agent",
            "duration",
            "user_id",
        ],
        Unit::S,
    ),
];

/// One request of a JSON line (owned: JSON strings may hold escapes).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// When the server got it.
    pub time: OffsetDateTime,
    /// The method, uppercase.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// The answer's status.
    pub status: u16,
    /// The user's token or subject, if logged.
    pub user: Option<String>,
    /// The User-Agent; empty if not logged.
    pub user_agent: String,
    /// How long it took, if logged.
    pub duration_ms: Option<f64>,
}

impl Request {
    /// The request as an access log line has it (borrowed).
    pub fn as_access(&self) -> crate::access::Request<'_> {
        crate::access::Request {
            time: self.time,
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            status: self.status,
            user: self.user.as_deref(),
            user_agent: &self.user_agent,
            duration_ms: self.duration_ms,
        }
    }
}

/// The value at dotted `path` in `v` (an array's first item where one is).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(found) = v.get(path) {
        // A flat name with dots in it (Traefik's `request_User-Agent` has
        // none, but some exports do).
        return Some(first(found));
    }
    let mut v = v;
    for part in path.split('.') {
        v = first(v.get(part)?);
    }
    Some(v)
}

fn first(v: &Value) -> &Value {
    match v {
        Value::Array(items) => items.first().unwrap_or(v),
        _ => v,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads one JSON line with `fields`.
///
/// ```
/// let envoy = tally_gateway::json::Fields::preset("envoy").expect("preset");
/// let line = r#"{"start_time": "2026-11-25T12:00:01.250Z", "method": "GET", "path": "/v1/projects/42?x=1",
///                "response_code": 200, "user_agent": "gh/2.63.0", "duration": 31}"#;
/// let r = tally_gateway::json::parse(&envoy, line)?;
/// assert_eq!((r.method.as_str(), r.path.as_str(), r.query.as_deref(), r.status), ("GET", "/v1/projects/42", Some("x=1"), 200));
/// assert_eq!(r.duration_ms, Some(31.0));
/// # Ok::<(), tally_gateway::access::BadLine>(())
/// ```
pub fn parse(fields: &Fields, line: &str) -> Result<Request, BadLine> {
    let v: Value = serde_json::from_str(line).map_err(|_| BadLine("not a JSON object"))?;
    if !v.is_object() {
        return Err(BadLine("not a JSON object"));
    }
    let time = at(&v, &fields.time)
        .and_then(time_of)
        .ok_or(BadLine("no time, or not one of the known forms"))?;
    let method = text(at(&v, &fields.method))
        .map(|m| m.to_ascii_uppercase())
        .filter(|m| crate::access::is_method(m))
        .ok_or(BadLine("no method"))?;
    let target = text(at(&v, &fields.path))
        .filter(|p| p.starts_with('/'))
        .ok_or(BadLine("no path"))?;
    let status = text(at(&v, &fields.status))
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(BadLine("no status"))?;
    let duration_ms = fields
        .duration
        .as_deref()
        .and_then(|d| at(&v, d))
        .and_then(|d| text(Some(d))?.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| fields.duration_unit.to_ms(d));
    let (path, query) = crate::access::split_target(&target);
    let (path, query) = (path.to_owned(), query.map(str::to_owned));
    Ok(Request {
        time,
        method,
        path,
        query,
        status,
        user: fields
            .user
            .as_deref()
            .and_then(|u| text(at(&v, u)))
            .filter(|u| !u.is_empty() && u != "-"),
        user_agent: text(at(&v, &fields.user_agent)).unwrap_or_default(),
        duration_ms,
    })
}

/// A time as gateways log them.
fn time_of(v: &Value) -> Option<OffsetDateTime> {
    match v {
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .or_else(|| crate::access::parse_time(s))
            .or_else(|| s.parse::<f64>().ok().and_then(epoch)),
        Value::Number(n) => epoch(n.as_f64()?),
        _ => None,
    }
}

/// Seconds, milliseconds or nanoseconds since the epoch, told apart by
/// their size (a time after 2001 in each).
fn epoch(n: f64) -> Option<OffsetDateTime> {
    let nanos = if n < 1e11 {
        n * 1e9
    } else if n < 1e14 {
        n * 1e6
    } else if n < 1e17 {
        n * 1e3
    } else {
        n
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos as i128).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// One line of each gateway's export, as they write them.
    #[test]
    fn each_preset_reads_its_gateways_lines() {
        let at = datetime!(2026-11-25 12:00:01 UTC);
        for (preset, line, duration) in [
            (
                "aws-apigateway",
                r#"{"requestId":"c6af9ac6","ip":"203.0.113.9","requestTime":"25/Nov/2026:12:00:01 +0000","httpMethod":"POST","path":"/v1/deploys","status":"201","protocol":"HTTP/1.1","responseLength":"512","userAgent":"mycli/1.4.2 (linux; x86_64)","responseLatency":"42","principalId":"user-7"}"#,
                42.0,
            ),
            (
                "cloudflare",
                r#"{"ClientIP":"203.0.113.9","ClientRequestMethod":"POST","ClientRequestPath":"/v1/deploys","EdgeResponseStatus":201,"ClientRequestUserAgent":"mycli/1.4.2 (linux; x86_64)","EdgeStartTimestamp":"2026-11-25T12:00:01Z","EdgeTimeToFirstByteMs":42}"#,
                42.0,
            ),
            (
                "kong",
                r#"{"request":{"method":"POST","uri":"/v1/deploys","headers":{"user-agent":"mycli/1.4.2 (linux; x86_64)"}},"response":{"status":201},"latencies":{"request":42},"started_at":1795608001000,"consumer":{"username":"user-7"},"client_ip":"203.0.113.9"}"#,
                42.0,
            ),
            (
                "envoy",
                r#"{"start_time":"2026-11-25T12:00:01.000Z","method":"POST","path":"/v1/deploys","response_code":201,"user_agent":"mycli/1.4.2 (linux; x86_64)","duration":42}"#,
                42.0,
            ),
            (
                "traefik",
                r#"{"StartUTC":"2026-11-25T12:00:01Z","RequestMethod":"POST","RequestPath":"/v1/deploys","DownstreamStatus":201,"request_User-Agent":"mycli/1.4.2 (linux; x86_64)","Duration":42000000,"ClientHost":"203.0.113.9"}"#,
                42.0,
            ),
            (
                "caddy",
                r#"{"level":"info","ts":1795608001.0,"logger":"http.log.access","request":{"remote_ip":"203.0.113.9","method":"POST","uri":"/v1/deploys","headers":{"User-Agent":["mycli/1.4.2 (linux; x86_64)"]}},"status":201,"duration":0.042,"user_id":"user-7"}"#,
                42.0,
            ),
        ] {
            let fields = Fields::preset(preset).expect("preset");
            let r = parse(&fields, line).unwrap_or_else(|e| panic!("{preset}: {e}"));
            assert_eq!(r.time, at, "{preset}");
            assert_eq!(
                (r.method.as_str(), r.path.as_str(), r.status),
                ("POST", "/v1/deploys", 201),
                "{preset}"
            );
            assert_eq!(r.user_agent, "mycli/1.4.2 (linux; x86_64)", "{preset}");
            let ms = r.duration_ms.expect("a duration");
            assert!((ms - duration).abs() < 1e-6, "{preset}: {ms}");
        }
    }

    #[test]
    fn a_line_without_what_a_request_needs_says_what() {
        let envoy = Fields::preset("envoy").expect("preset");
        for (line, reason) in [
            ("not json", "not a JSON object"),
            ("[1]", "not a JSON object"),
            (
                r#"{"method":"GET"}"#,
                "no time, or not one of the known forms",
            ),
            (
                r#"{"start_time":"2026-11-25T12:00:01Z","method":"G T","path":"/","response_code":200}"#,
                "no method",
            ),
            (
                r#"{"start_time":"2026-11-25T12:00:01Z","method":"GET","path":"x","response_code":200}"#,
                "no path",
            ),
            (
                r#"{"start_time":"2026-11-25T12:00:01Z","method":"GET","path":"/","response_code":"ok"}"#,
                "no status",
            ),
        ] {
            assert_eq!(parse(&envoy, line), Err(BadLine(reason)), "{line}");
        }
    }
}
