//! Scheduled reports over HTTP (compliance officers, `audit.report`): `GET /api/v1/reports/scheduled` lists
//! what the schedules produced, newest first; `…/{id}` downloads the signed file as stored (audited as a report
//! read); `…/{id}/verify` checks it (digest, signature, chain head) without anyone downloading it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::error::ApiError;
use super::super::extract::Caller;
use crate::app::AppState;
use crate::audit::evidence::EvidenceError;
use crate::audit::{AuditEvent, Outcome, checkpoint};
use crate::clock::timestamp;
use crate::store::ScheduledReportRow;

impl From<EvidenceError> for ApiError {
    fn from(e: EvidenceError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

async fn row(app: &AppState, id: &str) -> Result<ScheduledReportRow, ApiError> {
    app.db.scheduled_report(id).await?.ok_or(ApiError::NotFound)
}

fn listed(app: &AppState, r: &ScheduledReportRow) -> Value {
    // The zone whose days the period follows (shown in it); a schedule since removed shows UTC.
    let zone = app
        .config
        .reports
        .schedules
        .iter()
        .find(|s| s.name == r.schedule)
        .and_then(|s| s.time_zone.clone());
    json!({
        "time_zone": zone,
        "id": r.id, "schedule": r.schedule, "report": r.report,
        "from": timestamp(r.period_from), "to": timestamp(r.period_to),
        "executed_at": timestamp(r.executed_at), "head_seq": r.head_seq,
        "sha256": r.sha256, "bytes": r.bytes, "key_id": r.key_id,
    })
}

pub async fn list(State(app): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    super::may_report(&app, &caller).await?;
    let rows = app.db.scheduled_reports(200).await?;
    let schedules: Vec<Value> = app
        .config
        .reports
        .schedules
        .iter()
        .map(|s| json!({"name": s.name, "report": s.report, "every": s.every, "time_zone": s.time_zone}))
        .collect();
    Ok(Json(json!({
        "schedules": schedules,
        "reports": rows.iter().map(|r| listed(&app, r)).collect::<Vec<_>>(),
    })))
}

pub async fn file(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    super::may_report(&app, &caller).await?;
    let r = row(&app, &id).await?;
    let bytes = app.evidence.file(&r).await?;
    app.audit
        .record(
            AuditEvent::new("audit.report", format!("report:{}", r.id), Outcome::Success)
                .reason(format!("scheduled {} {}", r.schedule, timestamp(r.period_from)))
                .by(&caller.principal)
                .request(Some(&caller.request_id)),
        )
        .await?;
    let name = format!("attachment; filename=\"{}\"", r.object_key);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    )
        .into_response())
}

pub async fn verify(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    super::may_report(&app, &caller).await?;
    let r = row(&app, &id).await?;
    let signer = checkpoint::existing_signer(&app.config).map_err(|e| ApiError::Internal(e.to_string()))?;
    let keys = checkpoint::trusted_public_keys(&app.config, signer.as_ref());
    let check = app.evidence.check(&r, &keys).await?;
    Ok(Json(json!({"report": listed(&app, &r), "check": check})))
}
