//! Break-glass: `POST /api/v1/break-glass` `{"resource": "recording:<id>" | "conversation:<id>", "justification":
//! "…"}`. A nurse or supervisor who must see one recording or conversation outside their role (the policy's
//! `break-glass-request` rule) types why; the grant is theirs alone for `policy.break_glass_minutes`, and the
//! policy's `break_glass` condition then lets them read that resource. The grant is audited as
//! `access.break_glass` with the justification as its reason (as every recording access carries its reason), so it
//! reaches the SIEM at once and the compliance officers' exposure report; each use is audited like any access.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::clock::now_ms;
use crate::ids::{ConversationId, RecordingId, random_hex};
use crate::pii::pseudonym;
use crate::policy::{Resource, ResourceKind};

/// Long enough to say what the emergency is; short enough to stay a reason, not a record.
const JUSTIFICATION_CHARS: std::ops::RangeInclusive<usize> = 20..=500;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/break-glass", post(request))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassRequest {
    resource: String,
    justification: String,
}

#[derive(Serialize)]
struct Granted {
    grant_id: String,
    resource: String,
    expires_at: String,
}

async fn request(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<BreakGlassRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let invalid = || {
        ApiError::BadRequest(
            "invalid_resource",
            "resource must be recording:<id> or conversation:<id>".into(),
        )
    };
    let (kind, raw_id) = match req.resource.split_once(':') {
        Some(("recording", id)) => (ResourceKind::Recording, id),
        Some(("conversation", id)) => (ResourceKind::Conversation, id),
        _ => return Err(invalid()),
    };
    // Only ids of the broker's own shape reach the audit trail and the store.
    let id = match kind {
        ResourceKind::Recording => RecordingId::parse(raw_id).map(|r| r.to_string()),
        _ => {
            (raw_id.len() == 32 && raw_id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| raw_id.to_string())
        }
    }
    .ok_or_else(invalid)?;
    let resource = Resource::new(kind, Some(id.clone()));
    app.authorize(
        &caller.principal,
        "break_glass.request",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    let name = resource.audit_name();
    let event = |outcome| {
        AuditEvent::new("access.break_glass", name.clone(), outcome)
            .by(&caller.principal)
            .request(Some(&caller.request_id))
    };
    let justification = req.justification.trim();
    if !JUSTIFICATION_CHARS.contains(&justification.chars().count()) {
        app.audit
            .record_or_log(event(Outcome::Failure).reason("no justification"))
            .await;
        return Err(ApiError::BadRequest(
            "justification_required",
            format!(
                "say why in {} to {} characters",
                JUSTIFICATION_CHARS.start(),
                JUSTIFICATION_CHARS.end()
            ),
        ));
    }
    let exists = match kind {
        ResourceKind::Recording => app.db.recording(&id).await?.is_some(),
        _ => app
            .messaging
            .conversation(&ConversationId::new(id.clone()))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .is_some(),
    };
    if !exists {
        app.audit
            .record_or_log(event(Outcome::Failure).reason("no such resource"))
            .await;
        return Err(ApiError::NotFound);
    }
    // Audited before it exists: a grant the SIEM and the exposure report cannot see must never be live.
    app.audit
        .record(event(Outcome::Success).reason(justification))
        .await?;
    let (grant, now) = (random_hex(16), now_ms());
    let expires_at = now + app.config.policy.break_glass_minutes as i64 * 60_000;
    app.db
        .insert_break_glass(&grant, caller.principal.subject.as_str(), &name, now, expires_at)
        .await?;
    // The justification stays out of the log: it may name the patient.
    tracing::warn!(user = %pseudonym(caller.principal.subject.as_str()), resource = %name, "break-glass access granted");
    let body = Granted {
        grant_id: grant,
        resource: name,
        expires_at: crate::clock::timestamp(expires_at),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
