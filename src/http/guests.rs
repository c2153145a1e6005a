//! `POST /api/v1/guest-sessions` `{"token": "…", "name": "…"}`: a family member or caregiver opens the one-time
//! link a patient shared. The token travels in this request's body (the link carries it in its fragment, which
//! browsers never send), so no URL, access log or audit field ever holds it. A valid token is used up: the
//! guest gets a session bound to that visit and waits in its lobby until the nurse admits them. Each arrival and
//! each refused link is audited.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{client_address, rate_limit, request_id};
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Role;
use crate::auth::session::{NewSession, SessionKind};
use crate::clock::now_ms;

/// A guest's session lasts the visit at most this long (a visit's guest list lives with the visit anyway).
const GUEST_SESSION_MS: i64 = 4 * 3600 * 1000;
/// A guest's page without its socket for this long (closed, or a phone put away) loses its session.
const GUEST_IDLE_MS: i64 = 10 * 60 * 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/guest-sessions", post(arrive))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arrive {
    token: SecretString,
    name: String,
}

#[derive(Serialize)]
struct Arrived {
    session_token: String,
    visit_id: String,
    /// Their opaque id in the visit's guest list (`video_party`), so their page can tell them from the others.
    guest_id: String,
    expires_at: String,
}

async fn arrive(
    State(app): State<AppState>,
    parts: Parts,
    body: Result<Json<Arrive>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    // Per address before the token is looked at, on the patient sessions' budget: a flood of guesses costs
    // neither the audit chain nor the visits' lock.
    rate_limit(
        &app,
        crate::limits::Class::PatientSessionPerAddress,
        &client_address(&app, &parts),
    )?;
    let Json(req) = body?;
    let rid = request_id(&parts);
    let arrival = match app.video.redeem(&req.token, &req.name).await {
        Ok(a) => a,
        Err(e) => {
            // Never the token, nor what was typed as a name: only why.
            app.audit
                .record_or_log(
                    AuditEvent::new("visit.guest_arrived", "visit:unknown", Outcome::Denied)
                        .actor("guest", Role::Guest)
                        .reason(e.code())
                        .request(Some(&rid)),
                )
                .await;
            return Err(e.into());
        }
    };
    let expires_at_ms = now_ms() + GUEST_SESSION_MS;
    let created = app
        .sessions
        .create(NewSession {
            kind: SessionKind::Guest,
            subject: arrival.guest.clone(),
            roles: vec![Role::Guest],
            skills: Vec::new(),
            display_name: Some(arrival.name),
            birthdate: None,
            expires_at_ms,
            idle_timeout_ms: Some(GUEST_IDLE_MS),
        })
        .await;
    let (session, token) = match created {
        Ok(created) => created,
        Err(e) => {
            // No session, no guest: the place in the lobby is given back (the link stays used).
            app.video.arrival_failed(&arrival.visit, &arrival.guest).await;
            return Err(e.into());
        }
    };
    app.audit
        .record_or_log(
            AuditEvent::new(
                "visit.guest_arrived",
                format!("visit:{}", arrival.visit),
                Outcome::Success,
            )
            .by(&session.principal)
            .reason("opened the patient's one-time link; waiting in the lobby")
            .request(Some(&rid)),
        )
        .await;
    let body = Arrived {
        session_token: token.expose_secret().to_string(),
        visit_id: arrival.visit.to_string(),
        guest_id: session.principal.subject.as_str().to_string(),
        expires_at: crate::clock::timestamp_secs(expires_at_ms),
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}
