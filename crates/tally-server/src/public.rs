//! An app's public page, off by default: the reports its config publishes
//! (`public_reports`), read-only, without a token, like Homebrew's
//! analytics pages, as HTML at `GET /public/{app}` and as JSON at
//! `GET /public/{app}/{report}.json`.
//!
//! What keeps it from singling anyone out: groups of fewer installs than
//! the app's `public_min_installs` (10 unless it says more) are left out;
//! the only filter is the window, the last 30, 90 or 365 whole UTC days,
//! so a reader cannot narrow a report down to one version, OS or day; and
//! answers are made at most every five minutes per report and window. An
//! app that publishes nothing, a report it does not publish and a name
//! that is no app all answer the same 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tally_report::{Cell, Report, ReportName};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::listen::Peer;
use crate::state::AppState;

/// The windows a public page offers, in days.
const WINDOWS: [u32; 3] = [30, 90, 365];
/// How long an answer is served again before it is made anew.
const FRESH_FOR: Duration = Duration::from_secs(300);

/// An app, one of its reports, and a window in days.
type Asked = (String, ReportName, u32);

/// An answer, and when it was made.
type Made = (Instant, Arc<Report>);

/// Answers made lately.
#[derive(Default, Clone)]
pub(crate) struct Answers(Arc<Mutex<HashMap<Asked, Made>>>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Window {
    days: Option<u32>,
}

fn not_published() -> ApiError {
    ApiError::NotFound("no such public page".into())
}

/// `GET /public/{app}/{report}.json`.
pub(crate) async fn json(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path((app, file)): Path<(String, String)>,
    Query(window): Query<Window>,
) -> Result<Response, ApiError> {
    let limiter = state.limiter();
    limiter.client(limiter.client_of(peer, &headers))?;
    let report = file
        .strip_suffix(".json")
        .and_then(ReportName::parse)
        .ok_or_else(not_published)?;
    let days = days_of(&window)?;
    let answer = answer(&state, &app, report, days).await?;
    Ok((
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(answer.as_ref().clone()),
    )
        .into_response())
}

/// `GET /public/{app}`: every published report, as HTML tables.
pub(crate) async fn page(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(window): Query<Window>,
) -> Result<Response, ApiError> {
    let limiter = state.limiter();
    limiter.client(limiter.client_of(peer, &headers))?;
    let days = days_of(&window)?;
    let published = state.config().public.get(&app).ok_or_else(not_published)?;
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{app} usage</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head>\
         <body><main><h1>How {app} is used</h1><p class=\"note\">The last {days} days, counted by \
         Tally from the anonymous telemetry {app} sends. Groups of fewer than {k} installs are \
         left out. Windows: {links}.</p>",
        app = escape(&app),
        k = published.min_installs,
        links = WINDOWS
            .iter()
            .map(|d| format!("<a href=\"?days={d}\">{d} days</a>"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for &report in &published.reports.clone() {
        let answer = answer(&state, &app, report, days).await?;
        html.push_str(&format!(
            "<section class=\"card\" id=\"public-{r}\"><h2>{r}</h2><p class=\"note\">\
             <a href=\"/public/{a}/{r}.json?days={days}\">JSON</a></p>",
            r = report.as_str(),
            a = escape(&app),
        ));
        for table in &answer.tables {
            html.push_str(&format!(
                "<h3>{}</h3><table data-table=\"{0}\"><thead><tr>",
                escape(&table.name)
            ));
            for column in &table.columns {
                html.push_str(&format!("<th>{}</th>", escape(&column.replace('_', " "))));
            }
            html.push_str("</tr></thead><tbody>");
            for row in &table.rows {
                html.push_str("<tr>");
                for cell in row {
                    html.push_str(&format!("<td>{}</td>", escape(&text(cell))));
                }
                html.push_str("</tr>");
            }
            html.push_str("</tbody></table>");
        }
        if let Some(hidden) = answer.hidden.filter(|h| h.groups > 0) {
            html.push_str(&format!(
                "<p class=\"note\">{} groups of fewer than {} installs are hidden.</p>",
                hidden.groups, hidden.min_installs
            ));
        }
        html.push_str("</section>");
    }
    html.push_str("</main></body></html>");
    Ok((
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; frame-ancestors 'none'",
            ),
        ],
        html,
    )
        .into_response())
}

fn days_of(window: &Window) -> Result<u32, ApiError> {
    let days = window.days.unwrap_or(WINDOWS[0]);
    if WINDOWS.contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::bad(
            "invalid_query",
            "days",
            "a public page shows the last 30, 90 or 365 days",
        ))
    }
}

/// `report` of `app` over the last `days` whole days, its small groups
/// left out: made anew at most every [`FRESH_FOR`].
async fn answer(
    state: &AppState,
    app: &str,
    report: ReportName,
    days: u32,
) -> Result<Arc<Report>, ApiError> {
    let published = state.config().public.get(app).ok_or_else(not_published)?;
    if !published.reports.contains(&report) {
        return Err(not_published());
    }
    let key = (app.to_owned(), report, days);
    let answers = state.public_answers();
    if let Some((made, answer)) = answers
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        && made.elapsed() < FRESH_FOR
    {
        return Ok(Arc::clone(answer));
    }
    let today = OffsetDateTime::now_utc().date();
    let params = [
        ("app", app.to_owned()),
        (
            "since",
            (today - time::Duration::days(i64::from(days))).to_string(),
        ),
        ("until", today.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut query = tally_report::Query::from_params(report, &params)
        .map_err(|e| ApiError::bad("invalid_query", e.field, e.reason))?;
    state.config().settle(&mut query);
    query.min_installs = Some(published.min_installs.max(query.min_installs.unwrap_or(0)));
    let store = state.store();
    store.complete()?;
    let answer = Arc::new(store.call(move |store| store.report(&query)).await?);
    answers
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, (Instant::now(), Arc::clone(&answer)));
    Ok(answer)
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Int(n) => n.to_string(),
        Cell::Float(x) => format!("{x}"),
        Cell::Text(s) => s.clone(),
        Cell::Bool(b) => b.to_string(),
    }
}

/// Text for HTML: what clients sent is shown, never run.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
