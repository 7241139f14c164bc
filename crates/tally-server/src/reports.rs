//! `GET /api/v1/reports/{name}`: the reports, as JSON, for the admin.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use tally_report::{Report, ReportName};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) async fn report(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Report>, ApiError> {
    let report = ReportName::parse(&name).ok_or_else(|| {
        let known: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::NotFound(format!(
            "there is no report {name:?}; reports: {}",
            known.join(", ")
        ))
    })?;
    let query = tally_report::Query::from_params(report, &params)
        .map_err(|e| ApiError::bad("invalid_query", e.field, e.reason))?;
    let store = state.store().clone();
    let answer = tokio::task::spawn_blocking(move || store.report(&query))
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .map_err(|e| match e {
            tally_store::StoreError::Invalid(reason) => ApiError::bad("invalid_query", "", reason),
            other => ApiError::Unavailable(Box::new(other)),
        })?;
    Ok(Json(answer))
}
