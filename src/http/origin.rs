//! Cross-site requests. A page on another site can make the browser send the staff session cookie (a sibling
//! subdomain is same-site, so SameSite=Lax does not stop it), so every request that carries the session cookie
//! and can change something — any method but GET, HEAD and OPTIONS, and the socket upgrade (a GET that opens a
//! live channel to the nurse's chats) — must come from the broker's own origin. (Not a portal's either: the
//! widget talks to the broker from the broker's origin, and the portal signs patients in with a bearer token,
//! so a script on a portal page has no business with a staff cookie.)
//! Browsers name the origin on all of these, so one with the cookie and no `Origin` is refused too (a client that
//! hides where it comes from gets no benefit of the doubt). Bearer-token clients carry no cookie and are not
//! affected. A refusal is a 403 JSON error
//! and an audit event naming the route template (never the concrete path); the session is not looked up, so a
//! hostile page cannot keep it from idling out. A cookie read of `/api/` that the browser marks as sent from
//! another site (`Sec-Fetch-Site: same-site` or `cross-site`) is refused the same way: it would spend the staff
//! member's rate limits and write audit events in their name.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::session_cookie;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::ids::RequestId;

/// Whether `origin` (an `Origin` header's value) may use the session cookie: the broker's own only.
fn allowed(app: &AppState, origin: &str) -> bool {
    url::Url::parse(&app.config.server.public_url).is_ok_and(|u| u.origin().ascii_serialization() == origin)
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
    // A read of the API is no state change, but one fired from another site (an <img>, a fetch) would spend the
    // staff member's rate limits and write audit events in their name: browsers say where a request comes from.
    let foreign_read = parts.uri.path().starts_with("/api/")
        && parts
            .headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| !matches!(site, "same-origin" | "none"));
    // Without the cookie there is nothing to protect: most requests stop at this header lookup.
    let refused = || (changes && !origin.is_some_and(|o| allowed(&app, o))) || foreign_read;
    if session_cookie(&parts, app.config.is_tls()).is_some() && refused() {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unmatched", |m| m.as_str());
        let event = AuditEvent::new("http.cross_site", format!("route:{route}"), Outcome::Denied)
            .reason(if foreign_read {
                "a cookie-authenticated read sent from another site (Sec-Fetch-Site)"
            } else if origin.is_some() {
                "a cookie-authenticated request from another origin"
            } else {
                "a cookie-authenticated request naming no origin"
            })
            .request(parts.extensions.get::<RequestId>());
        app.audit.record_or_log(event).await;
        return ApiError::Forbidden("this origin may not use your session; sign in on this site".into())
            .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
