//! The live side of video visits: applies the [`Visits`](super::Visits) rules, drives the media engine and
//! tells both participants' sockets what happened. One participant connection per (visit, side); a new socket
//! joining (a reload) replaces the old connection, the same socket offering again renegotiates (ICE restart)
//! unless the offer comes from a new browser connection (a rejoin after the visit moved), which replaces it too.

mod classify;
mod consult;
mod controls;
mod error;
mod events;
mod guests;
mod handover;
mod lifecycle;
mod participants;
mod precall;
mod recording;
mod review;
mod segments;
mod transfer;

pub use error::VideoError;
pub use guests::Arrival;
pub use recording::RecordingAccessError;
pub use review::VisitRecording;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::classification::Classification;
use super::{ConversationFacts, EndReason, Seat, Side, Visit, VisitId, VisitState, Visits};
use crate::audit::Auditor;
use crate::clock::now_ms;
use crate::config::MediaConfig;
use crate::crypto::Keyring;
use crate::ids::{RequestId, SubjectId};
use crate::media::turn::{self, IceServer};
use crate::media::{IceCandidate, MediaEngine, MediaError, Offer, ParticipantId};
use crate::messaging::Messaging;
use crate::policy::recording::RecordingPolicies;
use crate::policy::{Authorized, Resource, ResourceKind};
use crate::protocol::RecordingNotice;
use crate::protocol::ServerFrame;
use crate::recording::objects::ObjectStore;
use crate::recording::recorder::Source;
use crate::recording::session::RecordingSession;
use crate::recording::workdir::LocalStore;
use crate::store::{ConversationRow, ConversationState, Db};
use crate::telemetry::MediaMetrics;
use crate::waiting_room::Presence;

const CAMERA_UNAVAILABLE: crate::protocol::AudioOnlyReason =
    crate::protocol::AudioOnlyReason::CameraUnavailable;

/// The recording side of the video service: policies, keys, storage, and the sessions in progress.
pub struct RecordingSetup {
    pub policies: RecordingPolicies,
    pub keyring: Keyring,
    pub store: LocalStore,
    pub objects: Arc<dyn ObjectStore>,
    pub db: Db,
    pub audit: Auditor,
    /// `recording.segment_seconds`, in milliseconds.
    pub segment_ms: i64,
    /// `recording.keyframe_interval_seconds`, in milliseconds.
    pub keyframe_ms: i64,
}

struct Joined {
    participant: ParticipantId,
    /// The socket that joined (its request id).
    socket: RequestId,
    /// The browser connection's DTLS fingerprint and SDP session id: an offer from the same socket with others
    /// comes from a new connection (the client rejoined), not a renegotiation of this one.
    fingerprint: Option<String>,
}

/// What names one browser connection in its SDP: the first `a=fingerprint:` line and the origin's session id.
fn fingerprint(sdp: &str) -> Option<String> {
    let line = |prefix: &str| sdp.lines().map(str::trim).find(|l| l.starts_with(prefix));
    // The origin's session id is fixed for one browser connection's lifetime and new for the next (JSEP); the
    // certificate alone may be shared by a page's connections, which made a new connection look like an ICE
    // restart of the one before.
    let session = line("o=").and_then(|o| o.split_whitespace().nth(1));
    line("a=fingerprint:").map(|f| format!("{f} {}", session.unwrap_or_default()))
}

/// Everything live about the visits, with one owner behind one lock: the sans-IO core's visits and, per visit,
/// its participants' connections, its recording session and notice, and its classification. One lock means one
/// order of changes; it is never held across an await (the engine and the database are called after it is
/// released, and what they change is checked again under it).
#[derive(Default)]
struct Live {
    visits: Visits,
    /// The connection of each (visit, seat), claimed before the engine builds it.
    joined: HashMap<(VisitId, Seat), Joined>,
    /// Browser connections (fingerprints) a newer one replaced, per (visit, seat): their late offers are stale.
    retired: HashMap<(VisitId, Seat), Vec<Option<String>>>,
    /// The order in which this node first saw each socket offer (see `participants`).
    socket_order: HashMap<RequestId, u64>,
    sockets_seen: u64,
    /// Recordings in progress by visit, and each visit's recording notice.
    sessions: HashMap<VisitId, Arc<RecordingSession>>,
    notices: HashMap<VisitId, RecordingNotice>,
    /// Each live visit's classification flags and when it was proposed.
    classes: HashMap<VisitId, (Classification, i64)>,
    /// Visits being handed to another node (given up here, not yet adopted there).
    moving: std::collections::HashSet<VisitId>,
    /// Ended visits whose participants are not yet told (their recording is being stored): a draining node
    /// keeps their sockets until they hear it.
    ending: HashMap<VisitId, Vec<SubjectId>>,
    /// Each socket's pre-call test connection (see `precall`).
    precalls: HashMap<RequestId, precall::Precall>,
}

