//! The recording side of the video service: whether a visit is recorded (policy and consent), the recording
//! session behind the SFU's tap, secure pause, and the way a finished recording reaches the object store
//! (outbox, upload, retry) — including recordings a crash left behind.

use super::{VideoError, VideoService};
use crate::audit::{AuditEvent, Outcome};
use crate::clock::now_ms;
use crate::policy::Authorized;
use crate::policy::recording::RecordingDecision;
use crate::protocol::{RecordingNotice, ServerFrame};
use crate::recording::objects::ObjectStore;
use crate::recording::session::RecordingSession;
use crate::recording::timeline::RecordingState;
use crate::store::{NewRecording, RecordingPhase, RecordingRow};
use crate::visit::{Seat, Visit, VisitError, VisitId};
use std::sync::Arc;

impl VideoService {
    pub(super) fn decision(&self, v: &Visit) -> Option<RecordingDecision> {
        self.recording.policies.decide(&v.queue, "video")
    }

    /// Whether the nurse's screen goes into this visit's recording: it is being recorded and its policy says so.
    pub(super) fn records_screen(&self, v: &Visit) -> bool {
        let recorded = self.live().sessions.contains_key(&v.id);
        self.screen_allowed(v, &Seat::Nurse, recorded)
    }

    /// Whether `side` may offer a screen capture: only the nurse, only into a recording (`recorded`) whose
    /// policy records the screen.
    pub(super) fn screen_allowed(&self, v: &Visit, seat: &Seat, recorded: bool) -> bool {
        *seat == Seat::Nurse && recorded && self.decision(v).is_some_and(|d| d.record_screen_share)
    }

    /// The nurse offered without a screen capture: the screen's interval in the recording ends (she stopped
    /// sharing; nothing changes when none was open).
    pub(super) fn screen_stopped(&self, v: &Visit) {
        let session = self.live().sessions.get(&v.id).cloned();
        if let Some(session) = session {
            session.screen_stopped(now_ms());
        }
    }

    /// The nurse offered a screen capture: after a stop, its packets are recorded again.
    pub(super) fn screen_started(&self, v: &Visit) {
        let session = self.live().sessions.get(&v.id).cloned();
        if let Some(session) = session {
            session.screen_started();
        }
    }

    pub(super) fn notice(&self, id: &VisitId) -> RecordingNotice {
        let session = self.live().sessions.get(id).cloned();
        match session {
            Some(s) if s.state() == RecordingState::Paused => RecordingNotice::Paused,
            Some(_) => RecordingNotice::Recording,
            None => self
                .live()
                .notices
                .get(id)
                .copied()
                .unwrap_or(RecordingNotice::None),
        }
    }

