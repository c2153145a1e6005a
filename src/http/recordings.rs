//! Recordings for those the access policy and the recording's own policy both allow (compliance officers by
//! default): list, metadata, access history, streaming with Range, download and legal hold, each call with a
//! reason, each call audited. Who may is decided once, in `policy` (a rule's grant AND a viewer role of the
//! recording's policy); the handlers ask it and pass its proof to the video service, which alone reads the
//! sealed object. Everyone else gets 403 and a denied audit event. The stored object stays sealed.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{Caller, rate_limit};
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Role;
use crate::ids::RecordingId;
use crate::limits::Class;
use crate::pii::pseudonym;
use crate::policy::{Authorized, Resource, ResourceKind};
use crate::recording::remux::Feed;
use crate::store::RecordingRow;
use crate::visit::service::{RecordingAccessError, VisitRecording};

mod chat;
mod view;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/recordings", get(list))
        .route("/api/v1/recordings/{id}", get(metadata))
        .route("/api/v1/recordings/{id}/stream", get(stream))
        .route("/api/v1/recordings/{id}/access", get(access_history))
        .route("/api/v1/recordings/{id}/wrap-up", get(chat::wrap_up))
        .route("/api/v1/recordings/{id}/transcript", get(chat::transcript))
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

/// A read of the file: the reason, and optionally whose share (`participant`: the number of their video track
/// in the visit's file, as the manifest gives it), for a file of that participant's tracks alone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    reason: Option<String>,
    participant: Option<String>,
}

impl ReadQuery {
    fn reason(&self) -> Result<String, ApiError> {
        reason(&Reason {
            reason: self.reason.clone(),
        })
    }

    fn feed(&self) -> Result<Option<Feed>, ApiError> {
        let Some(p) = self.participant.as_deref() else {
            return Ok(None);
        };
        p.parse()
            .ok()
            .and_then(Feed::of_video_track)
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "unknown_participant",
                    "participant must be the video track of a participant in the manifest".into(),
                )
            })
    }
}

/// The whole visit's file, or one participant's, by range.
async fn read(
    app: &AppState,
    proof: &Authorized<RecordingRow>,
    feed: Option<Feed>,
    start: u64,
    end: Option<u64>,
) -> Result<(Vec<u8>, u64, u64), RecordingAccessError> {
    match feed {
        Some(feed) => app.video.feed_bytes(proof, feed, start, end).await,
        None => app.video.recording_bytes(proof, start, end).await,
    }
}

