//! The live side of video visits: applies the [`Visits`](super::Visits) rules, drives the media engine and
//! tells both participants' sockets what happened. One participant connection per (visit, side); a new socket
//! joining (a reload) replaces the old connection, the same socket offering again renegotiates (ICE restart).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{ConversationFacts, EndReason, Side, Visit, VisitError, VisitId, VisitState, Visits};
use crate::audit::{AuditEvent, Auditor, Outcome};
use crate::auth::Role;
use crate::config::MediaConfig;
use crate::crypto::Keyring;
use crate::ids::{RequestId, SubjectId};
use crate::media::turn::{self, IceServer};
use crate::media::{EventSink, IceCandidate, MediaEngine, MediaError, MediaEvent, ParticipantId};
use crate::messaging::Messaging;
use crate::messaging::protocol::RecordingNotice;
use crate::messaging::protocol::ServerFrame;
use crate::policy::recording::{RecordingDecision, RecordingPolicies};
use crate::recording::objects::ObjectStore;
use crate::recording::recorder::Source;
use crate::recording::session::{LocalStore, RecordingSession};
use crate::recording::timeline::RecordingState;
use crate::store::now_ms;
use crate::store::{Db, NewRecording};
use crate::telemetry::MediaMetrics;
use crate::waiting_room::Presence;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(transparent)]
    Visit(#[from] VisitError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the conversation is not open")]
    NoConversation,
    #[error("this visit is not being recorded")]
    NotRecorded,
    #[error("a reason is required")]
    ReasonRequired,
    #[error("recording failed")]
    Recording,
}

/// The recording side of the video service: policies, keys, storage, and the sessions in progress.
pub struct RecordingSetup {
    pub policies: RecordingPolicies,
    pub keyring: Keyring,
    pub store: LocalStore,
    pub objects: Arc<dyn ObjectStore>,
    pub db: Db,
    pub audit: Auditor,
}

struct Joined {
    participant: ParticipantId,
    /// The socket that joined (its request id).
    socket: RequestId,
}

pub struct VideoService {
    visits: Mutex<Visits>,
    recording: RecordingSetup,
    /// Recordings in progress by visit, and each visit's recording notice.
    sessions: Mutex<HashMap<VisitId, Arc<RecordingSession>>>,
    notices: Mutex<HashMap<VisitId, RecordingNotice>>,
    joined: Mutex<HashMap<(VisitId, Side), Joined>>,
    engine: Arc<dyn MediaEngine>,
    messaging: Arc<Messaging>,
    config: MediaConfig,
    turn_secret: Option<Vec<u8>>,
    metrics: MediaMetrics,
}

impl VideoService {
    pub fn new(
        config: &MediaConfig,
        turn_secret: Option<Vec<u8>>,
        engine: Arc<dyn MediaEngine>,
        messaging: Arc<Messaging>,
        metrics: MediaMetrics,
        recording: RecordingSetup,
    ) -> Self {
        Self {
            visits: Mutex::new(Visits::default()),
            recording,
            sessions: Mutex::new(HashMap::new()),
            notices: Mutex::new(HashMap::new()),
            joined: Mutex::new(HashMap::new()),
            engine,
            messaging,
            config: config.clone(),
            turn_secret,
            metrics,
        }
    }

