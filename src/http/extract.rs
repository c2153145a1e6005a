//! Authentication as an extractor: a handler that takes a [`Caller`] runs only for an authenticated request.
//! Staff present the session cookie; the patient widget presents its session token as a bearer; integrations
//! present a client-credentials JWT. A refused credential is audited and counted before the 401 goes out.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use secrecy::SecretString;

use super::error::ApiError;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::{AuthError, Principal, Role};
use crate::ids::{RequestId, SubjectId};

/// The authenticated caller of a request, with the request's id for audit events.
pub struct Caller {
    pub principal: Principal,
    pub request_id: RequestId,
}

/// The request id the observability middleware assigned.
pub fn request_id(parts: &Parts) -> RequestId {
    parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(RequestId::random)
}

/// The caller's address as a rate-limit key: see [`client_ip`]; an IPv6 caller is keyed by its /64 (one
/// subscriber's prefix: a client must not get a fresh bucket per address it picks).
pub fn client_address(app: &AppState, parts: &Parts) -> String {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    match client_ip(peer, &forwarded, &app.config.server.trusted_proxies) {
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(ip) => ip.to_string(),
        None => "unknown".to_string(),
    }
}

/// The TCP peer, unless it is one of `trusted` proxies: then `X-Forwarded-For` is read from the right (each
/// trusted proxy appends the address it received from), skipping further trusted proxies, and the first address
/// no trusted proxy vouches for is the client. An entry that is not an address ends the walk at the last proxy
/// (what is left of it was written by the client and proves nothing).
fn client_ip(
    peer: Option<std::net::IpAddr>,
    forwarded: &[&str],
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let trusted_ip = |ip: &std::net::IpAddr| trusted.contains(&ip.to_canonical());
    let mut client = peer.map(|p| p.to_canonical())?;
    for entry in forwarded.iter().rev() {
        if !trusted_ip(&client) {
            break;
        }
        match entry.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => client = ip.to_canonical(),
            Err(_) => break,
        }
    }
    Some(client)
}

/// Takes one token of a rate-limit class (`[limits]`) for `key`; a refusal is counted and becomes a 429 with
/// `Retry-After`. Not audited: a flood must not be able to flood the audit chain too.
pub fn rate_limit(app: &AppState, class: crate::limits::Class, key: &str) -> Result<(), ApiError> {
    app.limits.check(class, key).map_err(|limited| {
        app.metrics
            .rate_limited
            .with_label_values(&[class.as_str()])
            .inc();
        tracing::info!(class = class.as_str(), "rate limited");
        ApiError::from(limited)
    })
}

pub fn cookie_name(tls: bool) -> &'static str {
    // The __Host- prefix makes the browser refuse the cookie unless it is Secure, host-only and path=/.
    if tls {
        "__Host-examroom_session"
    } else {
        "examroom_session"
    }
}

pub fn session_cookie(parts: &Parts, tls: bool) -> Option<SecretString> {
    let name = cookie_name(tls);
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| SecretString::from(v.to_string()))
}

pub fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let request_id = request_id(parts);
        let (kind, result) = authenticate(parts, app).await;
        match result {
            Ok(principal) => Ok(Caller {
                principal,
                request_id,
            }),
            Err(e) => {
                let reason = e.reason_code();
                app.metrics.auth_failures.with_label_values(&[kind, reason]).inc();
                let route = parts
                    .extensions
                    .get::<axum::extract::MatchedPath>()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_else(|| "unmatched".into());
                app.audit
                    .record_or_log(
                        AuditEvent::new("auth.request", format!("route:{route}"), Outcome::Denied)
                            .reason(reason)
                            .request(Some(&request_id)),
                    )
                    .await;
                Err(ApiError::from(e))
            }
        }
    }
}

async fn authenticate(parts: &Parts, app: &AppState) -> (&'static str, Result<Principal, AuthError>) {
    if let Some(token) = bearer(parts) {
        // A JWT (three dot-separated parts) is an integration's access token; anything else is a session token.
        if token.split('.').count() == 3 {
            let Some(verifier) = &app.service_tokens else {
                return ("service", Err(AuthError::MissingCredentials));
            };
            let result = verifier
                .verify(&token)
                .await
                .map_err(AuthError::from)
                .map(|claims| {
                    let scopes = claims.scopes();
                    let subject = claims
                        .other
                        .get("client_id")
                        .and_then(|c| c.as_str())
                        .map(str::to_string)
                        .unwrap_or(claims.sub);
                    Principal {
                        subject: SubjectId::new(subject),
                        roles: vec![Role::Service],
                        skills: Vec::new(),
                        scopes,
                        session: None,
                        display_name: None,
                        birthdate: None,
                    }
                });
            return ("service", result);
        }
        let result = app
            .sessions
            .resolve(&SecretString::from(token))
            .await
            .map(|s| s.principal);
        return ("session", result);
    }
    match session_cookie(parts, app.config.is_tls()) {
        Some(cookie) => (
            "session",
            app.sessions.resolve(&cookie).await.map(|s| s.principal),
        ),
        None => ("none", Err(AuthError::MissingCredentials)),
    }
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_read_from_the_right() {
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // No proxy in front: the header is the client's own words.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), &["1.1.1.1"], &proxies),
            Some(ip("203.0.113.9"))
        );
        // One proxy: the last entry it appended.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &["6.6.6.6", "203.0.113.9"], &proxies),
            Some(ip("203.0.113.9"))
        );
        // Two proxies in a chain: walk past the second.
        let chain = ["6.6.6.6", "203.0.113.9", "10.0.0.2"];
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &chain, &proxies),
            Some(ip("203.0.113.9"))
        );
        // Garbage where the proxy's entry should be: stop at the proxy rather than believe what precedes it.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &["6.6.6.6", "unknown"], &proxies),
            Some(ip("10.0.0.1"))
        );
        // A proxy seen through an IPv4-mapped IPv6 socket is still the proxy.
        assert_eq!(
            client_ip(Some(ip("::ffff:10.0.0.1")), &["203.0.113.9"], &proxies),
            Some(ip("203.0.113.9"))
        );
    }
}
