//! The HTTP face of the broker: routers per area merged here, with the middleware every request passes
//! through (request id and span, metrics, security headers, cross-site refusal, body limit, JSON errors). Handlers extract,
//! authorize, call the domain and map the result; they hold no business logic.

mod audit;
pub mod auth;
mod break_glass;
mod conversations;
pub mod error;
pub mod extract;
mod guests;
pub mod internal;
mod openapi;
mod origin;
mod pages;
mod queues;
mod recordings;
mod reports;
mod system;
mod visits;
mod ws;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument;

use crate::app::AppState;
use crate::ids::RequestId;
pub use error::ApiError;

pub fn router(app: AppState) -> Router {
    let mut router = Router::new()
        .merge(system::router())
        .merge(auth::router())
        .merge(audit::router())
        .merge(pages::router())
        .merge(ws::router())
        .merge(queues::router())
        .merge(conversations::router())
        .merge(visits::router())
        .merge(guests::router())
        .merge(recordings::router())
        .merge(reports::router())
        .merge(break_glass::router());
    if let Some(idp) = &app.dev_idp {
        router = router
            .merge(pages::dev_portal())
            .nest_service("/dev-idp", crate::dev_idp::router(idp.clone()));
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .layer(RequestBodyLimitLayer::new(app.config.server.max_body_bytes))
        .layer(middleware::from_fn_with_state(app.clone(), origin::same_origin))
        .layer(middleware::from_fn_with_state(app.clone(), security_headers))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app.clone())
}

/// Gives each request an id and a span, counts it, and logs its completion. Only the route *template* is
/// recorded (`/api/v1/visits/{id}`), never the concrete URL, whose path or query could carry identifiers.
async fn observe(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = RequestId::random();
    req.extensions_mut().insert(id.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = resp.status();
    app.metrics
        .http_requests
        .with_label_values(&[method.as_str(), &route, status.as_str()])
        .inc();
    app.metrics
        .http_duration
        .with_label_values(&[method.as_str(), &route])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_millis() as u64,
            "request completed"
        )
    });
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Framework-generated errors (413 from the body limit, 405, extractor rejections) come as plain text; they
/// are rewritten into the JSON error shape so clients parse one format.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !is_plain {
        return resp;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "request_refused",
    };
    // The framework's message quotes the client's input (a query parameter's name, a value) and a client may
    // have typed PHI there, so only the kind of problem is named.
    let message = match code {
        "invalid_request" => "the request's parameters do not match this endpoint (see the OpenAPI document)",
        "internal" => "internal error",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    error::error_body(status, code, message)
}

/// Security headers on every response. Only the patient widget may be framed, and only by the configured
/// portal origins; everything else refuses framing.
async fn security_headers(State(app): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).await;
    let frame_ancestors = if path.starts_with("/widget") && !app.config.server.portal_origins.is_empty() {
        format!("'self' {}", app.config.server.portal_origins.join(" "))
    } else if path.starts_with("/widget") {
        "'self'".to_string()
    } else {
        "'none'".to_string()
    };
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         frame-ancestors {frame_ancestors}"
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !path.starts_with("/widget") {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if app.config.is_tls() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    if (path.starts_with("/api/") || path.starts_with("/auth/")) && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