/// How an access names what it read: the whole file, or whose track.
fn which(feed: Option<Feed>) -> String {
    feed.map_or_else(String::new, |f| {
        format!("participant track {}, ", f.video_track())
    })
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

/// The roles the recording policy lets view recordings of `queue` today (none if no policy covers it).
fn viewers(app: &AppState, queue: &str) -> Vec<Role> {
    app.recording_policies
        .decide(queue, "video")
        .map(|d| d.viewer_roles)
        .unwrap_or_default()
}

/// All recordings, as the access policy sees the list: it may be listed by a role some queue's recording policy
/// lets view recordings.
pub(super) fn collection(app: &AppState) -> Resource {
    let mut roles: Vec<Role> = Vec::new();
    for queue in app.config.queues() {
        roles.extend(viewers(app, &queue.name));
    }
    Resource::new(ResourceKind::Recording, None).viewable_by(roles)
}

/// A recording as the access policy sees it.
fn resource_of(app: &AppState, row: &RecordingRow) -> Resource {
    Resource::new(ResourceKind::Recording, Some(row.id.to_string())).viewable_by(viewers(app, &row.queue))
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

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    rate_limit(
        &app,
        Class::RecordingAccessPerUser,
        &pseudonym(caller.principal.subject.as_str()),
    )?;
    let collection = collection(&app);
    if let Err(d) = app
        .authorize(
            &caller.principal,
            "recording.list",
            &collection,
            Some(&caller.request_id),
        )
        .await
    {
        return Err(ApiError::Forbidden(d.reason));
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
    let visits = VisitRecording::group(app.db.recordings().await?);
    let visible: Vec<&VisitRecording> = visits
        .iter()
        .filter(|v| {
            app.policy.permits(
                &caller.principal,
                "recording.list",
                &resource_of(&app, &v.parts[0]),
            )
        })
        .collect();
    let names = view::staff_names(&app, &visible).await?;
    let visible: Vec<serde_json::Value> = visible
        .into_iter()
        .filter_map(|v| view::view(v, false, &names))
        .collect();
    Ok(Json(json!({ "recordings": visible })))
}

async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    rate_limit(
        &app,
        Class::RecordingAccessPerUser,
        &pseudonym(caller.principal.subject.as_str()),
    )?;
    let proof = viewable(&app, &caller, &id, "recording.download").await?;
    let why = q.reason()?;
    let feed = q.feed()?;
    let row = proof.resource();
    let resource = format!("recording:{}", row.id);
    match read(&app, &proof, feed, 0, None).await {
        Ok((webm, _, _)) => {
            let detail = match feed {
                Some(f) => format!("{why} (participant track {})", f.video_track()),
                None => why,
            };
            audit(
                &app,
                &caller,
                "recording.download",
                resource,
                Outcome::Success,
                &detail,
            )
            .await;
            let name = match feed {
                Some(f) => format!("{}-track{}", row.id, f.video_track()),
                None => row.id.to_string(),
            };
            Ok((
                [
                    (header::CONTENT_TYPE, "video/webm".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}.webm\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                Body::from(webm),
            )
                .into_response())
        }
        Err(e @ RecordingAccessError::Unreadable(_)) => {
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
            Err(e.into())
        }
        Err(e) => Err(e.into()),
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
    let proof = viewable(&app, &caller, &id, "recording.hold").await?;
    let why = reason(&Reason {
        reason: Some(req.reason),
    })?;
    app.video
        .set_legal_hold(&proof, req.hold)
        .await
        .map_err(ApiError::from)?;
    let action = if req.hold {
        "recording.legal_hold.set"
    } else {
        "recording.legal_hold.release"
    };
    let row = proof.resource();
    let resource = format!("recording:{}", row.id);
    audit(&app, &caller, action, resource, Outcome::Success, &why).await;
    Ok(Json(json!({ "id": row.id, "legal_hold": req.hold })))
}

fn safe_id(id: &str) -> String {
    RecordingId::parse(id).map_or_else(|| "invalid".into(), |r| r.to_string())
}

/// Loads a recording and asks the policy whether the caller may do `action` on it; a refusal (an unknown id
/// included, for anyone the policy would not let see recordings at all) is audited under `action`. The proof
/// carries the row.
async fn viewable(
    app: &AppState,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<Authorized<RecordingRow>, ApiError> {
    // A visit that moved has one part per node and is one recording, named by its first part: any part's id
    // opens it, and every access is audited under that one name.
    let row = match app.db.recording(id).await? {
        Some(r) => app.db.recordings_of_visit(&r.visit_id).await?.into_iter().next(),
        None => None,
    };
    let resource = match &row {
        Some(r) => {
            app.with_break_glass(&caller.principal, action, resource_of(app, r))
                .await
        }
        None => Resource::new(ResourceKind::Recording, Some(safe_id(id))),
    };
    app.authorize_for(
        &caller.principal,
        action,
        &resource,
        row,
        Some(&caller.request_id),
    )
    .await
    .map_err(|_| ApiError::Forbidden("you may not view this recording".into()))?
    .transpose()
    .ok_or(ApiError::NotFound)
}

/// One recording's metadata and manifest (`recording.view`).
async fn metadata(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let proof = viewable(&app, &caller, &id, "recording.view").await?;
    let row = proof.resource();
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
    let recording = app.video.visit_recording(row).await?;
    let names = view::staff_names(&app, &[&recording]).await?;
    Ok(Json(
        view::view(&recording, true, &names).ok_or(ApiError::NotFound)?,
    ))
}

/// Who did what with one recording: its audit events (`recording.view`).
async fn access_history(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<Reason>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let proof = viewable(&app, &caller, &id, "recording.view").await?;
    let row = proof.resource();
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
    // Who, by name: staff as they signed in (the staff directory of their sessions), the broker's own work as
    // `system (<job>)`; a patient or an unknown subject keeps its id only.
    let mut names: std::collections::HashMap<&str, Option<String>> = std::collections::HashMap::new();
    for e in &events {
        if names.contains_key(e.actor.as_str()) {
            continue;
        }
        let name = match e.actor.strip_prefix("system:") {
            Some(job) => Some(format!("system ({job})")),
            None => app.db.staff_display_name(&e.actor).await?,
        };
        names.insert(e.actor.as_str(), name);
    }
    let list: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            json!({
                "at": crate::clock::timestamp(e.at_ms),
                "actor": e.actor,
                "name": names.get(e.actor.as_str()).cloned().flatten(),
                "role": e.role,
                "action": e.action,
                "outcome": e.outcome,
                "reason": e.reason,
            })
        })
        .collect();
    Ok(Json(json!({ "recording": row.id, "events": list })))
}

/// The most bytes one range request is answered with.
const MOST_PER_RANGE: u64 = 8 << 20;

/// The decrypted WebM with HTTP Range support, so a player can seek (`recording.stream`).
async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    rate_limit(
        &app,
        Class::RecordingAccessPerUser,
        &pseudonym(caller.principal.subject.as_str()),
    )?;
    let proof = viewable(&app, &caller, &id, "recording.stream").await?;
    let why = q.reason()?;
    let feed = q.feed()?;
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
    // A range is answered with at most `MOST_PER_RANGE` bytes (a player asks `bytes=N-` at every seek; each
    // answer is decrypted, and a participant's remuxed, in memory): the Content-Range says where it stops, and
    // the player asks on from there. A request without a Range gets the whole file.
    let (start, end) = match range {
        Some((start, end)) => (
            start,
            Some(end.unwrap_or(u64::MAX).min(start.saturating_add(MOST_PER_RANGE))),
        ),
        None => (0, None),
    };
    let resource = format!("recording:{}", proof.resource().id);
    let read = read(&app, &proof, feed, start, end).await;
    match read {
        // A range past the end (or backwards) is not satisfiable: 416 with the length, as RFC 9110 says.
        Ok((_, from, total))
            if range.is_some_and(|(_, end)| from >= total || end.is_some_and(|e| e <= from)) =>
        {
            let mut resp = super::error::error_body(
                axum::http::StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "the range is outside the recording",
            );
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                format!("bytes */{total}").parse().expect("header value"),
            );
            Ok(resp)
        }
        Ok((bytes, from, total)) => {
            let len = bytes.len() as u64;
            let detail = format!("{why} ({}bytes {from}-{})", which(feed), from + len);
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
                Body::from(bytes),
            )
                .into_response();
            if range.is_some() {
                *resp.status_mut() = axum::http::StatusCode::PARTIAL_CONTENT;
                let last = (from + len).saturating_sub(1);
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    format!("bytes {from}-{last}/{total}")
                        .parse()
                        .expect("header value"),
                );
            }
            Ok(resp)
        }
        Err(e @ RecordingAccessError::Unreadable(_)) => {
            audit(
                &app,
                &caller,
                "recording.stream",
                resource,
                Outcome::Failure,
                &e.to_string(),
            )
            .await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}
