//! Secure pause: `PUT /api/v1/visits/{id}/recording-state` `{"state": "paused" | "active", "reason": "…"}`, from
//! the visit's nurse (session cookie) or an integration whose client-credentials token carries the
//! `recording:pause-others` scope (an EMR that pauses while a sensitive record section is open). Idempotent, reason
//! required, audited; both participants are told within the same moment over their sockets.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Role;
use crate::recording::timeline::RecordingState;
use crate::visit::VisitId;
use crate::visit::service::VideoError;

/// The scope an integration needs to pause recordings of visits it is not part of.
pub const PAUSE_SCOPE: &str = "recording:pause-others";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/visits/{id}/recording-state", put(set_state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRequest {
    state: RecordingState,
    reason: String,
}

async fn set_state(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<StateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let resource = format!(
        "visit:{}",
        VisitId::parse(&id)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "invalid".into())
    );
    let service = caller.principal.has_role(Role::Service);
    if service && !caller.principal.scopes.iter().any(|s| s == PAUSE_SCOPE) {
        deny(
            &app,
            &caller,
            &resource,
            "the token lacks the recording:pause-others scope",
        )
        .await;
        return Err(ApiError::Forbidden(format!(
            "the {PAUSE_SCOPE} scope is required"
        )));
    }
    if !service && !caller.principal.has_role(Role::Nurse) {
        deny(
            &app,
            &caller,
            &resource,
            "only the visit's nurse or an integration may pause",
        )
        .await;
        return Err(ApiError::Forbidden(
            "only the visit's nurse may pause its recording".into(),
        ));
    }
    let Some(visit) = VisitId::parse(&id) else {
        deny(&app, &caller, &resource, "unknown visit").await;
        return Err(ApiError::NotFound);
    };
    let role = if service { Role::Service } else { Role::Nurse };
    let action = match req.state {
        RecordingState::Paused => "recording.pause",
        RecordingState::Active => "recording.resume",
    };
    match app
        .video
        .set_recording_state(&caller.principal.subject, role, &visit, req.state, &req.reason)
        .await
    {
        Ok(notice) => {
            app.audit
                .record_or_log(
                    AuditEvent::new(action, resource, Outcome::Success)
                        .by(&caller.principal)
                        .reason(req.reason.trim())
                        .request(Some(&caller.request_id)),
                )
                .await;
            Ok(Json(
                json!({ "visit_id": visit.to_string(), "recording": notice }),
            ))
        }
        Err(VideoError::ReasonRequired) => {
            Err(ApiError::BadRequest("reason_required", "give a reason".into()))
        }
        Err(VideoError::NotRecorded) => Err(ApiError::BadRequest(
            "not_recorded",
            "this visit is not being recorded".into(),
        )),
        Err(e) => {
            deny(&app, &caller, &resource, &e.to_string()).await;
            Err(ApiError::Forbidden("you are not this visit's nurse".into()))
        }
    }
}

async fn deny(app: &AppState, caller: &Caller, resource: &str, reason: &str) {
    app.audit
        .record_or_log(
            AuditEvent::new("recording.state", resource, Outcome::Denied)
                .by(&caller.principal)
                .reason(reason)
                .request(Some(&caller.request_id)),
        )
        .await;
}
