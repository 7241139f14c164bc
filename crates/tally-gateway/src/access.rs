//! nginx's and Apache's access log lines, combined and common format:
//!
//! ```text
//! host ident user [10/Oct/2026:13:55:36 -0700] "GET /v1/projects/42?x=1 HTTP/1.1" 200 2326 "referer" "user-agent" 0.031
//! ```
//!
//! The common format stops after the size; the combined adds the referer
//! and the User-Agent; many nginx setups append the request time in
//! seconds (`$request_time`, bare or as `rt=0.031`), which is read when
//! there. The client's address and the referer are never read into what a
//! line gives: they say who made the request.

use time::{Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// One request, as a log line has it (borrowed from the line).
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// When the server got it.
    pub time: OffsetDateTime,
    /// `GET`, `POST` ...
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, without the `?`, if any.
    pub query: Option<&'a str>,
    /// The answer's status.
    pub status: u16,
    /// The authenticated user (`$remote_user`), if any.
    pub user: Option<&'a str>,
    /// The User-Agent as logged (escapes and all); empty if not logged.
    pub user_agent: &'a str,
    /// How long the request took, when the line says.
    pub duration_ms: Option<f64>,
}

/// Why a line is no access log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadLine(pub &'static str);

/// Reads one line (without its newline).
///
/// ```
/// let line = r#"203.0.113.9 - - [25/Nov/2026:12:00:01 +0000] "POST /v1/deploys?dry=1 HTTP/1.1" 201 512 "-" "mycli/1.4.2 (linux; x86_64)" 0.042"#;
/// let r = tally_gateway::access::parse(line)?;
/// assert_eq!((r.method, r.path, r.query, r.status), ("POST", "/v1/deploys", Some("dry=1"), 201));
/// assert_eq!(r.user_agent, "mycli/1.4.2 (linux; x86_64)");
/// assert_eq!(r.duration_ms, Some(42.0));
/// # Ok::<(), tally_gateway::access::BadLine>(())
/// ```
pub fn parse(line: &str) -> Result<Request<'_>, BadLine> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    let _host = field(&mut rest).ok_or(BadLine("no client address"))?;
    let _ident = field(&mut rest).ok_or(BadLine("no ident field"))?;
    let user = field(&mut rest).ok_or(BadLine("no user field"))?;
    let time = bracketed(&mut rest).ok_or(BadLine("no [time]"))?;
    let time =
        parse_time(time).ok_or(BadLine("the time is not like 10/Oct/2026:13:55:36 +0000"))?;
    let request = quoted(&mut rest).ok_or(BadLine("no \"request\""))?;
    let mut parts = request.split(' ');
    let method = parts
        .next()
        .filter(|m| is_method(m))
        .ok_or(BadLine("the request has no method"))?;
    let target = parts
        .next()
        .filter(|t| !t.is_empty())
        .ok_or(BadLine("the request has no path"))?;
    let status = field(&mut rest)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(BadLine("no status"))?;
    let _bytes = field(&mut rest).ok_or(BadLine("no size"))?;
    let (mut user_agent, mut duration_ms) = ("", None);
    if rest.trim_start().starts_with('"') {
        let _referer = quoted(&mut rest).ok_or(BadLine("an unclosed \"referer\""))?;
        user_agent = quoted(&mut rest).ok_or(BadLine("no \"user-agent\" after the referer"))?;
    }
    while let Some(extra) = field(&mut rest) {
        let seconds = extra
            .strip_prefix("rt=")
            .or_else(|| extra.strip_prefix("request_time="))
            .unwrap_or(extra);
        if let Ok(s) = seconds.trim_matches('"').parse::<f64>()
            && s.is_finite()
            && s >= 0.0
        {
            duration_ms = duration_ms.or(Some((s * 1000.0 * 1000.0).round() / 1000.0));
        }
    }
    let (path, query) = split_target(target);
    Ok(Request {
        time,
        method,
        path,
        query,
        status,
        user: Some(user).filter(|u| *u != "-"),
        user_agent: if user_agent == "-" { "" } else { user_agent },
        duration_ms,
    })
}

