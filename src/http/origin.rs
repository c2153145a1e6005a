//! Cross-site requests. A page on another site can make the browser send the staff session cookie (a sibling
//! subdomain is same-site, so SameSite=Lax does not stop it), so every request that carries the session cookie
//! and can change something — any method but GET, HEAD and OPTIONS, and the socket upgrade (a GET that opens a
//! live channel to the nurse's chats) — must come from the broker's own origin or a configured portal origin.
//! Browsers name the origin on all of these; a request with no `Origin` header is not a browser's cross-site
//! request and passes. Bearer-token clients carry no cookie and are not affected. A refusal is a 403 JSON error
//! and an audit event attributed to the session's owner.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::session_cookie;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::ids::RequestId;

/// Whether `origin` (an `Origin` header's value) may use the session cookie.
fn allowed(app: &AppState, origin: &str) -> bool {
    let own = url::Url::parse(&app.config.server.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    origin == own
        || app
            .config
            .server
            .portal_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
}

pub async fn same_origin(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) || upgrade;
    let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if changes
        && let Some(origin) = origin
        && !allowed(&app, origin)
        && let Some(cookie) = session_cookie(&parts, app.config.is_tls())
    {
        let mut event = AuditEvent::new(
            "http.cross_site",
            format!("route:{}", parts.uri.path()),
            Outcome::Denied,
        )
        .reason("a cookie-authenticated request from another origin")
        .request(parts.extensions.get::<RequestId>());
        if let Ok(session) = app.sessions.resolve(&cookie).await {
            event = event.by(&session.principal);
        }
        app.audit.record_or_log(event).await;
        return ApiError::Forbidden("this origin may not use your session; sign in on this site".into())
            .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
