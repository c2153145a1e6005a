//! The supervisor's board: per queue the waiting count (and emergency flags), longest wait, staffed and ready
//! nurses and abandonment; per nurse her name, presence, chats held and skills. No patient data.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppState;
use crate::policy::{Resource, ResourceKind};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/queues/stats", get(stats))
}

async fn stats(State(app): State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let resource = Resource::new(ResourceKind::Queue, None);
    app.authorize(
        &caller.principal,
        "queue.stats.read",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    let (queues, nurses) = app
        .messaging
        .queue_stats()
        .await
        .map_err(|_| ApiError::Unavailable("routing_unavailable"))?;
    let mut board = Vec::new();
    for n in nurses {
        let name = app.db.staff_display_name(n.nurse.as_str()).await?;
        board.push(json!({
            "nurse": n.nurse, "name": name, "presence": n.presence, "chats": n.chats,
            "offered": n.offered, "connected": n.connected, "skills": n.skills,
        }));
    }
    Ok(Json(json!({ "queues": queues, "nurses": board })))
}
