//! The internal listener (`cluster.internal_listen`): what other nodes of the cluster call, never served on the
//! public listener. Every request carries the calling node's name and an HMAC of its body under the cluster key
//! and route (`cluster::SIGNATURE_HEADER`); anything else is refused before it is parsed.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::app::AppState;
use crate::cluster::{NODE_HEADER, SIGNATURE_HEADER};
use crate::messaging::routing::{ROUTING_PATH, RoutingCommand};

/// Where `examroom drain` asks a node to drain and stop.
pub const DRAIN_PATH: &str = "/internal/v1/drain";

pub fn router(app: AppState) -> Router {
    Router::new()
        .route(ROUTING_PATH, post(routing))
        .route(DRAIN_PATH, post(drain))
        .with_state(app)
}

fn signed(app: &AppState, headers: &HeaderMap, path: &str, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ok = app
        .cluster
        .verify(header(NODE_HEADER), path, header(SIGNATURE_HEADER), body);
    if !ok {
        tracing::warn!("unsigned or mis-signed node-to-node request refused");
    }
    ok
}

/// `examroom drain`: this node drains and stops, as on SIGTERM (see `App::drain`). Answers at once.
async fn drain(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&app, &headers, DRAIN_PATH, &body) {
        return (StatusCode::UNAUTHORIZED, "signature required").into_response();
    }
    let _ = app.draining.send_replace(true);
    axum::Json(serde_json::json!({ "node": app.cluster.node_id(), "draining": true })).into_response()
}

/// A routing call forwarded by a node that does not lead.
async fn routing(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&app, &headers, ROUTING_PATH, &body) {
        return (StatusCode::UNAUTHORIZED, "signature required").into_response();
    }
    match serde_json::from_slice::<RoutingCommand>(&body) {
        Ok(command) => axum::Json(app.messaging.execute(command).await).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
