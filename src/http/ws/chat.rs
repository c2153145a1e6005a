//! Chat frames of the socket: the protocol's rules for one authenticated connection, frame by frame. Every
//! access to a conversation goes through the policy (owner or assigned nurse) and the domain call takes its
//! proof; refusals are audited by the policy path, and every staff read of a transcript is audited too.

use super::reply::{Connection, audit as audit_event, error};
use crate::app::App;
use crate::app::access::AccessError;
use crate::audit::Outcome;
use crate::clock::timestamp;
use crate::ids::ConversationId;
use crate::messaging::MessagingError;
use crate::messaging::context::{MAX_REASON_CHARS, PatientContext};
use crate::messaging::wrapup::WrapUp;
use crate::pii::Pii;
use crate::policy::{Authorized, Resource, ResourceKind};
use crate::protocol::{ClientFrame, PresenceRequest, ServerFrame, WrapUpSpec};
use crate::store::{ConversationRow, ConversationState};

/// Largest replay per `sync`; the client asks again from the last `seq` it got.
const SYNC_PAGE: i64 = 500;

fn from_messaging(e: MessagingError) -> Vec<ServerFrame> {
    let message = match &e {
        MessagingError::UnknownQueue => "no such queue".to_string(),
        MessagingError::WrongProof(_) => "you have no access to this conversation".to_string(),
        MessagingError::Closed => "the conversation has ended".to_string(),
        MessagingError::StillOpen
        | MessagingError::UnknownDisposition
        | MessagingError::AlreadyWrappedUp
        | MessagingError::ColleagueUnavailable => e.to_string(),
        MessagingError::TooLong => {
            format!("at most {} characters", crate::messaging::wrapup::MAX_NOTES_CHARS)
        }
        MessagingError::Routing(r) => r.to_string(),
        MessagingError::RoutingUnavailable | MessagingError::Cluster(_) => {
            tracing::warn!(error = %e, "routing unavailable");
            "the waiting room is being taken over by another server; retry in a few seconds".to_string()
        }
        MessagingError::Crypto(_) | MessagingError::Store(_) => {
            tracing::error!(error = %e, "messaging failure");
            "internal error; retry with the same idempotency key".to_string()
        }
    };
    error(e.code(), message)
}

/// The first frame after authentication.
pub async fn welcome(app: &App, conn: &Connection) -> ServerFrame {
    let subject = &conn.principal.subject;
    let conversations = match app.messaging.open_conversations_of(subject).await {
        Ok(list) => list.iter().map(|c| app.messaging.view(c)).collect(),
        Err(e) => {
            tracing::error!(error = %e, "could not list conversations");
            Vec::new()
        }
    };
    // Presence is for those who work the queues (a capability shown, not an access attempt).
    let presence = if works_queues(app, conn) {
        match app.messaging.presence(subject).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "presence unknown");
                Some(crate::waiting_room::Presence::Away)
            }
        }
    } else {
        None
    };
    let wrap_up = presence.is_some().then(|| WrapUpSpec {
        seconds: app.config.routing.wrap_up_seconds,
        dispositions: app.messaging.dispositions().to_vec(),
    });
    let queues = if presence.is_some() {
        app.messaging.queue_names()
    } else {
        Vec::new()
    };
    ServerFrame::Welcome {
        v: crate::protocol::PROTOCOL_VERSION,
        role: conn.role().to_string(),
        conversations,
        presence,
        wrap_up,
        queues,
    }
}

/// The socket closed; a nurse with no other socket goes away (her offer goes to someone else).
/// A socket closed. `reconnecting`: the server asked it to reconnect (close code 4012), so the client comes back
/// at once; the hosts of visits it relayed to keep its connections (a drain moves the socket, not the call).
pub async fn disconnected(
    app: &App,
    conn: &Connection,
    socket: u64,
    others_remain: bool,
    reconnecting: bool,
) {
    app.video.socket_closed(&conn.request_id).await;
    super::relay::socket_closed(app, &conn.request_id, !reconnecting).await;
    let nurse = works_queues(app, conn);
    // Counted per socket by the routing leader: a patient's chats are offered to nobody while none is open, a
    // nurse's chats go back to the queue after the grace.
    app.messaging
        .connection(&conn.principal.subject, socket, false, nurse)
        .await;
    if nurse && !others_remain {
        app.messaging
            .set_available(&conn.principal.subject, &conn.principal.skills, false)
            .await;
    }
}