pub struct VideoService {
    /// Shared with the engine's event sinks, which read a visit's nurse when an event comes.
    live: Arc<Mutex<Live>>,
    /// Where visits live when several nodes share the database.
    pub placement: super::placement::Placement,
    recording: RecordingSetup,
    engine: Arc<dyn MediaEngine>,
    messaging: Arc<Messaging>,
    config: MediaConfig,
    turn_secret: Option<Vec<u8>>,
    metrics: MediaMetrics,
    /// Called with each guest who has no place in a visit any more (removed, left, the visit ended or moved):
    /// the app ends their session.
    guest_gone: std::sync::OnceLock<guests::GuestGone>,
    /// Whose media each participant connection carries (a role, a guest's name), for the others' tiles.
    labels: Arc<Mutex<HashMap<ParticipantId, crate::protocol::TileWho>>>,
    /// Recordings a crash left in progress, found at start and not yet recovered.
    unfinished: std::sync::Mutex<Vec<crate::store::RecordingRow>>,
    /// Where each participant's media lies in a stored recording, by recording, video track and what is stored:
    /// found on the first read of their file.
    feeds: std::sync::Mutex<HashMap<review::FeedKey, Arc<review::FeedIndex>>>,
}

impl VideoService {
    pub fn new(
        config: &MediaConfig,
        turn_secret: Option<Vec<u8>>,
        engine: Arc<dyn MediaEngine>,
        messaging: Arc<Messaging>,
        metrics: MediaMetrics,
        recording: RecordingSetup,
        placement: super::placement::Placement,
    ) -> Self {
        Self {
            live: Default::default(),
            placement,
            recording,
            engine,
            messaging,
            config: config.clone(),
            turn_secret,
            metrics,
            labels: Default::default(),
            guest_gone: Default::default(),
            unfinished: Default::default(),
            feeds: Default::default(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().expect("live visits lock")
    }

    /// To the patient, the nurse and the guests in the call (admitted, past the recording question), on this
    /// node and (over the bus) on the others.
    fn to_both(&self, v: &Visit, frame: ServerFrame) {
        let in_call = v.party.admitted().filter(|g| g.answered);
        let guests = in_call.map(|g| g.subject.clone());
        let nurse = Some(v.nurse.clone()).filter(|_| !v.awaits_nurse());
        for who in std::iter::once(v.patient.clone()).chain(nurse).chain(guests) {
            self.messaging.send_to(&who, frame.clone());
        }
    }

    /// To everyone in the visit, guests in the lobby too.
    fn to_everyone(&self, v: &Visit, frame: ServerFrame) {
        for who in v.people() {
            self.messaging.send_to(&who, frame.clone());
        }
    }

    fn ice_servers(&self) -> Vec<IceServer> {
        let label = ParticipantId::random();
        turn::ice_servers(
            &self.config.turn_urls,
            self.turn_secret.as_deref(),
            label.as_str(),
            now_ms() / 1000,
            self.config.turn_credential_seconds,
        )
    }

    /// The frame telling one participant about a live visit (also re-sent to a reconnecting socket).
    pub fn describe(&self, v: &Visit) -> ServerFrame {
        match v.state {
            VisitState::Proposed => self.proposal(v),
            VisitState::Active => ServerFrame::VideoStarted {
                conversation_id: v.conversation.clone(),
                visit_id: v.id.to_string(),
                ice_servers: self.ice_servers(),
                ice_transport_policy: if self.config.force_relay { "relay" } else { "all" }.into(),
                recording: self.notice(&v.id),
                audio_only: v.controls.audio_only().is_some(),
                record_screen: self.records_screen(v),
                epoch: v.epoch,
            },
        }
    }

    /// The camera and recording question (the patient's, or an admitted guest's).
    fn proposal(&self, v: &Visit) -> ServerFrame {
        let decision = self.decision(v);
        ServerFrame::VideoProposed {
            conversation_id: v.conversation.clone(),
            visit_id: v.id.to_string(),
            recording: match &decision {
                None => RecordingNotice::None,
                Some(d) if d.consent_required => RecordingNotice::ConsentRequired,
                Some(_) => RecordingNotice::WillRecord,
            },
            consent_translations: decision
                .as_ref()
                .filter(|d| d.consent_required)
                .map(|d| d.consent_translations())
                .unwrap_or_default(),
            consent_text: decision.filter(|d| d.consent_required).map(|d| d.consent_text()),
        }
    }

    pub fn live_of(&self, who: &SubjectId) -> Vec<ServerFrame> {
        let visits = self.live().visits.of_subject(who);
        let mut frames = Vec::new();
        for v in &visits {
            match v.seat_of(who) {
                Some(Seat::Guest(g)) => frames.extend(self.describe_for_guest(v, &g)),
                _ => {
                    frames.push(self.describe(v));
                    frames.extend(controls::control_frames(v));
                }
            }
            if !v.party.guests.is_empty() {
                frames.extend(self.party_frame(v, who));
            }
        }
        frames
    }

    /// A visit as the access policy sees it: owned by its patient, assigned to its nurse. An unknown id is a
    /// visit nobody owns (only rules without a condition can match it, and the service then says it is unknown).
    pub fn resource(&self, id: &VisitId) -> Resource {
        let r = Resource::new(ResourceKind::Visit, Some(id.to_string()));
        match self.live().visits.get(id) {
            // Admitted guests and staff asked in are assigned to it too: the policy's guest and staff rules let
            // them take part; what only its nurse may do, the visit checks by seat.
            Some(v) => {
                let admitted = v.party.admitted().map(|g| g.subject.clone());
                // A visit back in a queue is nobody's until a nurse accepts its chat.
                let nurse = Some(v.nurse.clone()).filter(|_| !v.awaits_nurse());
                let assigned = nurse.into_iter().chain(admitted).collect();
                r.owned_by(v.patient.clone()).assigned_to(assigned)
            }
            None => r,
        }
    }

    /// The nurse the policy let elevate this conversation (`visit.create`) asks to turn it into video.
    pub async fn elevate(&self, proof: &Authorized<ConversationRow>) -> Result<Visit, VideoError> {
        proof.require(&["visit.create"])?;
        let (nurse, row) = (proof.subject(), proof.resource());
        let patient = row.patient.clone();
        let assigned = row
            .nurse
            .clone()
            .filter(|_| row.state == ConversationState::Assigned);
        let wrap_up = self
            .messaging
            .presence(nurse)
            .await
            .is_ok_and(|p| p == Presence::WrapUp);
        let visit = self
            .live()
            .visits
            .elevate(
                &ConversationFacts {
                    id: &row.id,
                    queue: &row.queue,
                    patient: &patient,
                    assigned_nurse: assigned.as_ref(),
                    nurse_in_wrap_up: wrap_up,
                },
                nurse,
                now_ms(),
            )?
            .clone();
        self.metrics.live_visits.set(self.live().visits.len() as i64);
        // The visit's grant is the proof above; the chat's acceptance says whether her skills were the queue's.
        let chat_authorized = self
            .recording
            .db
            .agent_authorized(row.id.as_str())
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "agent authorization unreadable: the visit's flag is left empty");
                None
            });
        self.live().classes.insert(
            visit.id.clone(),
            (
                Classification::proposed(visit.conversation.as_str(), &visit.queue, chat_authorized),
                visit.created_ms,
            ),
        );
        self.save_classification(&visit.id, None).await;
        // Before anyone hears of it: a patient on another node must find this node as the host.
        self.publish_host(&visit.id).await;
        let frame = self.describe(&visit);
        self.to_both(&visit, frame);
        Ok(visit)
    }

    /// The patient's answer to the camera and microphone prompt (`visit.answer`).
    pub async fn answer(
        &self,
        proof: &Authorized<VisitId>,
        accept: bool,
        recording_consent: Option<bool>,
        decline_reason: Option<crate::protocol::DeclineReason>,
        audio_only: bool,
    ) -> Result<Visit, VideoError> {
        proof.require(&["visit.answer"])?;
        let (who, id) = (proof.subject(), proof.resource());
        let guest = self.live().visits.get(id).and_then(|v| v.seat_of(who));
        if let Some(Seat::Guest(g)) = guest {
            return self.guest_answer(id, &g, accept, recording_consent).await;
        }
        let visit = {
            let mut live = self.live();
            let visit = live.visits.answer(id, who, accept, now_ms())?;
            // Without a camera the patient still joins: the visit starts audio only.
            match live
                .visits
                .set_audio_only(id, who, accept && audio_only, CAMERA_UNAVAILABLE)
            {
                Ok(Some(changed)) => changed.visit,
                _ => visit,
            }
        };
        let decision = self.decision(&visit);
        self.classify(id, |c| c.answered(decision.as_ref(), accept, recording_consent));
        if accept {
            self.start_recording(&visit, recording_consent).await;
            if visit.controls.audio_only().is_some() {
                self.mark_audio_only(&visit, Side::Patient, true, CAMERA_UNAVAILABLE)
                    .await;
            }
            if self.live().visits.get(id).is_none() {
                // Ended while the recording started (finish() told both sides and classified it): no
                // `video_started` after `video_ended`.
                return Ok(visit);
            }
            let recording = self.live().sessions.get(id).map(|s| s.id.clone());
            self.classify(id, |c| c.recording_started(recording.as_deref()));
            self.save_classification(id, None).await;
            self.publish_host(id).await;
            self.to_both(&visit, self.describe(&visit));
        } else {
            // Told truthfully: a blocked camera is not a refusal.
            let reason = match decline_reason {
                Some(crate::protocol::DeclineReason::DevicesBlocked) => EndReason::DevicesBlocked,
                _ => EndReason::Declined,
            };
            self.finish(&visit, reason).await;
        }
        Ok(visit)
    }

    /// A participant's SDP offer (`visit.join`): joins, rejoins after a reload (a new socket replaces the old
    /// connection) or renegotiates (the same socket: ICE restart). The (visit, side) slot is claimed before the
    /// engine is awaited and checked after: when two sockets of the same person join at once, the later claim
    /// wins, and the connection of the earlier one is closed whichever finishes first, so none is left behind.
    pub async fn offer(
        &self,
        proof: &Authorized<VisitId>,
        socket: &RequestId,
        offer: Offer<'_>,
    ) -> Result<String, VideoError> {
        proof.require(&["visit.join"])?;
        let (who, id) = (proof.subject(), proof.resource());
        let sdp = offer.sdp;
        let participant = ParticipantId::random();
        // Under one lock: the visit may be joined, and either the same socket's connection (renegotiate) or the
        // claim this offer displaced.
        let (visit, key, same, replaced) = {
            let mut live = self.live();
            // A guest's tracks in the recording are theirs from their first join on.
            let guest = live.visits.get(id).and_then(|v| v.seat_of(who));
            if let (Some(Seat::Guest(g)), true) = (guest, live.sessions.contains_key(id)) {
                live.visits
                    .take_slot(id, &g, crate::recording::recorder::MAX_GUESTS);
            }
            let (v, seat) = live.visits.may_join(id, who)?;
            let (visit, key) = (v.clone(), (id.clone(), seat.clone()));
            // Before any claim: a refused offer leaves the slot as it was. The nurse may share her screen with the
            // patient at any time; a capture for the recording alone only where the policy records it.
            let recorded = live.sessions.contains_key(id);
            let shown = seat == Seat::Nurse && offer.screen_shared;
            if offer.screen_track.is_some() && !shown && !self.screen_allowed(&visit, &seat, recorded) {
                return Err(VideoError::ScreenNotRecorded);
            }
            let print = fingerprint(sdp);
            if live.stale_offer(&key, socket, &print) {
                tracing::info!(visit = %id, seat = ?seat, socket = %socket, "video offer refused: stale");
                return Err(VideoError::Replaced);
            }
            let joined = &mut live.joined;
            let (same, replaced) = match joined.get(&key) {
                Some(j) if &j.socket == socket && j.fingerprint == print => {
                    (Some(j.participant.clone()), None)
                }
                _ => {
                    let claim = Joined {
                        participant: participant.clone(),
                        socket: socket.clone(),
                        fingerprint: print,
                    };
                    (None, joined.insert(key.clone(), claim))
                }
            };
            if let Some(old) = &replaced {
                live.retire(&key, old.fingerprint.clone());
            }
            (visit, key, same, replaced)
        };
        let seat = key.1.clone();
        if seat == Seat::Nurse {
            match offer.screen_track {
                None => self.screen_stopped(&visit),
                Some(_) => self.screen_started(&visit),
            }
        }
        if let Some(same) = same {
            tracing::info!(visit = %id, seat = ?seat, socket = %socket, "video renegotiated");
            return Ok(self.engine.renegotiate(&same, offer).await?);
        }
        let replaces = replaced.as_ref().map(|r| r.participant.as_str().to_string());
        tracing::info!(visit = %id, seat = ?seat, socket = %socket, participant = participant.as_str(),
            replaces = ?replaces, "video connection joining");
        if let Some(old) = replaced {
            self.engine.leave(&old.participant).await;
            self.unlabel(&old.participant);
        }
        let joined = self
            .engine
            .join(id.as_str(), &participant, offer, self.sink(&visit, &seat))
            .await;
        let still_ours = {
            let mut live = self.live();
            let slots = &mut live.joined;
            let ours = slots.get(&key).is_some_and(|j| j.participant == participant);
            if ours && joined.is_err() {
                slots.remove(&key);
            }
            ours
        };
        if !still_ours {
            // A later join of the same side took the slot while the engine worked (and may have closed this
            // connection under it, failing the join): this one is obsolete either way.
            self.engine.leave(&participant).await;
            return Err(VideoError::Replaced);
        }
        let answer = joined?;
        self.label(&visit, &seat, &participant);
        let session = self.live().sessions.get(id).cloned();
        // A guest's tracks follow the patient's, the nurse's and her screen's, unless they declined (the
        // manifest says which).
        let source = match &seat {
            Seat::Patient => Some(Source::Patient),
            Seat::Nurse => Some(Source::Nurse),
            Seat::Guest(g) => guests::guest_source(&visit, g).ok(),
        };
        if let (Some(session), Some(source)) = (session, source) {
            session.add_participant(participant, source);
        }
        self.live().visits.seat_joined(id, &seat, now_ms());
        self.note_in_manifest(&visit, &seat, true).await;
        if let Seat::Guest(_) = seat {
            let v = self.live().visits.get(id).cloned();
            if let Some(v) = v {
                self.tell_party(&v);
            }
        }
        Ok(answer)
    }

    /// A trickled candidate of the participant's connection (`visit.join`).
    pub async fn candidate(
        &self,
        proof: &Authorized<VisitId>,
        candidate: IceCandidate,
    ) -> Result<(), VideoError> {
        proof.require(&["visit.join"])?;
        let (who, id) = (proof.subject(), proof.resource());
        let seat = {
            let live = self.live();
            let visits = &live.visits;
            visits.may_join(id, who)?.1
        };
        crate::media::sdp::check_candidate(&candidate.candidate)?;
        let participant = self
            .live()
            .joined
            .get(&(id.clone(), seat))
            .map(|j| j.participant.clone())
            .ok_or(MediaError::NoPeerConnection)?;
        Ok(self.engine.add_candidate(&participant, candidate).await?)
    }

    /// Either participant ends the video (`visit.end`); both return to chat.
    pub async fn end(&self, proof: &Authorized<VisitId>) -> Result<(), VideoError> {
        proof.require(&["visit.end"])?;
        let (id, who) = (proof.resource(), proof.subject());
        let guest = self.live().visits.get(id).and_then(|v| v.seat_of(who));
        if let Some(Seat::Guest(g)) = guest {
            return self.guest_leaves(id, &g).await;
        }
        let (visit, reason) = self.live().visits.end(id, who)?;
        self.finish(&visit, reason).await;
        Ok(())
    }

    async fn finish(&self, v: &Visit, reason: EndReason) {
        self.live().ending.insert(v.id.clone(), v.people());
        self.finish_and_tell(v, reason).await;
        self.live().ending.remove(&v.id);
    }

    async fn finish_and_tell(&self, v: &Visit, reason: EndReason) {
        self.stop_recording(v).await;
        self.classified(&v.id).await;
        self.close_media(v).await;
        self.metrics.live_visits.set(self.live().visits.len() as i64);
        // Another node took this visit over (this one was cut off): it goes on there, nobody is told it ended.
        if !self.placement.holds(v.id.as_str()).await {
            return;
        }
        self.placement.forget(v).await;
        for g in &v.party.guests {
            self.gone(v, &g.subject);
        }
        self.to_everyone(
            v,
            ServerFrame::VideoEnded {
                conversation_id: v.conversation.clone(),
                visit_id: v.id.to_string(),
                reason,
                epoch: v.epoch,
            },
        );
    }

    pub fn peer_connections(&self) -> usize {
        self.engine.peer_connections()
    }
}
