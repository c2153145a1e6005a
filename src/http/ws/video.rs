//! Video frames of the socket: elevation, the patient's answer, SDP and ICE, mute / camera / audio only. A frame
//! whose visit another node hosts is relayed there (`relay`); the host handles it here (`handle_here`), for its
//! own sockets and for relayed ones alike. Each asks the policy about the visit (or, to elevate, the
//! conversation) and hands its proof to the video service. Every refusal that is an access attempt (someone
//! else's visit, a forged id, joining before admission) is audited; malformed SDP and candidates get a precise
//! error code and the socket stays usable. The pre-call test's frames (`precall`) ask about the caller's own
//! session instead, and are always handled here.

use super::reply::{Connection, audit, error};
use crate::app::App;
use crate::audit::Outcome;
use crate::media::{MediaError, Offer};
use crate::policy::{Authorized, Resource, ResourceKind};
use crate::protocol::{ClientFrame, ServerFrame};
use crate::visit::placement::{Host, PlacementError};
use crate::visit::service::VideoError;
use crate::visit::{VisitError, VisitId};

/// Maps a refusal to its frame, auditing access attempts.
async fn refused(
    app: &App,
    conn: &Connection,
    action: &str,
    resource: String,
    e: VideoError,
) -> Vec<ServerFrame> {
    let (code, access_attempt) = (e.code(), e.is_access_attempt());
    if let VideoError::Media(MediaError::Engine(detail)) = &e {
        tracing::error!(error = %detail, "media engine failure");
    }
    if access_attempt {
        audit(app, conn, action, resource, Outcome::Denied, Some(&e.to_string())).await;
    }
    // Error text never echoes the client's SDP (it names addresses).
    let message = match &e {
        VideoError::Media(MediaError::InvalidSdp(_)) => "the SDP offer could not be used".to_string(),
        other => other.to_string(),
    };
    error(code, message)
}

fn visit_id(raw: &str) -> (Option<VisitId>, String) {
    match VisitId::parse(raw) {
        Some(id) => {
            let name = format!("visit:{id}");
            (Some(id), name)
        }
        None => (None, "visit:invalid".into()),
    }
}

/// Asks the policy whether the caller may do `action` on the visit `raw` names; a refusal (an unknown or
/// forged id included) is audited once, by the policy path, and answered `forbidden`.
async fn visit_proof(
    app: &App,
    conn: &Connection,
    raw: &str,
    action: &str,
) -> Result<(Authorized<VisitId>, String), Vec<ServerFrame>> {
    let (id, resource) = visit_id(raw);
    let Some(id) = id else {
        let unknown = Resource::new(ResourceKind::Visit, Some("invalid".into()));
        // Asked only so the refusal is audited like any other; a malformed id is refused whatever it says.
        let _ = app
            .authorize(&conn.principal, action, &unknown, Some(&conn.request_id))
            .await;
        return Err(error("forbidden", VisitError::UnknownVisit.to_string()));
    };
    match app
        .authorize_for(
            &conn.principal,
            action,
            &app.video.resource(&id),
            id,
            Some(&conn.request_id),
        )
        .await
    {
        Ok(proof) => Ok((proof, resource)),
        Err(_) => Err(error("forbidden", "you are not a participant of this visit")),
    }
}

/// A video frame from a socket of this node: handled here, or relayed to the node hosting its visit.
pub async fn handle(app: &App, conn: &Connection, frame: ClientFrame) -> Vec<ServerFrame> {
    match super::relay::host_for(app, &frame).await {
        Ok(Host::Here) => handle_here(app, conn, frame).await,
        Ok(Host::Node(remote)) => super::relay::forward(app, conn, &remote, frame).await,
        Err(PlacementError::Moving) => error(
            "video_moving",
            "the video is moving to another server; it reconnects by itself",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "the host of a visit could not be found");
            error("unavailable", "video is unavailable for a moment; try again")
        }
    }
}

