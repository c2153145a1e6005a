//! Audit trail endpoints for compliance officers: page through events and verify the chain. Reading the trail
//! is itself audited.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::clock::timestamp_secs as rfc3339;
use crate::policy::{Resource, ResourceKind};

const PAGE: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit/events", get(events))
        .route("/api/v1/audit/verify", get(verify))
        .route("/api/v1/alerts", get(alerts))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    /// How many days back (1–90; default 7).
    days: Option<i64>,
}

/// The alerts the broker raised (`alert.*` events, newest first): when, what kind, its key and what it says.
async fn alerts(
    State(app): State<AppState>,
    caller: Caller,
    q: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let resource = Resource::new(ResourceKind::AuditLog, None);
    app.authorize(
        &caller.principal,
        "audit.read",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    let days = match q {
        Ok(Query(q)) => q.days.unwrap_or(7),
        Err(_) => 0,
    };
    if !(1..=90).contains(&days) {
        return Err(ApiError::BadRequest(
            "invalid_days",
            "days: a whole number from 1 to 90".into(),
        ));
    }
    let since = crate::clock::now_ms() - days * 86_400_000;
    let mut rows = app.db.alert_events_since(since).await?;
    rows.reverse();
    app.audit
        .record(
            AuditEvent::new("audit.read", resource.audit_name(), Outcome::Success)
                .by(&caller.principal)
                .reason("alerts")
                .request(Some(&caller.request_id)),
        )
        .await?;
    let list: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq, "at": rfc3339(r.at_ms), "kind": r.action.trim_start_matches("alert."),
                "key": r.resource.trim_start_matches("alert:"), "detail": r.reason,
            })
        })
        .collect();
    Ok(Json(json!({ "alerts": list })))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn events(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let resource = Resource::new(ResourceKind::AuditLog, None);
    app.authorize(
        &caller.principal,
        "audit.read",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    let limit = q.limit.unwrap_or(100).clamp(1, PAGE);
    let rows = app.db.audit_events(q.after.unwrap_or(0), limit).await?;
    app.audit
        .record(
            AuditEvent::new("audit.read", resource.audit_name(), Outcome::Success)
                .by(&caller.principal)
                .request(Some(&caller.request_id)),
        )
        .await?;
    let events: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq, "at": rfc3339(r.at_ms), "request_id": r.request_id, "actor": r.actor,
                "role": r.role, "action": r.action, "resource": r.resource, "outcome": r.outcome,
                "reason": r.reason, "prev_hash": r.prev_hash, "hash": r.hash,
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}

async fn verify(State(app): State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let resource = Resource::new(ResourceKind::AuditLog, None);
    app.authorize(
        &caller.principal,
        "audit.verify",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    let outcome = crate::audit::verify::verify_stored(&app.db).await?;
    Ok(Json(match outcome {
        Ok(summary) => json!({ "intact": true, "events": summary.events, "head_hash": summary.head_hash }),
        Err(br) => json!({ "intact": false, "first_bad_seq": br.seq(), "problem": br.to_string() }),
    }))
}