    /// Starts recording a visit the patient just joined, when policy and consent say so.
    pub(super) async fn start_recording(&self, v: &Visit, consent: Option<bool>) {
        let Some(decision) = self.decision(v) else {
            return;
        };
        let consent_text = match (decision.consent_required, consent) {
            (true, Some(true)) => "recorded",
            (true, _) => {
                self.live()
                    .notices
                    .insert(v.id.clone(), RecordingNotice::Declined);
                self.recording
                    .audit
                    .record_or_log(
                        AuditEvent::system(
                            "recorder",
                            "recording.consent",
                            format!("visit:{}", v.id),
                            Outcome::Success,
                        )
                        .reason("declined: the visit is not recorded"),
                    )
                    .await;
                return;
            }
            (false, _) => "not_required",
        };
        let now = now_ms();
        // A visit that moved here continues its recording: the same timeline, retention and hold.
        let earlier = match self.recording.db.recordings_of_visit(v.id.as_str()).await {
            Ok(parts) => parts.into_iter().next(),
            Err(e) => {
                tracing::error!(error = %e, "earlier recording parts could not be read");
                None
            }
        };
        let started = RecordingSession::start(&self.recording.store, &self.recording.keyring, now);
        let (session, keys) = match started {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(error = %e, "recording could not start");
                return;
            }
        };
        session.keyframe_every(self.recording.keyframe_ms);
        let (retain_until, origin_ms) = match &earlier {
            Some(first) => (first.retain_until, first.origin_ms),
            None => (now + decision.retention_days as i64 * 86_400_000, now),
        };
        session.set_origin(origin_ms);
        if decision.record_screen_share {
            session.record_screen();
        }
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
            writer: self.placement.node_id(),
            origin_ms,
        };
        if let Err(e) = self.recording.db.insert_recording(&row).await {
            tracing::error!(error = %e, "recording row could not be written");
            return;
        }
        if earlier.as_ref().is_some_and(|first| first.legal_hold)
            && let Err(e) = self.recording.db.set_legal_hold(v.id.as_str(), true).await
        {
            tracing::error!(error = %e, "legal hold not carried to the new part");
        }
        self.recording
            .audit
            .record_or_log(
                AuditEvent::system(
                    "recorder",
                    "recording.start",
                    format!("recording:{}", session.id),
                    Outcome::Success,
                )
                .reason(format!(
                    "visit:{} policy:{policies} consent:{consent_text} conversation:{} retain_until:{retain_until}",
                    v.id, v.conversation
                )),
            )
            .await;
        let session = Arc::new(session);
        self.engine.set_tap(v.id.as_str(), Some(session.clone()));
        // The visit may have ended while the row and the audit event were written: then this recording is
        // finished at once (stored, uploaded, audited) instead of left in progress.
        let ended = {
            let mut live = self.live();
            live.sessions.insert(v.id.clone(), session);
            live.visits.get(&v.id).is_none()
        };
        if ended {
            self.stop_recording(v).await;
        }
    }

    pub(super) async fn stop_recording(&self, v: &Visit) {
        let session = self.live().sessions.remove(&v.id);
        self.live().notices.remove(&v.id);
        let Some(session) = session else {
            return;
        };
        self.engine.set_tap(v.id.as_str(), None);
        // A periodic cut in progress finishes first.
        let _closing = session.segment_lock.lock().await;
        let now = now_ms();
        let store = self.recording.store.clone();
        let s = session.clone();
        let stored = tokio::task::spawn_blocking(move || s.finish(&store, now)).await;
        match stored {
            Ok(Ok(stored)) => {
                self.store_finished(&session.id, &stored, now).await;
            }
            Ok(Err(e)) => tracing::error!(error = %e, "recording could not be stored"),
            Err(e) => tracing::error!(error = %e, "recording task failed"),
        }
    }

    /// Secure pause or resume by whoever the policy allowed (`visit.recording_state.set`: the visit's nurse, an
    /// integration whose token carries the pause scope).
    pub async fn set_recording_state(
        &self,
        proof: &Authorized<VisitId>,
        state: RecordingState,
        reason: &str,
    ) -> Result<RecordingNotice, VideoError> {
        proof.require(&["visit.recording_state.set"])?;
        let (who, id) = (proof.subject(), proof.resource());
        if reason.trim().is_empty() {
            return Err(VideoError::ReasonRequired);
        }
        let visit = self
            .live()
            .visits
            .get(id)
            .cloned()
            .ok_or(VisitError::UnknownVisit)?;
        // Guests and staff asked in are assigned to the visit to take part in it (whatever other roles they
        // hold); pausing its recording is its nurse's, or a service's.
        if visit.party.get(who).is_some() {
            return Err(VisitError::NotAssignedNurse.into());
        }
        let session = self
            .live()
            .sessions
            .get(id)
            .cloned()
            .ok_or(VideoError::NotRecorded)?;
        let by = crate::pii::pseudonym(who.as_str());
        let (changed, keyframes) = session.set_state(state, reason, &by, now_ms());
        if keyframes {
            self.engine.request_keyframes(id.as_str()).await;
        }
        let notice = self.notice(id);
        if changed {
            self.classify(id, |c| c.paused(notice == RecordingNotice::Paused));
            self.save_classification(id, None).await;
        }
        if changed {
            self.save_manifest(&session).await;
            self.publish_host(id).await;
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

    /// At start, before any visit can begin: the recordings a crash left in progress. Listed now (a visit that
    /// starts later is never mistaken for one), finalized by [`Self::recover_recordings`] in the background.
    pub async fn find_unfinished_recordings(&self) {
        let rows = self.local_unfinished(true).await;
        *self.unfinished.lock().expect("unfinished lock") = rows;
    }

    /// Unfinished recordings whose spool is on this node's disk (another node's are for it to finish), of this
    /// node's previous run (`include_mine`, at start only) or of writers that are no longer alive.
    async fn local_unfinished(&self, include_mine: bool) -> Vec<crate::store::RecordingRow> {
        let me = self.placement.node_id().to_string();
        match self
            .recording
            .db
            .unfinished_recordings(&me, self.placement.alive_ms(), include_mine)
            .await
        {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| {
                    let store = &self.recording.store;
                    store.spool_path(&r.id).exists() || !store.closed_spools(&r.id).is_empty()
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "unfinished recordings could not be listed");
                Vec::new()
            }
        }
    }

    /// The `recording-recovery` worker: each recording found at start is finalized from its spool, the lost
    /// time marked as a gap, and audited. A stop leaves the rest in progress for the next start.
    pub async fn recover_recordings(
        self: std::sync::Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let rows = std::mem::take(&mut *self.unfinished.lock().expect("unfinished lock"));
        self.clone().recover_rows(rows, &stop).await;
        if !self.placement.shared() {
            return;
        }
        // A writer may still count as alive at our start (a previous run under another id, its heartbeat younger
        // than `cluster.dead_after_seconds`): its spools on this disk are finished once it is dead.
        let mut tried = std::collections::HashSet::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let rows: Vec<_> = self
                .local_unfinished(false)
                .await
                .into_iter()
                .filter(|r| tried.insert(r.id.clone()))
                .collect();
            self.clone().recover_rows(rows, &stop).await;
        }
    }

    async fn recover_rows(
        self: std::sync::Arc<Self>,
        rows: Vec<crate::store::RecordingRow>,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) {
        for row in rows {
            if *stop.borrow() {
                return;
            }
            let now = now_ms();
            let timeline = row
                .manifest
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_else(|| crate::recording::timeline::Timeline::start(row.started_at));
            // Reading, opening and resealing a spool is blocking work: off the runtime's threads, so live visits
            // beside it are not stalled.
            let done = self
                .recording
                .db
                .segments_of(&[&row.id])
                .await
                .unwrap_or_default();
            let recorded: Vec<i64> = done.iter().map(|s| s.seq).collect();
            let known_end_ms = done.last().map_or(row.started_at, |s| s.end_ms);
            let (this, r) = (self.clone(), row.clone());
            let recovered = tokio::task::spawn_blocking(move || {
                let part = crate::recording::recovery::Leftover {
                    id: &r.id,
                    spool_kek_id: &r.spool_kek_id,
                    spool_wrapped_key: &r.spool_wrapped_key,
                    kek_id: &r.kek_id,
                    wrapped_key: &r.wrapped_key,
                    recorded,
                    known_end_ms,
                };
                crate::recording::recovery::recover(
                    &this.recording.store,
                    &this.recording.keyring,
                    &part,
                    timeline,
                    now,
                )
            })
            .await;
            let recovered = match recovered {
                Ok(result) => result,
                Err(e) => {
                    tracing::error!(error = %e, "recording recovery stopped");
                    continue;
                }
            };
            match recovered {
                Ok(stored) => {
                    self.store_finished(&row.id, &stored, stored.timeline.ended_ms.unwrap_or(now))
                        .await;
                    self.recording
                        .audit
                        .record_or_log(
                            AuditEvent::system(
                                "recording-recovery",
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

    /// Moves a whole-file recording (made before recordings were segmented) from the outbox to the object store.
    /// On failure the object stays in the outbox (sealed) and the next sweep tries again.
    pub(super) async fn upload(&self, id: &str) {
        let row = match self.recording.db.recording(id).await {
            Ok(Some(row)) if row.state == RecordingPhase::Uploading => row,
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
                        AuditEvent::system(
                            "recorder",
                            "recording.stored",
                            format!("recording:{id}"),
                            Outcome::Success,
                        )
                        .reason(format!("{} bytes sealed", row.object_bytes.unwrap_or(0))),
                    )
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "recording upload failed; kept in the outbox for retry"),
        }
    }

    pub fn recording_objects(&self) -> &dyn ObjectStore {
        self.recording.objects.as_ref()
    }

    /// Sets or releases a legal hold on a visit's whole recording: every part's stored objects (Object Lock)
    /// and rows.
    pub async fn set_legal_hold(
        &self,
        proof: &Authorized<RecordingRow>,
        hold: bool,
    ) -> Result<(), RecordingAccessError> {
        proof.require(&["recording.hold"])?;
        let row = proof.resource();
        if row.state == RecordingPhase::Deleted {
            return Err(RecordingAccessError::Deleted);
        }
        let unreadable = |e: crate::store::StoreError| RecordingAccessError::Unreadable(e.to_string());
        let recording = self.visit_recording(row).await?;
        let keys = recording
            .parts
            .iter()
            .filter(|p| p.state == RecordingPhase::Stored)
            .filter_map(|p| p.object_key.clone())
            .chain(
                recording
                    .segments
                    .into_iter()
                    .filter(|s| s.stored)
                    .map(|s| s.object_key),
            );
        for key in keys {
            self.recording
                .objects
                .set_legal_hold(&key, hold)
                .await
                .map_err(|e| RecordingAccessError::Unreadable(format!("legal hold on the object: {e}")))?;
        }
        self.recording
            .db
            .set_legal_hold(&row.visit_id, hold)
            .await
            .map(|_| ())
            .map_err(unreadable)
    }
}

impl From<crate::policy::Denial> for RecordingAccessError {
    fn from(d: crate::policy::Denial) -> Self {
        Self::WrongProof(d.reason)
    }
}

impl RecordingAccessError {
    /// The code a client gets.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotStored => "not_stored",
            Self::Deleted => "deleted",
            Self::Unreadable(_) => "internal",
            Self::WrongProof(_) => "forbidden",
            Self::NotInRecording => "not_in_recording",
        }
    }
}

/// Why an allowed access to a recording still cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RecordingAccessError {
    #[error("the recording is not stored yet")]
    NotStored,
    #[error("the recording was deleted")]
    Deleted,
    #[error("the recording could not be read: {0}")]
    Unreadable(String),
    #[error("{0}")]
    WrongProof(String),
    #[error("no media of that participant is in this recording")]
    NotInRecording,
}
