//! Recordings for the roles the recording policy lets view them (compliance officers by default): list and
//! download, each call with a reason, each call audited (`recording.list`, `recording.download`). Every other
//! role gets 403 and a denied audit event. Downloads are decrypted on the fly; the stored object stays sealed.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::Caller;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::store::RecordingRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/recordings", get(list))
        .route("/api/v1/recordings/{id}", get(metadata))
        .route("/api/v1/recordings/{id}/stream", get(stream))
        .route("/api/v1/recordings/{id}/access", get(access_history))
        .route("/api/v1/recordings/{id}/download", get(download))
        .route(
            "/api/v1/recordings/{id}/legal-hold",
            axum::routing::put(legal_hold),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: Option<String>,
}

fn reason(q: &Reason) -> Result<String, ApiError> {
    match q.reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() && r.len() <= 500 => Ok(r.to_string()),
        _ => Err(ApiError::BadRequest(
            "reason_required",
            "every access to a recording needs a reason (?reason=…)".into(),
        )),
    }
}

/// May the caller view recordings of this queue under the recording policy?
fn may_view(app: &AppState, caller: &Caller, queue: &str) -> bool {
    app.recording_policies
        .decide(queue, "video")
        .is_some_and(|d| d.viewer_roles.iter().any(|r| caller.principal.has_role(*r)))
}

async fn audit(app: &AppState, caller: &Caller, action: &str, resource: String, outcome: Outcome, why: &str) {
    app.audit
        .record_or_log(
            AuditEvent::new(action, resource, outcome)
                .by(&caller.principal)
                .reason(why)
                .request(Some(&caller.request_id)),
        )
        .await;
}

fn view(r: &RecordingRow) -> serde_json::Value {
    json!({
        "id": r.id,
        "visit_id": r.visit_id,
        "queue": r.queue,
        "policies": r.policies.split(',').collect::<Vec<_>>(),
        "consent": r.consent,
        "state": r.state,
        "started_at": crate::messaging::timestamp(r.started_at),
        "ended_at": r.ended_at.map(crate::messaging::timestamp),
        "retain_until": crate::messaging::timestamp(r.retain_until),
        "legal_hold": r.legal_hold,
        "bytes": r.object_bytes,
        "manifest": r.manifest.as_deref().and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok()),
    })
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let all = app.db.recordings().await?;
    // A caller who may view no queue's recordings at all is refused outright.
    let queues: Vec<String> = app.config.queues().into_iter().map(|q| q.name).collect();
    if !queues.iter().any(|q| may_view(&app, &caller, q)) {
        audit(
            &app,
            &caller,
            "recording.list",
            "recording:*".into(),
            Outcome::Denied,
            "role may not view recordings",
        )
        .await;
        return Err(ApiError::Forbidden("your role may not view recordings".into()));
    }
    let why = reason(&q)?;
    audit(
        &app,
        &caller,
        "recording.list",
        "recording:*".into(),
        Outcome::Success,
        &why,
    )
    .await;
    let visible: Vec<serde_json::Value> = all
        .iter()
        .filter(|r| may_view(&app, &caller, &r.queue))
        .map(view)
        .collect();
    Ok(Json(json!({ "recordings": visible })))
}

