//! `GET /api/v1/reports/{name}`: the reports, as JSON, for the admin,
//! less the app's small groups when its settings hide them.

use std::collections::BTreeMap;

use axum::extract::State;
use tally_report::{Report, ReportName};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
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
    let mut query = tally_report::Query::from_params(report, &params)
        .map_err(|e| ApiError::bad("invalid_query", e.field, e.reason))?;
    state.config().settle(&mut query);
    let store = state.store();
    store.complete()?;
    Ok(Json(store.call(move |store| store.report(&query)).await?))
}