/// A video frame for a visit this node hosts (or will host), from its own socket or relayed from another node.
pub async fn handle_here(app: &App, conn: &Connection, frame: ClientFrame) -> Vec<ServerFrame> {
    let video = &app.video;
    match frame {
        ClientFrame::VideoRequest {
            conversation_id,
            device_check,
            ..
        } => {
            // A node that is stopping starts no visit: the nurse's socket reconnects to another and asks again.
            if app.is_draining() {
                return vec![ServerFrame::error(
                    "node_draining",
                    "this server is restarting; you are being reconnected, then ask again",
                )];
            }
            // Never elevate until the nurse is ready: her camera and microphone work for this very request.
            if !crate::protocol::DeviceCheck::passed(device_check) {
                return vec![ServerFrame::error(
                    "device_check_required",
                    "run the camera and microphone check (both working) before asking the patient",
                )];
            }
            let proof = match super::chat::authorized(app, conn, &conversation_id, "visit.create").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            // A chat being handed to a colleague (an open offer of an assigned chat) gets no video until that is
            // settled: a chat in a video visit is never handed over.
            if matches!(
                app.messaging.offered_to(&proof.resource().id).await,
                Ok(Some(_)) | Err(_)
            ) {
                return vec![ServerFrame::error(
                    "transfer_pending",
                    "a colleague is being asked to take this chat: wait for the answer before starting video",
                )];
            }
            let resource = format!("conversation:{}", proof.resource().id);
            match video.elevate(&proof).await {
                Ok(v) => {
                    audit(
                        app,
                        conn,
                        "video.elevate",
                        format!("visit:{}", v.id),
                        Outcome::Success,
                        None,
                    )
                    .await;
                    Vec::new()
                }
                Err(e) => refused(app, conn, "video.elevate", resource, e).await,
            }
        }
        ClientFrame::VideoAnswer {
            visit_id: raw,
            accept,
            recording_consent,
            consent_language,
            decline_reason,
            audio_only,
            ..
        } => {
            // The wording agreed to is part of the consent: only a language the question exists in.
            let wording = match consent_language.as_deref() {
                None => None,
                Some(l @ ("en" | "es")) => Some(l),
                Some(_) => return error("unknown_language", "consent_language is one of: en, es"),
            };
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.answer").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video
                .answer(&proof, accept, recording_consent, decline_reason, audio_only)
                .await
            {
                Ok(_) => {
                    let action = if accept { "video.accept" } else { "video.decline" };
                    // The consent answer and the language of the question it answered, with who and when.
                    let mut notes = Vec::new();
                    if let Some(given) = recording_consent {
                        notes.push(format!(
                            "consent:{} wording:{}",
                            if given { "given" } else { "declined" },
                            wording.unwrap_or("unspecified")
                        ));
                    }
                    if accept && audio_only {
                        notes.push("audio only: camera unavailable".into());
                    }
                    let note = notes.join("; ");
                    let note = (!note.is_empty()).then_some(note.as_str());
                    audit(app, conn, action, resource, Outcome::Success, note).await;
                    Vec::new()
                }
                Err(e) => refused(app, conn, "video.answer", resource, e).await,
            }
        }
        ClientFrame::VideoOffer {
            visit_id: raw,
            sdp,
            screen_track,
            screen_shared,
            ..
        } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.join").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            let offer = Offer {
                sdp: &sdp,
                screen_track: screen_track.as_deref(),
                screen_shared,
            };
            match video.offer(&proof, &conn.request_id, offer).await {
                Ok(answer) => vec![ServerFrame::VideoSdp {
                    visit_id: raw,
                    sdp: answer,
                }],
                Err(e) => refused(app, conn, "video.join", resource, e).await,
            }
        }
        ClientFrame::VideoServerAnswer {
            visit_id: raw, sdp, ..
        } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.join").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video.server_answer(&proof, &conn.request_id, &sdp).await {
                Ok(()) => Vec::new(),
                Err(e) => refused(app, conn, "video.join", resource, e).await,
            }
        }
        ClientFrame::VideoCandidate {
            visit_id: raw,
            candidate,
            ..
        } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.join").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video.candidate(&proof, candidate).await {
                Ok(()) => Vec::new(),
                Err(e) => refused(app, conn, "video.signal", resource, e).await,
            }
        }
        ClientFrame::VideoLeave { visit_id: raw, .. } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.join").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video.leave(&proof, &conn.request_id).await {
                Ok(()) => Vec::new(),
                Err(e) => refused(app, conn, "video.leave", resource, e).await,
            }
        }
        ClientFrame::VideoEnd { visit_id: raw, .. } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.end").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video.end(&proof).await {
                Ok(()) => {
                    audit(app, conn, "video.end", resource, Outcome::Success, None).await;
                    Vec::new()
                }
                Err(e) => refused(app, conn, "video.end", resource, e).await,
            }
        }
        ClientFrame::VideoMedia {
            visit_id: raw,
            microphone,
            camera,
            ..
        } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.join").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            let devices = crate::protocol::MediaDevices { microphone, camera };
            match video.set_devices(&proof, devices).await {
                Ok(()) => Vec::new(),
                Err(e) => refused(app, conn, "video.media", resource, e).await,
            }
        }
        ClientFrame::VideoMode {
            visit_id: raw,
            audio_only,
            reason,
            ..
        } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.join").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video.set_audio_only(&proof, audio_only, reason).await {
                Ok(changed) => {
                    if changed {
                        let action = if audio_only {
                            "video.audio_only"
                        } else {
                            "video.video_resumed"
                        };
                        audit(app, conn, action, resource, Outcome::Success, None).await;
                    }
                    Vec::new()
                }
                Err(e) => refused(app, conn, "video.mode", resource, e).await,
            }
        }
        ClientFrame::GuestInvite { visit_id: raw, .. } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.invite").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video.invite(&proof).await {
                Ok(link) => {
                    audit(app, conn, "visit.guest_invited", resource, Outcome::Success, None).await;
                    vec![link]
                }
                Err(e) => refused(app, conn, "visit.guest_invite", resource, e).await,
            }
        }
        ClientFrame::GuestAdmit {
            visit_id: raw,
            guest_id,
            admit,
            ..
        } => guest_decision(app, conn, &raw, &guest_id, Some(admit)).await,
        ClientFrame::GuestRemove {
            visit_id: raw,
            guest_id,
            ..
        } => guest_decision(app, conn, &raw, &guest_id, None).await,
        ClientFrame::ConsultStaff { visit_id: raw, .. } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.consult").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            match video.consultants(&proof).await {
                Ok(list) => vec![list],
                Err(e) => refused(app, conn, "visit.consult", resource, e).await,
            }
        }
        ClientFrame::ConsultInvite {
            visit_id: raw,
            staff_id,
            ..
        } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.consult").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            // A staff id names a workforce account, not a patient.
            let note = format!("staff:{}", staff_id.chars().take(64).collect::<String>());
            match video.ask_staff(&proof, &staff_id).await {
                Ok(()) => {
                    audit(
                        app,
                        conn,
                        "visit.staff_asked",
                        resource,
                        Outcome::Success,
                        Some(&note),
                    )
                    .await;
                    Vec::new()
                }
                Err(e) => refused(app, conn, "visit.staff_asked", resource, e).await,
            }
        }
        ClientFrame::ConsultAnswer {
            visit_id: raw,
            accept,
            ..
        } => {
            let (proof, resource) = match visit_proof(app, conn, &raw, "visit.consult_answer").await {
                Ok(p) => p,
                Err(frames) => return frames,
            };
            let action = if accept {
                "visit.staff_joined"
            } else {
                "visit.staff_declined"
            };
            match video.staff_answer(&proof, accept).await {
                Ok(()) => {
                    audit(app, conn, action, resource, Outcome::Success, None).await;
                    Vec::new()
                }
                Err(e) => refused(app, conn, action, resource, e).await,
            }
        }
        _ => error("invalid_frame", "not a video frame"),
    }
}

