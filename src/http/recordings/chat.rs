//! The chat a recorded visit came from, read beside the recording: the nurse's wrap-up and the transcript, each
//! for whoever the policy grants it on the recording (compliance officers; not break-glass), each read audited
//! on its own with its reason and outcome. The messages are decrypted for the response only.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::json;

use super::{ApiError, Reason, audit, reason, viewable};
use crate::app::AppState;
use crate::audit::Outcome;
use crate::http::extract::Caller;
use crate::messaging::MessagingError;

fn unavailable(e: MessagingError) -> ApiError {
    match e {
        MessagingError::Store(_) => ApiError::Unavailable("storage_unavailable"),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Audits one read under `action` with its reason: a success, or a failure when the read failed.
async fn audit_read(app: &AppState, caller: &Caller, action: &str, resource: String, why: &str, ok: bool) {
    let outcome = if ok { Outcome::Success } else { Outcome::Failure };
    audit(app, caller, action, resource, outcome, why).await;
}

/// The nurse's wrap-up (disposition and notes) of the chat the recorded visit came from, for whoever the
/// policy grants `conversation.wrap_up.view` on the recording (compliance officers; not break-glass); each read
/// is audited with its reason and outcome.
pub(super) async fn wrap_up(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let proof = viewable(&app, &caller, &id, "conversation.wrap_up.view").await?;
    let why = reason(&q)?;
    let resource = format!("recording:{}", proof.resource().id);
    let read = app.messaging.wrap_up_of_recording(&proof).await;
    audit_read(
        &app,
        &caller,
        "conversation.wrap_up.view",
        resource,
        &why,
        read.is_ok(),
    )
    .await;
    let saved = read.map_err(unavailable)?;
    let Some(saved) = saved else {
        return Ok(Json(json!({ "wrap_up": null })));
    };
    let name = app.db.staff_display_name(saved.nurse.as_str()).await?;
    Ok(Json(json!({ "wrap_up": {
        "disposition": saved.wrap_up.disposition,
        "notes": saved.wrap_up.notes,
        "nurse": saved.nurse,
        "nurse_name": name,
        "at": crate::clock::timestamp(saved.at_ms),
    }})))
}

/// The chat's messages in order, each with who sent it (by role) and when (`conversation.transcript.view`).
pub(super) async fn transcript(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let proof = viewable(&app, &caller, &id, "conversation.transcript.view").await?;
    let why = reason(&q)?;
    let resource = format!("recording:{}", proof.resource().id);
    let read = app.messaging.transcript_of_recording(&proof).await;
    audit_read(
        &app,
        &caller,
        "conversation.transcript.view",
        resource,
        &why,
        read.is_ok(),
    )
    .await;
    let Some(messages) = read.map_err(unavailable)? else {
        return Ok(Json(json!({ "messages": null })));
    };
    let list: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            json!({
                "seq": m.seq,
                "sender_role": m.sender_role,
                "body": m.body.expose(),
                "at": crate::clock::timestamp(m.at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "messages": list })))
}
