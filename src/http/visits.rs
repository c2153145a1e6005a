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
use crate::policy::{Resource, ResourceKind};
use crate::recording::timeline::RecordingState;
use crate::visit::VisitId;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/visits/{id}/recording-state", put(set_state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRequest {
    state: RecordingState,
    reason: String,
}

/// Who may pause is the policy's answer for `visit.recording_state.set` (the visit's assigned nurse; a service
/// whose token carries `recording:pause-others`); a refusal is audited there.
async fn set_state(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<StateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let visit = VisitId::parse(&id);
    let resource = match &visit {
        Some(v) => app.video.resource(v),
        None => Resource::new(ResourceKind::Visit, Some("invalid".into())),
    };
    let proof = app
        .authorize_for(
            &caller.principal,
            "visit.recording_state.set",
            &resource,
            visit,
            Some(&caller.request_id),
        )
        .await
        .map_err(|_| ApiError::Forbidden("you may not pause this visit's recording".into()))?
        .transpose()
        .ok_or(ApiError::NotFound)?;
    let action = match req.state {
        RecordingState::Paused => "recording.pause",
        RecordingState::Active => "recording.resume",
    };
    let visit = proof.resource().to_string();
    match app
        .video
        .set_recording_state(&proof, req.state, &req.reason)
        .await
    {
        Ok(notice) => {
            app.audit
                .record_or_log(
                    AuditEvent::new(action, format!("visit:{visit}"), Outcome::Success)
                        .by(&caller.principal)
                        .reason(req.reason.trim())
                        .request(Some(&caller.request_id)),
                )
                .await;
            Ok(Json(json!({ "visit_id": visit, "recording": notice })))
        }
        Err(e) => {
            if e.is_access_attempt() {
                app.audit
                    .record_or_log(
                        AuditEvent::new(action, format!("visit:{visit}"), Outcome::Denied)
                            .by(&caller.principal)
                            .reason(e.to_string())
                            .request(Some(&caller.request_id)),
                    )
                    .await;
            }
            Err(e.into())
        }
    }
}
