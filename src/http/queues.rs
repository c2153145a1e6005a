//! Queue statistics for supervisors: waiting counts, longest wait, staffed and ready nurses. No patient data.

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
    let queues = app
        .messaging
        .queue_stats()
        .await
        .map_err(|_| ApiError::Unavailable("routing_unavailable"))?;
    Ok(Json(json!({ "queues": queues })))
}