/// The nurse admits, turns away (`Some`) or removes (`None`) a guest; each is audited with the guest's id.
async fn guest_decision(
    app: &App,
    conn: &Connection,
    raw: &str,
    guest: &str,
    admit: Option<bool>,
) -> Vec<ServerFrame> {
    let (proof, resource) = match visit_proof(app, conn, raw, "visit.admit").await {
        Ok(p) => p,
        Err(frames) => return frames,
    };
    let action = match admit {
        Some(true) => "visit.guest_admitted",
        Some(false) => "visit.guest_turned_away",
        None => "visit.guest_removed",
    };
    // The guest's id is opaque (random), never their name.
    let note = format!("guest:{}", guest.chars().take(40).collect::<String>());
    match app.video.admit(&proof, guest, admit).await {
        Ok(()) => {
            audit(app, conn, action, resource, Outcome::Success, Some(&note)).await;
            Vec::new()
        }
        Err(e) => refused(app, conn, action, resource, e).await,
    }
}

/// Pre-call test frames: always handled by this node (the test connects to this node's SFU, as the visit the
/// socket's person would start here). `media.test` on the caller's own session.
pub async fn precall(app: &App, conn: &Connection, frame: ClientFrame) -> Vec<ServerFrame> {
    let video = &app.video;
    if let ClientFrame::PrecallEnd { .. } = frame {
        video.precall_end(&conn.request_id).await;
        return Vec::new();
    }
    let p = &conn.principal;
    let resource = Resource::new(ResourceKind::Session, p.session.as_ref().map(|s| s.to_string()))
        .owned_by(p.subject.clone());
    let proof = match app
        .authorize_for(
            p,
            "media.test",
            &resource,
            p.subject.clone(),
            Some(&conn.request_id),
        )
        .await
    {
        Ok(proof) => proof,
        Err(_) => return error("forbidden", "this account cannot run a pre-call test"),
    };
    let resource = resource.audit_name();
    let outcome = match frame {
        ClientFrame::PrecallStart { .. } => video.precall_start(&proof).map(|f| vec![f]),
        ClientFrame::PrecallOffer { sdp, .. } => video
            .precall_offer(&proof, &conn.request_id, &sdp)
            .await
            .map(|sdp| vec![ServerFrame::PrecallAnswer { sdp }]),
        ClientFrame::PrecallCandidate { candidate, .. } => video
            .precall_candidate(&proof, &conn.request_id, candidate)
            .await
            .map(|()| Vec::new()),
        _ => Ok(Vec::new()),
    };
    match outcome {
        Ok(frames) => frames,
        Err(e) => refused(app, conn, "media.test", resource, e).await,
    }
}
