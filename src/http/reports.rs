//! Compliance reports over HTTP (compliance officers only): `GET /api/v1/reports/{report}?from=&to=` with
//! optional `tz` (display only), `format=json|csv`, `head_seq` (recompute as of an earlier chain head) and
//! `exposure_threshold` (default from config); the accounting report takes `patient` (a portal subject). The
//! report is computed before its own read is audited, so the read never changes the report it returns.
//! Scheduled reports (listed, downloaded, verified) are in `scheduled`.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Caller, rate_limit};
use crate::app::AppState;
use crate::audit::reports::{self, ReportError, ReportQuery};
use crate::limits::Class;
use crate::pii::pseudonym;
use crate::policy::{Resource, ResourceKind};

mod scheduled;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reports/{report}", get(report))
        .route("/api/v1/reports/scheduled", get(scheduled::list))
        .route("/api/v1/reports/scheduled/{id}", get(scheduled::file))
        .route("/api/v1/reports/scheduled/{id}/verify", get(scheduled::verify))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    tz: Option<String>,
    format: Option<String>,
    head_seq: Option<i64>,
    /// Overrides `reports.exposure_threshold` (to reproduce a report made under another setting).
    exposure_threshold: Option<u32>,
    /// The accounting report's patient (their portal subject).
    patient: Option<String>,
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        ApiError::BadRequest("invalid_report_query", e.to_string())
    }
}

/// Reports, computed or scheduled, are for compliance officers (`audit.report`), rate-limited per person.
async fn may_report(app: &AppState, caller: &Caller) -> Result<(), ApiError> {
    rate_limit(
        app,
        Class::ReportsPerUser,
        &pseudonym(caller.principal.subject.as_str()),
    )?;
    let resource = Resource::new(ResourceKind::AuditLog, None);
    app.authorize(
        &caller.principal,
        "audit.report",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    Ok(())
}

async fn report(
    State(app): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    may_report(&app, &caller).await?;
    let Query(p) = params.map_err(|_| {
        ApiError::BadRequest(
            "invalid_report_query",
            "parameters: from, to, tz, format, head_seq, exposure_threshold, patient (see the OpenAPI document)"
                .into(),
        )
    })?;
    let (Some(from), Some(to)) = (p.from.as_deref(), p.to.as_deref()) else {
        return Err(ApiError::BadRequest(
            "invalid_report_query",
            "from and to are required (ISO 8601, UTC)".into(),
        ));
    };
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid_report_query",
                "format: json or csv".into(),
            ));
        }
    };
    let q = ReportQuery::new(
        &kind,
        from,
        to,
        p.tz.as_deref(),
        p.exposure_threshold
            .unwrap_or(app.config.reports.exposure_threshold),
    )?
    .with_patient(p.patient.as_deref())?;
    let report = reports::produce(&app.db, &q, p.head_seq).await??;
    app.audit
        .record(
            report
                .read_event()
                .by(&caller.principal)
                .request(Some(&caller.request_id)),
        )
        .await?;
    let head = format!("{} {}", report.chain_head.seq, report.chain_head.hash);
    let mut response = if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.to_csv(),
        )
            .into_response()
    } else {
        Json(&report).into_response()
    };
    if let Ok(v) = head.parse() {
        response.headers_mut().insert("x-examroom-chain-head", v);
    }
    Ok(response)
}