    fn visits(&self) -> std::sync::MutexGuard<'_, Visits> {
        self.visits.lock().expect("visits lock")
    }

    fn to_both(&self, v: &Visit, frame: ServerFrame) {
        self.messaging.hub.send(&v.patient, frame.clone());
        self.messaging.hub.send(&v.nurse, frame);
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
            VisitState::Proposed => ServerFrame::VideoProposed {
                conversation_id: v.conversation.clone(),
                visit_id: v.id.to_string(),
                recording: match self.decision(v) {
                    None => RecordingNotice::None,
                    Some(d) if d.consent_required => RecordingNotice::ConsentRequired,
                    Some(_) => RecordingNotice::WillRecord,
                },
            },
            VisitState::Active => ServerFrame::VideoStarted {
                conversation_id: v.conversation.clone(),
                visit_id: v.id.to_string(),
                ice_servers: self.ice_servers(),
                ice_transport_policy: if self.config.force_relay { "relay" } else { "all" }.into(),
                recording: self.notice(&v.id),
            },
        }
    }

    fn decision(&self, v: &Visit) -> Option<RecordingDecision> {
        self.recording.policies.decide(&v.queue, "video")
    }

    fn notice(&self, id: &VisitId) -> RecordingNotice {
        let session = self.sessions.lock().expect("sessions lock").get(id).cloned();
        match session {
            Some(s) if s.state() == RecordingState::Paused => RecordingNotice::Paused,
            Some(_) => RecordingNotice::Recording,
            None => self
                .notices
                .lock()
                .expect("notices lock")
                .get(id)
                .copied()
                .unwrap_or(RecordingNotice::None),
        }
    }

    /// Starts recording a visit the patient just joined, when policy and consent say so.
    async fn start_recording(&self, v: &Visit, consent: Option<bool>) {
        let Some(decision) = self.decision(v) else {
            return;
        };
        let consent_text = match (decision.consent_required, consent) {
            (true, Some(true)) => "recorded",
            (true, _) => {
                self.notices
                    .lock()
                    .expect("notices lock")
                    .insert(v.id.clone(), RecordingNotice::Declined);
                self.recording
                    .audit
                    .record_or_log(
                        AuditEvent::new("recording.consent", format!("visit:{}", v.id), Outcome::Success)
                            .reason("declined: the visit is not recorded"),
                    )
                    .await;
                return;
            }
            (false, _) => "not_required",
        };
        let now = now_ms();
        let started = RecordingSession::start(&self.recording.store, &self.recording.keyring, now);
        let (session, keys) = match started {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(error = %e, "recording could not start");
                return;
            }
        };
        let retain_until = now + decision.retention_days as i64 * 86_400_000;
        let policies = decision.policies.join(",");
        let row = NewRecording {
            id: &session.id,
            visit_id: v.id.as_str(),
            queue: &v.queue,
            policies: &policies,
            consent: consent_text,
            kek_id: &keys.kek_id,
            wrapped_key: &keys.wrapped_key,
            spool_kek_id: &keys.spool_kek_id,
            spool_wrapped_key: &keys.spool_wrapped_key,
            started_at: now,
            retain_until,
        };
        if let Err(e) = self.recording.db.insert_recording(&row).await {
            tracing::error!(error = %e, "recording row could not be written");
            return;
        }
        self.recording
            .audit
            .record_or_log(
                AuditEvent::new(
                    "recording.start",
                    format!("recording:{}", session.id),
                    Outcome::Success,
                )
                .reason(format!("visit:{} policy:{policies} consent:{consent_text}", v.id)),
            )
            .await;
        let session = Arc::new(session);
        self.engine.set_tap(v.id.as_str(), Some(session.clone()));
        self.sessions
            .lock()
            .expect("sessions lock")
            .insert(v.id.clone(), session);
    }

    async fn stop_recording(&self, v: &Visit) {
        let session = self.sessions.lock().expect("sessions lock").remove(&v.id);
        self.notices.lock().expect("notices lock").remove(&v.id);
        let Some(session) = session else {
            return;
        };
        self.engine.set_tap(v.id.as_str(), None);
        let now = now_ms();
        let store = self.recording.store.clone();
        let s = session.clone();
        let stored = tokio::task::spawn_blocking(move || s.finish(&store, now)).await;
        match stored {
            Ok(Ok(stored)) => {
                let manifest = serde_json::to_string(&stored.timeline).unwrap_or_default();
                let r = self
                    .recording
                    .db
                    .finish_recording(
                        &session.id,
                        now,
                        &stored.object_key,
                        stored.object_bytes as i64,
                        stored.media_bytes as i64,
                        &manifest,
                    )
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "recording row could not be updated");
                }
                self.upload(&session.id).await;
            }
            Ok(Err(e)) => tracing::error!(error = %e, "recording could not be stored"),
            Err(e) => tracing::error!(error = %e, "recording task failed"),
        }
    }

    /// Secure pause or resume by the visit's nurse (or an integration allowed to pause others' visits).
    pub async fn set_recording_state(
        &self,
        who: &SubjectId,
        role: Role,
        id: &VisitId,
        state: RecordingState,
        reason: &str,
    ) -> Result<RecordingNotice, VideoError> {
        if reason.trim().is_empty() {
            return Err(VideoError::ReasonRequired);
        }
        let visit = self.visits().get(id).cloned().ok_or(VisitError::UnknownVisit)?;
        if role != Role::Service && visit.side_of(who) != Some(Side::Nurse) {
            return Err(VisitError::NotParticipant.into());
        }
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .cloned()
            .ok_or(VideoError::NotRecorded)?;
        let by = crate::pii::pseudonym(who.as_str());
        let (changed, keyframes) = session.set_state(state, reason, &by, now_ms());
        if keyframes {
            self.engine.request_keyframes(id.as_str()).await;
        }
        let notice = self.notice(id);
        if changed && let Some(timeline) = session.timeline() {
            let manifest = serde_json::to_string(&timeline).unwrap_or_default();
            if let Err(e) = self
                .recording
                .db
                .update_recording_manifest(&session.id, &manifest)
                .await
            {
                tracing::error!(error = %e, "recording manifest could not be saved");
            }
        }
        if changed {
            self.to_both(
                &visit,
                ServerFrame::RecordingState {
                    visit_id: id.to_string(),
                    state: notice,
                },
            );
        }
        Ok(notice)
    }

    pub fn live_of(&self, who: &SubjectId) -> Vec<ServerFrame> {
        let visits = self.visits().of_subject(who);
        visits.iter().map(|v| self.describe(v)).collect()
    }

    pub fn visit(&self, id: &VisitId) -> Option<Visit> {
        self.visits().get(id).cloned()
    }

    /// The nurse asks to elevate a conversation to video.
    pub async fn elevate(&self, nurse: &SubjectId, conversation_id: &str) -> Result<Visit, VideoError> {
        let row = self
            .messaging
            .conversation(conversation_id)
            .await
            .map_err(|_| VideoError::NoConversation)?
            .ok_or(VideoError::NoConversation)?;
        let patient = SubjectId::new(row.patient.clone());
        let assigned = row
            .nurse
            .clone()
            .filter(|_| row.state == "assigned")
            .map(SubjectId::new);
        let wrap_up = self.messaging.presence(nurse).await == Presence::WrapUp;
        let visit = self
            .visits()
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
        self.metrics.live_visits.set(self.visits().len() as i64);
        let frame = self.describe(&visit);
        self.to_both(&visit, frame);
        Ok(visit)
    }

    /// The patient's answer to the camera and microphone prompt.
    pub async fn answer(
        &self,
        who: &SubjectId,
        id: &VisitId,
        accept: bool,
        recording_consent: Option<bool>,
    ) -> Result<Visit, VideoError> {
        let visit = self.visits().answer(id, who, accept, now_ms())?;
        if accept {
            self.start_recording(&visit, recording_consent).await;
            self.to_both(&visit, self.describe(&visit));
        } else {
            self.finish(&visit, EndReason::Declined).await;
        }
        Ok(visit)
    }

    /// A participant's SDP offer: joins (or rejoins after a reload) or renegotiates (ICE restart).
    pub async fn offer(
        &self,
        who: &SubjectId,
        socket: &RequestId,
        id: &VisitId,
        sdp: &str,
    ) -> Result<String, VideoError> {
        let (visit, side) = {
            let visits = self.visits();
            let (v, side) = visits.may_join(id, who)?;
            (v.clone(), side)
        };
        let key = (id.clone(), side);
        let existing = self
            .joined
            .lock()
            .expect("joined lock")
            .get(&key)
            .map(|j| (j.participant.clone(), &j.socket == socket));
        match existing {
            Some((participant, true)) => return Ok(self.engine.renegotiate(&participant, sdp).await?),
            Some((participant, false)) => {
                self.joined.lock().expect("joined lock").remove(&key);
                self.engine.leave(&participant).await;
            }
            None => {}
        }
        let participant = ParticipantId::random();
        let answer = self
            .engine
            .join(id.as_str(), &participant, sdp, self.sink(&visit, side))
            .await?;
        let session = self.sessions.lock().expect("sessions lock").get(id).cloned();
        if let Some(session) = session {
            let source = match side {
                Side::Patient => Source::Patient,
                Side::Nurse => Source::Nurse,
            };
            session.add_participant(participant.clone(), source);
        }
        self.joined.lock().expect("joined lock").insert(
            key,
            Joined {
                participant,
                socket: socket.clone(),
            },
        );
        self.visits().joined(id, side);
        Ok(answer)
    }

    pub async fn candidate(
        &self,
        who: &SubjectId,
        id: &VisitId,
        candidate: IceCandidate,
    ) -> Result<(), VideoError> {
        let side = {
            let visits = self.visits();
            visits.may_join(id, who)?.1
        };
        crate::media::sdp::check_candidate(&candidate.candidate)?;
        let participant = self
            .joined
            .lock()
            .expect("joined lock")
            .get(&(id.clone(), side))
            .map(|j| j.participant.clone())
            .ok_or(MediaError::NoPeerConnection)?;
        Ok(self.engine.add_candidate(&participant, candidate).await?)
    }

    /// A participant hangs up its connection but the visit stays (it may rejoin).
    pub async fn leave(&self, who: &SubjectId, id: &VisitId) -> Result<(), VideoError> {
        let side = {
            let visits = self.visits();
            let v = visits.get(id).ok_or(VisitError::UnknownVisit)?;
            v.side_of(who).ok_or(VisitError::NotParticipant)?
        };
        self.drop_participant(id, side).await;
        Ok(())
    }

    /// Either participant ends the video; both return to chat.
    pub async fn end(&self, who: &SubjectId, id: &VisitId) -> Result<(), VideoError> {
        let (visit, reason) = self.visits().end(id, who)?;
        self.finish(&visit, reason).await;
        Ok(())
    }

    /// Closes the connections a closed socket had joined.
    pub async fn socket_closed(&self, socket: &RequestId) {
        let gone: Vec<(VisitId, Side)> = self
            .joined
            .lock()
            .expect("joined lock")
            .iter()
            .filter(|(_, j)| &j.socket == socket)
            .map(|(k, _)| k.clone())
            .collect();
        for (id, side) in gone {
            self.drop_participant(&id, side).await;
        }
    }

    /// Periodic: closes visits whose participants are gone past the grace, and visits whose chat ended.
    pub async fn sweep(&self) {
        let grace = self.config.empty_visit_grace_seconds as i64 * 1000;
        let abandoned = self.visits().sweep(now_ms(), grace);
        for v in abandoned {
            self.finish(&v, EndReason::Abandoned).await;
        }
        let live = self.visits().all();
        for v in live {
            let open = matches!(
                self.messaging.conversation(&v.conversation).await,
                Ok(Some(row)) if row.state == "assigned"
            );
            let ended = if open {
                None
            } else {
                self.visits().end_conversation(&v.conversation)
            };
            if let Some(v) = ended {
                self.finish(&v, EndReason::ChatEnded).await;
            }
        }
        self.metrics.live_visits.set(self.visits().len() as i64);
    }

    async fn drop_participant(&self, id: &VisitId, side: Side) {
        let j = self
            .joined
            .lock()
            .expect("joined lock")
            .remove(&(id.clone(), side));
        if let Some(j) = j {
            self.engine.leave(&j.participant).await;
        }
        self.visits().left(id, side, now_ms());
    }

    async fn finish(&self, v: &Visit, reason: EndReason) {
        self.stop_recording(v).await;
        for side in [Side::Patient, Side::Nurse] {
            let j = self
                .joined
                .lock()
                .expect("joined lock")
                .remove(&(v.id.clone(), side));
            if let Some(j) = j {
                self.engine.leave(&j.participant).await;
            }
        }
        self.engine.close_room(v.id.as_str()).await;
        self.metrics.live_visits.set(self.visits().len() as i64);
        self.to_both(
            v,
            ServerFrame::VideoEnded {
                conversation_id: v.conversation.clone(),
                visit_id: v.id.to_string(),
                reason,
            },
        );
    }

    /// Engine events of one participant, as frames: candidates to that participant, connection state to both.
    fn sink(&self, v: &Visit, side: Side) -> EventSink {
        let hub = self.messaging.clone();
        let (me, patient, nurse) = (v.subject(side).clone(), v.patient.clone(), v.nurse.clone());
        let visit_id = v.id.to_string();
        Arc::new(move |event| match event {
            MediaEvent::LocalCandidate(candidate) => hub.hub.send(
                &me,
                ServerFrame::VideoCandidate {
                    visit_id: visit_id.clone(),
                    candidate,
                },
            ),
            MediaEvent::State(state) => {
                let frame = ServerFrame::VideoPeer {
                    visit_id: visit_id.clone(),
                    side,
                    state,
                };
                hub.hub.send(&patient, frame.clone());
                hub.hub.send(&nurse, frame);
            }
        })
    }

    pub async fn run_timers(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.sweep().await;
            self.retry_uploads().await;
        }
    }

    /// After a start: recordings a crash left in progress are finalized from their spools, with the lost time
    /// marked as a gap; each is audited.
    pub async fn recover_recordings(&self) {
        let rows = match self.recording.db.unfinished_recordings().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "unfinished recordings could not be listed");
                return;
            }
        };
        for row in rows {
            let now = now_ms();
            let timeline = row
                .manifest
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_else(|| crate::recording::timeline::Timeline::start(row.started_at));
            let (store, keyring) = (&self.recording.store, &self.recording.keyring);
            let recovered = crate::recording::session::recover(
                store,
                keyring,
                &row.id,
                &row.spool_kek_id,
                &row.spool_wrapped_key,
                &row.kek_id,
                &row.wrapped_key,
                timeline,
                now,
            );
            match recovered {
                Ok(stored) => {
                    let manifest = serde_json::to_string(&stored.timeline).unwrap_or_default();
                    let ended = stored.timeline.ended_ms.unwrap_or(now);
                    let r = self
                        .recording
                        .db
                        .finish_recording(
                            &row.id,
                            ended,
                            &stored.object_key,
                            stored.object_bytes as i64,
                            stored.media_bytes as i64,
                            &manifest,
                        )
                        .await;
                    if let Err(e) = r {
                        tracing::error!(error = %e, "recovered recording row could not be updated");
                    }
                    self.upload(&row.id).await;
                    self.recording
                        .audit
                        .record_or_log(
                            AuditEvent::new(
                                "recording.recovered",
                                format!("recording:{}", row.id),
                                Outcome::Success,
                            )
                            .reason("finalized after a restart; the lost interval is marked as a gap"),
                        )
                        .await;
                }
                Err(e) => tracing::error!(error = %e, "recording could not be recovered"),
            }
        }
    }

    /// Moves a finished recording's sealed object from the outbox to the object store. On failure the object
    /// stays in the outbox (sealed) and the next sweep tries again; nothing is lost while storage is down.
    async fn upload(&self, id: &str) {
        let row = match self.recording.db.recording(id).await {
            Ok(Some(row)) if row.state == "uploading" => row,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "recording row could not be read");
                return;
            }
        };
        let Some(key) = row.object_key.clone() else {
            return;
        };
        let outbox = self.recording.store.outbox_path(&key);
        match self
            .recording
            .objects
            .put_file(&key, &outbox, row.retain_until, row.legal_hold)
            .await
        {
            Ok(()) => {
                if let Err(e) = self.recording.db.mark_recording_stored(id).await {
                    tracing::error!(error = %e, "recording row could not be updated");
                    return;
                }
                let _ = tokio::fs::remove_file(&outbox).await;
                self.recording
                    .audit
                    .record_or_log(
                        AuditEvent::new("recording.stored", format!("recording:{id}"), Outcome::Success)
                            .reason(format!("{} bytes sealed", row.object_bytes.unwrap_or(0))),
                    )
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "recording upload failed; kept in the outbox for retry"),
        }
    }

    /// Retries uploads an object store outage left in the outbox.
    pub async fn retry_uploads(&self) {
        if let Ok(rows) = self.recording.db.uploading_recordings().await {
            for row in rows {
                self.upload(&row.id).await;
            }
        }
    }

    pub fn recording_objects(&self) -> &dyn ObjectStore {
        self.recording.objects.as_ref()
    }

    pub fn recording_store(&self) -> &LocalStore {
        &self.recording.store
    }

    pub fn recording_keyring(&self) -> &Keyring {
        &self.recording.keyring
    }

    pub fn peer_connections(&self) -> usize {
        self.engine.peer_connections()
    }
}
