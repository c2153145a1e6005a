//! Sign-in and session endpoints: staff login/callback/logout through the workforce provider, patient session
//! creation from the portal's ID token, and `GET /api/v1/me`.

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{Caller, bearer, client_address, cookie_name, rate_limit, request_id, session_cookie};
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::session::NewSession;
use crate::auth::staff::PendingLogin;
use crate::auth::{AuthError, Role, SessionKind};
use crate::clock::now_ms;
use crate::ids::{RequestId, SubjectId};
use crate::limits::Class;
use crate::pii::{Pii, pseudonym};
use crate::policy::{Resource, ResourceKind};
use crate::store::LoginRow;

/// A sign-in must come back from the provider within this time.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/api/v1/patient/sessions", post(create_patient_session))
        .route("/api/v1/sessions/current", axum::routing::delete(end_session))
        .route("/api/v1/me", get(me))
}

fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Only same-site paths are accepted as post-login destinations (no open redirect).
fn safe_return_to(r: Option<&str>) -> String {
    match r {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

async fn login(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Result<Response, ApiError> {
    let (url, pending) = app.staff_sign_in.begin().await?;
    app.db
        .insert_login(&LoginRow {
            state_hash: hash(&pending.state),
            nonce: pending.nonce,
            pkce_verifier: pending.pkce_verifier,
            return_to: safe_return_to(q.return_to.as_deref()),
            created_at: now_ms(),
        })
        .await?;
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(app): State<AppState>,
    parts: Parts,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let rid = request_id(&parts);
    let fail = |reason: &str| {
        AuditEvent::new("auth.sign_in", "session:new", Outcome::Failure)
            .reason(reason)
            .request(Some(&rid))
    };
    let (Some(code), Some(state)) = (q.code, q.state) else {
        let reason = if q.error.is_some() {
            "provider_error"
        } else {
            "missing_code_or_state"
        };
        app.audit.record_or_log(fail(reason)).await;
        return Err(ApiError::BadRequest(
            "sign_in_failed",
            "the provider did not return a code".into(),
        ));
    };
    let login = match app.db.take_login(&hash(&state)).await? {
        Some(l) if now_ms() - l.created_at <= LOGIN_TTL_MS => l,
        _ => {
            app.audit.record_or_log(fail("unknown_or_expired_state")).await;
            return Err(ApiError::BadRequest(
                "sign_in_failed",
                "unknown or expired sign-in; start again".into(),
            ));
        }
    };
    let pending = PendingLogin {
        state,
        nonce: login.nonce,
        pkce_verifier: login.pkce_verifier,
    };
    let identity = match app.staff_sign_in.complete(&code, pending).await {
        Ok(i) => i,
        Err(e) => {
            app.audit.record_or_log(fail(e.reason_code())).await;
            app.metrics
                .auth_failures
                .with_label_values(&["staff", e.reason_code()])
                .inc();
            return Err(ApiError::from(e));
        }
    };
    let staff = app
        .config
        .auth
        .staff
        .as_ref()
        .ok_or(ApiError::Internal("staff auth missing".into()))?;
    // Per person, never per address: a hospital puts every nurse behind one NAT address.
    rate_limit(
        &app,
        Class::StaffSignInPerSubject,
        &pseudonym(identity.subject.as_str()),
    )?;
    let now = now_ms();
    let (session, token) = app
        .sessions
        .create(NewSession {
            kind: SessionKind::Staff,
            subject: identity.subject,
            roles: identity.roles,
            skills: identity.skills,
            display_name: identity.display_name,
            birthdate: None,
            expires_at_ms: now + staff.absolute_lifetime_seconds as i64 * 1000,
            idle_timeout_ms: Some(staff.idle_timeout_seconds as i64 * 1000),
        })
        .await?;
    app.audit
        .record_or_log(
            AuditEvent::new(
                "auth.sign_in",
                format!("session:{}", session.id),
                Outcome::Success,
            )
            .by(&session.principal)
            .request(Some(&rid)),
        )
        .await;
    tracing::info!(user = %pseudonym(session.principal.subject.as_str()), role = %session.principal.primary_role(), "staff signed in");
    let tls = app.config.is_tls();
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        cookie_name(tls),
        token.expose_secret(),
        staff.absolute_lifetime_seconds,
        if tls { "; Secure" } else { "" }
    );
    let mut resp = Redirect::to(&login.return_to).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

async fn logout(State(app): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let tls = app.config.is_tls();
    if let Some(cookie) = session_cookie(&parts, tls)
        && let Ok(session) = app.sessions.resolve(&cookie).await
    {
        end(&app, &session.principal, &session.id, &request_id(&parts)).await?;
    }
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        cookie_name(tls),
        if tls { "; Secure" } else { "" }
    );
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).expect("ASCII cookie"),
    );
    Ok(resp)
}