/// A request target as its path and its query (without the `?`).
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// A method as servers log them: 1 to 16 uppercase letters.
pub(crate) fn is_method(m: &str) -> bool {
    !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_uppercase())
}

/// The next space-separated field.
fn field<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    let end = s.find(' ').unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

fn bracketed<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches(' ').strip_prefix('[')?;
    let end = s.find(']')?;
    *rest = &s[end + 1..];
    Some(&s[..end])
}

/// The next `"..."` field (`\"` inside it is a quote), as logged.
fn quoted<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches(' ').strip_prefix('"')?;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                *rest = &s[i + 1..];
                return Some(&s[..i]);
            }
            _ => i += 1,
        }
    }
    None
}

/// `10/Oct/2026:13:55:36 -0700`, read by hand: a format description would
/// cost more than the rest of the line.
pub(crate) fn parse_time(t: &str) -> Option<OffsetDateTime> {
    let b = t.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> { t.get(range)?.parse().ok() };
    let month = match &t[3..6] {
        "Jan" => Month::January,
        "Feb" => Month::February,
        "Mar" => Month::March,
        "Apr" => Month::April,
        "May" => Month::May,
        "Jun" => Month::June,
        "Jul" => Month::July,
        "Aug" => Month::August,
        "Sep" => Month::September,
        "Oct" => Month::October,
        "Nov" => Month::November,
        "Dec" => Month::December,
        _ => return None,
    };
    let date = time::Date::from_calendar_date(num(7..11)? as i32, month, num(0..2)? as u8).ok()?;
    let clock = Time::from_hms(num(12..14)? as u8, num(15..17)? as u8, num(18..20)? as u8).ok()?;
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset =
        UtcOffset::from_hms(sign * num(22..24)? as i8, sign * num(24..26)? as i8, 0).ok()?;
    Some(PrimitiveDateTime::new(date, clock).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn combined_common_and_timed_lines_read_alike() {
        let combined = r#"198.51.100.7 - alice [10/Oct/2026:13:55:36 -0700] "GET /v1/projects/42 HTTP/1.1" 200 2326 "https://example.com/" "gh/2.63.0 (linux; amd64)""#;
        let r = parse(combined).expect("combined");
        assert_eq!(r.time, datetime!(2026-10-10 20:55:36 UTC));
        assert_eq!(
            (r.method, r.path, r.query, r.status, r.user),
            ("GET", "/v1/projects/42", None, 200, Some("alice"))
        );
        assert_eq!(
            (r.user_agent, r.duration_ms),
            ("gh/2.63.0 (linux; amd64)", None)
        );
        let common =
            r#"198.51.100.7 - - [10/Oct/2026:13:55:36 +0000] "DELETE /v1/keys/7 HTTP/1.0" 404 -"#;
        let r = parse(common).expect("common");
        assert_eq!(
            (r.method, r.status, r.user, r.user_agent),
            ("DELETE", 404, None, "")
        );
        let timed = r#"::1 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/2.0" 200 5 "-" "ua \"quoted\" x" rt=1.5 urt="1.498""#;
        let r = parse(timed).expect("timed");
        assert_eq!(
            (r.user_agent, r.duration_ms),
            (r#"ua \"quoted\" x"#, Some(1500.0))
        );
    }

    #[test]
    fn malformed_lines_say_what_is_missing() {
        for (line, reason) in [
            ("", "no client address"),
            ("1.2.3.4 - - 10/Oct/2026", "no [time]"),
            (
                r#"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "\x16\x03\x01" 400 0"#,
                "the request has no method",
            ),
            (
                r#"1.2.3.4 - - [99/Foo/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 0"#,
                "the time is not like 10/Oct/2026:13:55:36 +0000",
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 999 0"#,
                "no status",
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 0 "-" "cut"#,
                "no \"user-agent\" after the referer",
            ),
        ] {
            assert_eq!(parse(line), Err(BadLine(reason)), "{line}");
        }
    }
}