/// A socket opened: the routing leader counts it (see [`disconnected`]).
pub async fn connected(app: &App, conn: &Connection, socket: u64) {
    let nurse = works_queues(app, conn);
    app.messaging
        .connection(&conn.principal.subject, socket, true, nurse)
        .await;
}

pub async fn handle(app: &App, conn: &Connection, frame: ClientFrame) -> Vec<ServerFrame> {
    let subject = conn.principal.subject.clone();
    match frame {
        ClientFrame::Auth { .. } => error("already_authenticated", "this socket is already authenticated"),
        ClientFrame::Ping { .. } => vec![ServerFrame::Pong],
        video @ (ClientFrame::VideoRequest { .. }
        | ClientFrame::VideoAnswer { .. }
        | ClientFrame::VideoOffer { .. }
        | ClientFrame::VideoServerAnswer { .. }
        | ClientFrame::VideoCandidate { .. }
        | ClientFrame::VideoLeave { .. }
        | ClientFrame::VideoEnd { .. }
        | ClientFrame::VideoMedia { .. }
        | ClientFrame::VideoMode { .. }
        | ClientFrame::GuestInvite { .. }
        | ClientFrame::GuestAdmit { .. }
        | ClientFrame::GuestRemove { .. }
        | ClientFrame::ConsultStaff { .. }
        | ClientFrame::ConsultInvite { .. }
        | ClientFrame::ConsultAnswer { .. }) => super::video::handle(app, conn, video).await,
        precall @ (ClientFrame::PrecallStart { .. }
        | ClientFrame::PrecallOffer { .. }
        | ClientFrame::PrecallCandidate { .. }
        | ClientFrame::PrecallEnd { .. }) => super::video::precall(app, conn, precall).await,
        ClientFrame::Start {
            queue,
            language,
            idempotency_key,
            reason,
            ..
        } => {
            let queue = queue.unwrap_or_else(|| app.messaging.queue_for_language(language.as_deref()));
            let reason = reason
                .map(|r| r.expose().trim().to_string())
                .filter(|r| !r.is_empty());
            if reason
                .as_ref()
                .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
            {
                return error(
                    "reason_too_long",
                    format!("the reason is at most {MAX_REASON_CHARS} characters"),
                );
            }
            let resource = Resource::new(ResourceKind::Conversation, None).owned_by(subject.clone());
            if app
                .authorize(
                    &conn.principal,
                    "conversation.create",
                    &resource,
                    Some(&conn.request_id),
                )
                .await
                .is_err()
            {
                return error("forbidden", "only patients start conversations");
            }
            // Name and birth date come from the portal's signed ID token (the session), never from the client.
            let context = PatientContext {
                name: conn.principal.display_name.clone(),
                birthdate: conn.principal.birthdate.clone(),
                reason: reason.map(Pii::new),
            };
            match app
                .messaging
                .start(&subject, &queue, &idempotency_key, &context)
                .await
            {
                Ok((c, created)) => {
                    if created {
                        audit(app, conn, "conversation.create", &c.id, Outcome::Success).await;
                    }
                    vec![ServerFrame::Conversation {
                        conversation: app.messaging.view(&c),
                    }]
                }
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Send {
            conversation_id,
            idempotency_key,
            body,
            ..
        } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.write").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            let c = proof.resource();
            let max = app.messaging.settings().max_body_chars;
            if body.expose().trim().is_empty() {
                return error("empty_message", "the message is empty");
            }
            if body.expose().chars().count() > max {
                return error("message_too_long", format!("at most {max} characters"));
            }
            if c.state == ConversationState::Waiting && !app.messaging.chat_while_waiting(&c.queue) {
                return error(
                    "chat_not_allowed_while_waiting",
                    "please wait for a nurse to join",
                );
            }
            match app
                .messaging
                .post(&proof, conn.role(), &idempotency_key, body.expose())
                .await
            {
                Ok(out) => vec![ServerFrame::Ack {
                    conversation_id,
                    idempotency_key,
                    seq: out.message.seq,
                    at: timestamp(out.message.at_ms),
                    duplicate: out.duplicate,
                }],
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Preview { conversation_id, .. } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.preview").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            // Who the patient is is PHI: each look is audited, before the answer leaves.
            audit(
                app,
                conn,
                "conversation.preview",
                &proof.resource().id,
                Outcome::Success,
            )
            .await;
            match app.messaging.preview(&proof).await {
                Ok(p) => vec![ServerFrame::Preview {
                    conversation_id,
                    name: p.context.name,
                    birthdate: p.context.birthdate,
                    reason: p.context.reason,
                    first_message: p.first_message,
                    emergency: p.emergency,
                }],
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::WrapUp {
            conversation_id,
            disposition,
            notes,
            ..
        } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.wrap_up").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            let notes = notes.filter(|n| !n.expose().trim().is_empty());
            match app
                .messaging
                .save_wrap_up(&proof, WrapUp { disposition, notes })
                .await
            {
                Ok(()) => {
                    audit(
                        app,
                        conn,
                        "conversation.wrap_up",
                        &conversation_id,
                        Outcome::Success,
                    )
                    .await;
                    vec![ServerFrame::WrapUpSaved { conversation_id }]
                }
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Sync {
            conversation_id,
            after_seq,
            ..
        } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.read").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            let c = proof.resource();
            // Every read of a transcript by someone other than its patient is audited, before it is sent (fails
            // closed: no audit event, no transcript).
            if let Err(e) = app
                .audit_transcript_read(&conn.principal, &conn.request_id, &proof)
                .await
            {
                tracing::error!(error = %e, "a transcript read could not be audited: refused");
                return error("unavailable", "the read could not be recorded; retry in a moment");
            }
            match app.messaging.history(&proof, after_seq.max(0), SYNC_PAGE).await {
                Ok(messages) => {
                    let last = messages.last().map(|m| m.seq).unwrap_or(after_seq.max(0));
                    let mut frames: Vec<ServerFrame> = messages
                        .into_iter()
                        .map(|m| ServerFrame::Message {
                            conversation_id: c.id.clone(),
                            seq: m.seq,
                            sender_role: m.sender_role,
                            body: m.body,
                            at: timestamp(m.at_ms),
                        })
                        .collect();
                    frames.push(ServerFrame::Synced {
                        conversation_id: c.id.clone(),
                        last_seq: last,
                        more: last < c.last_seq,
                    });
                    frames
                }
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Presence { state, .. } => {
            if !may_work_queue(app, conn).await {
                return error("forbidden", "only nurses set presence");
            }
            app.messaging
                .set_available(&subject, &conn.principal.skills, state == PresenceRequest::Ready)
                .await;
            match app.messaging.presence(&subject).await {
                Ok(state) => vec![ServerFrame::Presence { state }],
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Accept { conversation_id, .. } => {
            if !may_work_queue(app, conn).await {
                return error("forbidden", "only nurses accept conversations");
            }
            match app.messaging.accept(&subject, &conversation_id).await {
                Ok(()) => {
                    // The grant was checked above (`queue.work`); the skills are the ones she signed in with.
                    app.messaging
                        .note_acceptance(&conversation_id, &conn.principal.skills, true)
                        .await;
                    audit(
                        app,
                        conn,
                        "conversation.accept",
                        &conversation_id,
                        Outcome::Success,
                    )
                    .await;
                    Vec::new()
                }
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Decline { conversation_id, .. } => {
            if !may_work_queue(app, conn).await {
                return error("forbidden", "only nurses decline conversations");
            }
            match app.messaging.decline(&subject, &conversation_id).await {
                Ok(()) => Vec::new(),
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Callback { conversation_id, .. } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.write").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            let c = proof.resource();
            // Only while waiting, when no nurse is assigned: the policy let only the patient write to it.
            if c.state != ConversationState::Waiting {
                return error("not_waiting", "a call back can be requested only while waiting");
            }
            match app.messaging.end(c, "callback_requested").await {
                Ok(()) => {
                    audit(
                        app,
                        conn,
                        "conversation.callback_requested",
                        &c.id,
                        Outcome::Success,
                    )
                    .await;
                    Vec::new()
                }
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Transfer {
            conversation_id,
            queue,
            nurse,
            ..
        } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.transfer").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            // A chat in a video visit takes its visit along: the host's sweep hands the visit on (`visit::transfer`).
            let c = proof.resource();
            let (done, detail) = match (queue, nurse) {
                (Some(queue), None) => (
                    app.messaging.transfer(&proof, &queue).await.map(|()| None),
                    format!("cold from:{} to:{queue}", c.queue),
                ),
                (None, Some(to)) => (
                    app.messaging.hand_off(&proof, &to).await,
                    format!("warm to:{}", to.as_str()),
                ),
                _ => return error("transfer_target", "name either a queue or a nurse to transfer to"),
            };
            match done {
                Ok(asked) => {
                    audit_event(
                        app,
                        conn,
                        "conversation.transfer",
                        format!("conversation:{}", c.id),
                        Outcome::Success,
                        Some(&detail),
                    )
                    .await;
                    // A colleague asked: said to the asking socket (a cold transfer answers with `ended`).
                    asked
                        .map(|colleague| ServerFrame::TransferAsked {
                            conversation_id: c.id.clone(),
                            colleague,
                        })
                        .into_iter()
                        .collect()
                }
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::Colleagues { conversation_id, .. } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.transfer").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            match app.messaging.colleagues(&proof).await {
                Ok(nurses) => vec![ServerFrame::Colleagues {
                    conversation_id,
                    nurses,
                }],
                Err(e) => from_messaging(e),
            }
        }
        ClientFrame::End { conversation_id, .. } => {
            let proof = match authorized(app, conn, &conversation_id, "conversation.write").await {
                Ok(proof) => proof,
                Err(frames) => return frames,
            };
            let c = proof.resource();
            let reason = if proof.subject() == &c.patient {
                "patient_left"
            } else {
                "nurse_ended"
            };
            match app.messaging.end(c, reason).await {
                Ok(()) => {
                    audit(app, conn, "conversation.end", &c.id, Outcome::Success).await;
                    Vec::new()
                }
                Err(e) => from_messaging(e),
            }
        }
    }
}

fn works_queues(app: &App, conn: &Connection) -> bool {
    app.policy.permits(
        &conn.principal,
        "queue.work",
        &Resource::new(ResourceKind::Queue, None),
    )
}

async fn may_work_queue(app: &App, conn: &Connection) -> bool {
    let resource = Resource::new(ResourceKind::Queue, None);
    app.authorize(&conn.principal, "queue.work", &resource, Some(&conn.request_id))
        .await
        .is_ok()
}

async fn audit(app: &App, conn: &Connection, action: &str, conversation: &ConversationId, outcome: Outcome) {
    audit_event(
        app,
        conn,
        action,
        format!("conversation:{conversation}"),
        outcome,
        None,
    )
    .await;
}

/// The policy's decision on `action` for this socket's caller (`App::conversation_access`), as frames when
/// refused.
pub async fn authorized(
    app: &App,
    conn: &Connection,
    id: &ConversationId,
    action: &str,
) -> Result<Authorized<ConversationRow>, Vec<ServerFrame>> {
    match app
        .conversation_access(&conn.principal, &conn.request_id, id, action)
        .await
    {
        Ok(proof) => Ok(proof),
        Err(AccessError::Forbidden) => Err(error("forbidden", "you have no access to this conversation")),
        Err(AccessError::Messaging(e)) => Err(from_messaging(e)),
    }
}
