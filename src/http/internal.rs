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

pub fn router(app: AppState) -> Router {
    Router::new().route(ROUTING_PATH, post(routing)).with_state(app)
}

/// A routing call forwarded by a node that does not lead.
async fn routing(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !app
        .cluster
        .verify(header(NODE_HEADER), ROUTING_PATH, header(SIGNATURE_HEADER), &body)
    {
        tracing::warn!("unsigned or mis-signed node-to-node request refused");
        return (StatusCode::UNAUTHORIZED, "signature required").into_response();
    }
    match serde_json::from_slice::<RoutingCommand>(&body) {
        Ok(command) => axum::Json(app.messaging.execute(command).await).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
