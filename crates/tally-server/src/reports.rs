//! `GET /api/v1/reports/{name}`: the reports, for the admin, less the
//! app's small groups when its settings hide them. JSON by default;
//! `format=csv` answers the CSV `tally report --format csv` prints, and
//! `table=NAME` one table of the report alone (the dashboard's downloads).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use tally_report::{Report, ReportName};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(crate) async fn report(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(mut params): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let report = ReportName::parse(&name).ok_or_else(|| {
        let known: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::NotFound(format!(
            "there is no report {name:?}; reports: {}",
            known.join(", ")
        ))
    })?;
    let csv = match params.remove("format").as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad(
                "invalid_query",
                "format",
                format!("{other:?} is no format; give json or csv"),
            ));
        }
    };
    let table = params.remove("table");
    let mut query = tally_report::Query::from_params(report, &params)
        .map_err(|e| ApiError::bad("invalid_query", e.field, e.reason))?;
    state.config().settle(&mut query);
    let store = state.store();
    store.complete()?;
    let mut answer: Report = store.call(move |store| store.report(&query)).await?;
    if let Some(table) = &table {
        answer.tables.retain(|t| &t.name == table);
        if answer.tables.is_empty() {
            return Err(ApiError::bad(
                "invalid_query",
                "table",
                format!("the report {name} has no table {table:?}"),
            ));
        }
    }
    if !csv {
        return Ok(Json(answer).into_response());
    }
    let file = match &table {
        Some(table) => format!("attachment; filename=\"{name}-{table}.csv\""),
        None => format!("attachment; filename=\"{name}.csv\""),
    };
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (CONTENT_DISPOSITION, file),
        ],
        answer.to_csv(),
    )
        .into_response())
}
