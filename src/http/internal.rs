//! The internal listener (`cluster.internal_listen`): what other nodes of the cluster call, never served on the
//! public listener. Every request carries the calling node's name and an HMAC of its body under the cluster key
//! and route (`cluster::SIGNATURE_HEADER`); anything else is refused before it is parsed.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::ws::{
    Connection, Forwarded, LiveOf, SocketClosed, VIDEO_CLOSED_PATH, VIDEO_LIVE_PATH, VIDEO_PATH,
};
use crate::app::AppState;
use crate::cluster::{NODE_HEADER, SIGNATURE_HEADER};
use crate::messaging::routing::{ROUTING_PATH, RoutingCommand};
use crate::visit::placement::{ADOPT_PATH, Adoption};

/// Where `examroom drain` asks a node to drain and stop.
pub const DRAIN_PATH: &str = "/internal/v1/drain";

pub fn router(app: AppState) -> Router {
    Router::new()
        .route(ROUTING_PATH, post(routing))
        .route(DRAIN_PATH, post(drain))
        .route(VIDEO_PATH, post(video))
        .route(VIDEO_CLOSED_PATH, post(video_socket_closed))
        .route(VIDEO_LIVE_PATH, post(video_live))
        .route(ADOPT_PATH, post(adopt))
        .with_state(app)
}

/// A participant's video frame, relayed by the node holding their socket to this node, the visit's host.
async fn video(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&app, &headers, VIDEO_PATH, &body) {
        return (StatusCode::UNAUTHORIZED, "signature required").into_response();
    }
    let forwarded: Forwarded = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let conn = Connection {
        principal: forwarded.principal,
        request_id: forwarded.request_id,
    };
    axum::Json(super::ws::video::handle_here(&app, &conn, forwarded.frame).await).into_response()
}

/// A relayed socket closed: its connections here close (as `video_leave` would).
async fn video_socket_closed(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&app, &headers, VIDEO_CLOSED_PATH, &body) {
        return (StatusCode::UNAUTHORIZED, "signature required").into_response();
    }
    match serde_json::from_slice::<SocketClosed>(&body) {
        Ok(c) => {
            app.video.socket_closed(&c.request_id).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// What a socket that opened on another node must hear about its person's visits here.
async fn video_live(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&app, &headers, VIDEO_LIVE_PATH, &body) {
        return (StatusCode::UNAUTHORIZED, "signature required").into_response();
    }
    match serde_json::from_slice::<LiveOf>(&body) {
        Ok(l) => axum::Json(app.video.live_of(&l.subject)).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
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
    // The request names its target: a copy replayed to another node within the signature's window is refused.
    let target: Option<String> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["node"].as_str().map(str::to_string));
    if target.as_deref() != Some(app.cluster.node_id()) {
        return (StatusCode::BAD_REQUEST, "this request names another node").into_response();
    }
    app.audit
        .record_or_log(
            crate::audit::AuditEvent::new(
                "cluster.drain",
                format!("node:{}", app.cluster.node_id()),
                crate::audit::Outcome::Success,
            )
            .actor("cli", crate::auth::Role::System),
        )
        .await;
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

/// Another node hands this one a visit (it drains) or asks it to adopt one whose host died.
async fn adopt(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&app, &headers, ADOPT_PATH, &body) {
        return (StatusCode::UNAUTHORIZED, "signature required").into_response();
    }
    let adoption: Adoption = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    // A node that is stopping takes no visit: the caller picks another.
    if app.is_draining() {
        return axum::Json(serde_json::json!({ "adopted": false })).into_response();
    }
    match app.video.adopt(adoption).await {
        Ok(adopted) => axum::Json(serde_json::json!({ "adopted": adopted })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "visit not adopted");
            (StatusCode::SERVICE_UNAVAILABLE, "not adopted").into_response()
        }
    }
}
