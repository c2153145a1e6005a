//! Conversations over HTTP, for the supervisor's board: the chats in progress (no patient data: reference,
//! queue, state, nurse, times, the emergency flag, and whether the policy lets this caller read it) and one
//! chat's transcript, read-only. Reading a transcript is PHI access: the policy decides (`conversation.read`;
//! the built-in policy lets a supervisor read a chat only while it is live) and every read by anyone but the
//! patient is audited. The decision is `App::conversation_access`, the socket's too, so both paths ask the same
//! question.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppState;
use crate::app::access::AccessError;
use crate::clock::now_ms;
use crate::ids::ConversationId;
use crate::policy::{Resource, ResourceKind};
use crate::waiting_room::EMERGENCY_BOOST;

/// At most this many messages per read; the caller pages on with `after_seq`.
const PAGE: i64 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/conversations", get(live))
        .route("/api/v1/conversations/{id}/messages", get(messages))
}

/// The chats not yet ended, for whoever may see the queues' board (`queue.stats.read`), each saying whether
/// this caller may read it. Names of patients are not here; the reference is what staff quote.
async fn live(State(app): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let p = &caller.principal;
    app.authorize(
        p,
        "queue.stats.read",
        &Resource::new(ResourceKind::Queue, None),
        Some(&caller.request_id),
    )
    .await?;
    let now = now_ms();
    let mut chats = Vec::new();
    let live = app
        .messaging
        .live_chats()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    for (c, nurse) in live {
        let resource = Resource::new(ResourceKind::Conversation, Some(c.id.to_string()))
            .owned_by(c.patient.clone())
            .live(true);
        let since = c.assigned_at.unwrap_or(c.enqueued_at);
        chats.push(json!({
            "conversation_id": c.id, "reference": c.reference, "queue": c.queue, "state": c.state.as_str(),
            "nurse": nurse, "seconds": (now - since).max(0) / 1000,
            "emergency": c.priority_boost >= EMERGENCY_BOOST,
            "readable": app.policy.permits(p, "conversation.read", &resource),
        }));
    }
    Ok(Json(json!({ "chats": chats })))
}

/// The query of a transcript read. Taken as text so a bad value gets the API's own error, not the framework's.
#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after_seq: Option<String>,
}

impl After {
    fn seq(&self) -> Result<i64, ApiError> {
        match self.after_seq.as_deref() {
            None | Some("") => Ok(0),
            Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::BadRequest(
                    "bad_after_seq",
                    "after_seq must be a whole number, 0 or more".into(),
                )
            }),
        }
    }
}

/// One chat's messages after `after_seq`, read-only, decrypted for a caller the policy lets read it.
async fn messages(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(after): Query<After>,
) -> Result<Json<Value>, ApiError> {
    let after_seq = after.seq()?;
    let id = ConversationId::new(id);
    let proof = match app
        .conversation_access(&caller.principal, &caller.request_id, &id, "conversation.read")
        .await
    {
        Ok(proof) => proof,
        Err(AccessError::Forbidden) => {
            return Err(ApiError::Forbidden(
                "you have no access to this conversation".into(),
            ));
        }
        Err(AccessError::Messaging(e)) => return Err(ApiError::Internal(e.to_string())),
    };
    let c = proof.resource();
    let messages = app
        .messaging
        .history(&proof, after_seq, PAGE)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // Audited before anything is shown (fails closed: no audit event, no transcript): the opening read, and
    // each later one that brings messages (a board polling a quiet chat writes nothing).
    if after_seq == 0 || !messages.is_empty() {
        app.audit_transcript_read(&caller.principal, &caller.request_id, &proof)
            .await?;
    }
    let last = messages.last().map_or(after_seq, |m| m.seq);
    let list: Vec<Value> = messages
        .into_iter()
        .map(|m| json!({ "seq": m.seq, "sender_role": m.sender_role, "body": m.body.expose(), "at_ms": m.at_ms }))
        .collect();
    Ok(Json(json!({
        "conversation_id": c.id, "reference": c.reference, "queue": c.queue, "state": c.state.as_str(),
        "messages": list, "last_seq": last, "more": list.len() as i64 == PAGE || last < c.last_seq,
    })))
}