async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
) -> Result<Response, ApiError> {
    let safe = if id.len() == 25 && id.starts_with('r') && id[1..].chars().all(|c| c.is_ascii_hexdigit()) {
        id.clone()
    } else {
        "invalid".into()
    };
    let resource = format!("recording:{safe}");
    let row = app.db.recording(&id).await?;
    let Some(row) = row.filter(|r| may_view(&app, &caller, &r.queue)) else {
        audit(
            &app,
            &caller,
            "recording.download",
            resource,
            Outcome::Denied,
            "not a viewer of this recording",
        )
        .await;
        return Err(ApiError::Forbidden("you may not view this recording".into()));
    };
    let why = reason(&q)?;
    let (Some(object_key), "stored") = (row.object_key.clone(), row.state.as_str()) else {
        return Err(ApiError::BadRequest(
            "not_stored",
            "the recording is not stored yet".into(),
        ));
    };
    let opened = crate::recording::session::open_object(
        app.video.recording_objects(),
        app.video.recording_keyring(),
        &row.id,
        &object_key,
        &row.kek_id,
        &row.wrapped_key,
    )
    .await;
    match opened {
        Ok(webm) => {
            audit(
                &app,
                &caller,
                "recording.download",
                resource,
                Outcome::Success,
                &why,
            )
            .await;
            Ok((
                [
                    (header::CONTENT_TYPE, "video/webm".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.webm\"", row.id),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                Body::from(webm),
            )
                .into_response())
        }
        Err(e) => {
            // Fails closed: a missing or wrong key, or a tampered object, yields nothing and is audited.
            audit(
                &app,
                &caller,
                "recording.download",
                resource,
                Outcome::Failure,
                &e.to_string(),
            )
            .await;
            Err(ApiError::Internal(e.to_string()))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    hold: bool,
    reason: String,
}

/// Sets or releases a legal hold: a held recording survives its retention until released.
async fn legal_hold(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<HoldRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let resource = format!(
        "recording:{}",
        if id.len() == 25 && id.starts_with('r') {
            id.as_str()
        } else {
            "invalid"
        }
    );
    let row = app.db.recording(&id).await?;
    let Some(row) = row.filter(|r| may_view(&app, &caller, &r.queue) && r.state != "deleted") else {
        audit(
            &app,
            &caller,
            "recording.legal_hold",
            resource,
            Outcome::Denied,
            "not a viewer of this recording",
        )
        .await;
        return Err(ApiError::Forbidden("you may not manage this recording".into()));
    };
    let why = reason(&Reason {
        reason: Some(req.reason),
    })?;
    if let Some(key) = &row.object_key
        && row.state == "stored"
        && let Err(e) = app.video.recording_objects().set_legal_hold(key, req.hold).await
    {
        return Err(ApiError::Internal(format!("legal hold on the object: {e}")));
    }
    app.db.set_legal_hold(&row.id, req.hold).await?;
    let action = if req.hold {
        "recording.legal_hold.set"
    } else {
        "recording.legal_hold.release"
    };
    audit(&app, &caller, action, resource, Outcome::Success, &why).await;
    Ok(Json(json!({ "id": row.id, "legal_hold": req.hold })))
}

fn safe_id(id: &str) -> String {
    if id.len() == 25 && id.starts_with('r') && id[1..].chars().all(|c| c.is_ascii_hexdigit()) {
        id.to_string()
    } else {
        "invalid".into()
    }
}

/// Loads a recording the caller may view, auditing a refusal under `action`.
async fn viewable(app: &AppState, caller: &Caller, id: &str, action: &str) -> Result<RecordingRow, ApiError> {
    let resource = format!("recording:{}", safe_id(id));
    let row = app.db.recording(id).await?;
    match row.filter(|r| may_view(app, caller, &r.queue)) {
        Some(r) => Ok(r),
        None => {
            audit(
                app,
                caller,
                action,
                resource,
                Outcome::Denied,
                "not a viewer of this recording",
            )
            .await;
            Err(ApiError::Forbidden("you may not view this recording".into()))
        }
    }
}

/// One recording's metadata and manifest (`recording.view`).
async fn metadata(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let row = viewable(&app, &caller, &id, "recording.view").await?;
    let why = reason(&q)?;
    audit(
        &app,
        &caller,
        "recording.view",
        format!("recording:{}", row.id),
        Outcome::Success,
        &why,
    )
    .await;
    Ok(Json(view(&row)))
}

/// Who did what with one recording: its audit events (`recording.view`).
async fn access_history(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let row = viewable(&app, &caller, &id, "recording.view").await?;
    let why = reason(&q)?;
    let resource = format!("recording:{}", row.id);
    audit(
        &app,
        &caller,
        "recording.view",
        resource.clone(),
        Outcome::Success,
        &why,
    )
    .await;
    let events = app.db.audit_events_for(&resource, 1000).await?;
    let list: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            json!({
                "at": crate::messaging::timestamp(e.at_ms),
                "actor": e.actor,
                "role": e.role,
                "action": e.action,
                "outcome": e.outcome,
                "reason": e.reason,
            })
        })
        .collect();
    Ok(Json(json!({ "recording": row.id, "events": list })))
}

/// The decrypted WebM with HTTP Range support, so a player can seek (`recording.stream`).
async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let row = viewable(&app, &caller, &id, "recording.stream").await?;
    let why = reason(&q)?;
    let (Some(object_key), "stored") = (row.object_key.clone(), row.state.as_str()) else {
        return Err(ApiError::BadRequest(
            "not_stored",
            "the recording is not stored yet".into(),
        ));
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            let start: u64 = a.parse().ok()?;
            let end: Option<u64> = if b.is_empty() {
                None
            } else {
                Some(b.parse::<u64>().ok()? + 1)
            };
            Some((start, end))
        });
    let (start, end) = range.unwrap_or((0, None));
    let resource = format!("recording:{}", row.id);
    let read = crate::recording::session::read_range(
        app.video.recording_objects(),
        app.video.recording_keyring(),
        &row.id,
        &object_key,
        &row.kek_id,
        &row.wrapped_key,
        start,
        end,
    )
    .await;
    match read {
        Ok((bytes, from, total)) => {
            let detail = format!("{why} (bytes {from}-{})", from + bytes.len() as u64);
            audit(
                &app,
                &caller,
                "recording.stream",
                resource,
                Outcome::Success,
                &detail,
            )
            .await;
            let mut resp = (
                [
                    (header::CONTENT_TYPE, "video/webm".to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                Body::from(bytes.clone()),
            )
                .into_response();
            if range.is_some() {
                *resp.status_mut() = axum::http::StatusCode::PARTIAL_CONTENT;
                let last = (from + bytes.len() as u64).saturating_sub(1);
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    format!("bytes {from}-{last}/{total}")
                        .parse()
                        .expect("header value"),
                );
            }
            Ok(resp)
        }
        Err(e) => {
            audit(
                &app,
                &caller,
                "recording.stream",
                resource,
                Outcome::Failure,
                &e.to_string(),
            )
            .await;
            Err(ApiError::Internal(e.to_string()))
        }
    }
}
