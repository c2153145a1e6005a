//! Operational endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document, and a status summary
//! for operators (no patient data).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppState;
use crate::policy::{Resource, ResourceKind};
use crate::store::Backend;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/system/status", get(status))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    // Stopping: the balancer must send new connections elsewhere while the live visits finish here.
    if app.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        );
    }
    // In a cluster a node that does not hear the others would leave its sockets deaf to them.
    if !app.messaging.bus_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "bus": "not listening" })),
        );
    }
    match app.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}

/// Prometheus metrics; behind `server.metrics_token_file`'s bearer token when one is configured (a deployment
/// must), compared in constant time.
async fn metrics(
    State(app): State<AppState>,
    parts: axum::http::request::Parts,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &app.metrics_token {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        let given = super::extract::bearer(&parts).unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            return Err(ApiError::Unauthorized("metrics_token_required"));
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    ))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::DOCUMENT,
    )
}

async fn status(State(app): State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let resource = Resource::new(ResourceKind::System, None);
    app.authorize(
        &caller.principal,
        "system.status.read",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    let head = app.db.audit_head().await?;
    // Who is in the cluster and who holds what (a single node on SQLite holds everything without leases).
    let cluster = if app.cluster.is_shared() {
        let nodes = app
            .cluster
            .live_nodes()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let leases = app
            .cluster
            .leases()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        json!({
            "node": app.cluster.node_id(),
            "nodes": nodes.iter().map(|n| json!({
                "node": n.node_id, "sockets": n.sockets, "media_addresses": n.media_addresses,
                "heartbeat_age_ms": n.heartbeat_at,
            })).collect::<Vec<_>>(),
            "leases": leases.into_iter().map(|(name, holder)| (name, serde_json::Value::String(holder))).collect::<serde_json::Map<_, _>>(),
        })
    } else {
        json!({ "node": app.cluster.node_id(), "nodes": [], "leases": {} })
    };
    Ok(Json(json!({
        "cluster": cluster,
        "version": env!("CARGO_PKG_VERSION"),
        "database": match app.db.backend() { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
        "uptime_seconds": app.started_at.elapsed().as_secs(),
        "audit_events": head.seq,
        "workers": app.workers.snapshot(),
    })))
}