async fn end(
    app: &AppState,
    principal: &crate::auth::Principal,
    id: &crate::ids::SessionId,
    rid: &RequestId,
) -> Result<(), ApiError> {
    app.sessions.revoke(id).await?;
    app.audit
        .record_or_log(
            AuditEvent::new("auth.sign_out", format!("session:{id}"), Outcome::Success)
                .by(principal)
                .request(Some(rid)),
        )
        .await;
    Ok(())
}

async fn end_session(State(app): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let id = caller.principal.session.clone().ok_or(ApiError::BadRequest(
        "no_session",
        "service credentials have no session to end".into(),
    ))?;
    let resource =
        Resource::new(ResourceKind::Session, Some(id.to_string())).owned_by(caller.principal.subject.clone());
    app.authorize(
        &caller.principal,
        "session.revoke",
        &resource,
        Some(&caller.request_id),
    )
    .await?;
    end(&app, &caller.principal, &id, &caller.request_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct PatientSessionCreated {
    session_token: String,
    session_id: String,
    expires_at: String,
}

/// `POST /api/v1/patient/sessions` with the portal's ID token as bearer.
async fn create_patient_session(State(app): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let rid = request_id(&parts);
    // Per address before the token is even looked at (a flood of forged tokens costs signature checks).
    rate_limit(
        &app,
        Class::PatientSessionPerAddress,
        &client_address(&app, &parts),
    )?;
    let result = match bearer(&parts) {
        None => Err(AuthError::MissingCredentials),
        Some(token) => app.patient_tokens.verify(&token).await.map_err(AuthError::from),
    };
    let claims = match result {
        Ok(c) => c,
        Err(e) => {
            let reason = e.reason_code();
            app.metrics
                .auth_failures
                .with_label_values(&["patient_id_token", reason])
                .inc();
            app.audit
                .record_or_log(
                    AuditEvent::new("auth.patient_session", "session:new", Outcome::Failure)
                        .reason(reason)
                        .request(Some(&rid)),
                )
                .await;
            tracing::info!(reason, "patient ID token refused");
            return Err(ApiError::from(e));
        }
    };
    let subject = SubjectId::new(claims.sub);
    rate_limit(
        &app,
        Class::PatientSessionPerSubject,
        &pseudonym(subject.as_str()),
    )?;
    let patient = app.config.auth.patient.as_ref();
    let max = patient.map_or(3600, |p| p.max_session_seconds) as i64;
    let idle = patient.map_or(600, |p| p.idle_without_socket_seconds) as i64;
    let expires_at_ms = (claims.exp * 1000).min(now_ms() + max * 1000);
    let name = claims
        .other
        .get("name")
        .and_then(|n| n.as_str())
        .map(|n| Pii::new(n.to_string()));
    // OpenID's `birthdate` is `YYYY-MM-DD` (or `YYYY`, or `0000-MM-DD` when the year is withheld); anything else
    // is not shown to the nurse as a verified birth date.
    let birthdate = claims
        .other
        .get("birthdate")
        .and_then(|b| b.as_str())
        .filter(|b| {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
            match b.split('-').collect::<Vec<_>>()[..] {
                [y] => y.len() == 4 && digits(y),
                [y, m, d] => {
                    y.len() == 4 && m.len() == 2 && d.len() == 2 && digits(y) && digits(m) && digits(d)
                }
                _ => false,
            }
        })
        .map(|b| Pii::new(b.to_string()));
    let (session, token) = app
        .sessions
        .create(NewSession {
            kind: SessionKind::Patient,
            subject,
            roles: vec![Role::Patient],
            skills: Vec::new(),
            display_name: name,
            birthdate,
            expires_at_ms,
            idle_timeout_ms: Some(idle * 1000),
        })
        .await?;
    // A patient may hold a few sessions (a phone and a laptop); one more ends the oldest, which is audited.
    let cap = patient.map_or(3, |p| p.max_sessions_per_subject);
    for old in app
        .sessions
        .cap_patient_sessions(&session.principal.subject, &session.id, cap)
        .await?
    {
        app.audit
            .record_or_log(
                AuditEvent::new("auth.session_revoked", format!("session:{old}"), Outcome::Success)
                    .by(&session.principal)
                    .reason("over auth.patient.max_sessions_per_subject: the oldest session ends")
                    .request(Some(&rid)),
            )
            .await;
    }
    app.audit
        .record_or_log(
            AuditEvent::new(
                "auth.patient_session",
                format!("session:{}", session.id),
                Outcome::Success,
            )
            .by(&session.principal)
            .request(Some(&rid)),
        )
        .await;
    tracing::info!(patient = %pseudonym(session.principal.subject.as_str()), "patient session opened");
    let body = PatientSessionCreated {
        session_token: token.expose_secret().to_string(),
        session_id: session.id.to_string(),
        expires_at: crate::clock::timestamp_secs(expires_at_ms),
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

#[derive(Serialize)]
struct Me {
    /// The caller's subject (a staff page finds itself in a visit's participant list by it).
    subject: String,
    roles: Vec<Role>,
    display_name: Option<String>,
    scopes: Vec<String>,
    /// The staff pages this caller may work in (`workspace`, `consult`, `supervisor`, `compliance`, `status`), as the
    /// access policy decides: the pages link to these rather than guess from role names.
    places: Vec<&'static str>,
}

/// Each staff page and what it is for, as an action on a resource: the page is offered to whoever the policy
/// permits that action (a page still asks for every act it shows; this only decides the links).
fn places(app: &AppState, p: &crate::auth::Principal) -> Vec<&'static str> {
    let queue = Resource::new(ResourceKind::Queue, None);
    let system = Resource::new(ResourceKind::System, None);
    let recordings = super::recordings::collection(app);
    let visit = Resource::new(ResourceKind::Visit, None);
    [
        ("workspace", "queue.work", &queue),
        ("consult", "visit.consult_answer", &visit),
        ("supervisor", "queue.stats.read", &queue),
        ("compliance", "recording.list", &recordings),
        ("status", "system.status.read", &system),
    ]
    .into_iter()
    .filter(|(_, action, resource)| app.policy.permits(p, action, resource))
    .map(|(place, ..)| place)
    .collect()
}

async fn me(State(app): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let p = &caller.principal;
    let resource = Resource::new(ResourceKind::Session, p.session.as_ref().map(|s| s.to_string()))
        .owned_by(p.subject.clone());
    if p.session.is_some() {
        app.authorize(p, "session.read", &resource, Some(&caller.request_id))
            .await?;
    }
    Ok(Json(Me {
        subject: p.subject.as_str().to_string(),
        roles: p.roles.clone(),
        display_name: p.display_name.as_ref().map(|n| n.expose().clone()),
        scopes: p.scopes.clone(),
        places: places(&app, p),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn return_to_accepts_only_local_paths() {
        use super::safe_return_to as s;
        assert_eq!(s(Some("/workspace/")), "/workspace/");
        assert_eq!(s(Some("//evil.example")), "/");
        assert_eq!(s(Some("https://evil.example")), "/");
        assert_eq!(s(Some("/\\evil.example")), "/");
        assert_eq!(s(None), "/");
    }
}
