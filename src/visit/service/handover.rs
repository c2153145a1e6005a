//! A visit moving to another node, with its participants and its recording. The host keeps its row in
//! `visit_hosts` current (state, what the recording notice says, the recording it writes). A draining host hands
//! each live visit to the least loaded other node: it stores its part of the recording whole, closes its media
//! room without ending the visit, and the new host adopts the visit. When a host dies, the node holding the
//! `visit-failover` lease finds its visits and has them adopted. Adopting means: the visit is live here with
//! nobody connected, a new recording continues the old one (same consent, a secure pause carried over, the
//! outage of a failover marked), and both participants are told to rejoin (`video_started` with `rejoin`),
//! which their clients do with a new peer connection and no new question.

use std::sync::Arc;

use super::{VideoError, VideoService};
use crate::audit::{AuditEvent, Outcome};
use crate::clock::now_ms;
use crate::ids::{ConversationId, SubjectId};
use crate::protocol::{EndReason, RecordingNotice, ServerFrame};
use crate::recording::timeline::{Continuation, RecordingState};
use crate::store::VisitHostRow;
use crate::visit::placement::{ADOPT_PATH, Adoption, Host};
use crate::visit::{Visit, VisitId, VisitState};

fn notice_str(n: RecordingNotice) -> &'static str {
    match n {
        RecordingNotice::None => "none",
        RecordingNotice::ConsentRequired => "consent_required",
        RecordingNotice::WillRecord => "will_record",
        RecordingNotice::Recording => "recording",
        RecordingNotice::Paused => "paused",
        RecordingNotice::Declined => "declined",
    }
}

impl VideoService {
    /// The host's view of a live visit, for its `visit_hosts` row.
    fn host_row(&self, v: &Visit) -> VisitHostRow {
        VisitHostRow {
            visit_id: v.id.to_string(),
            conversation_id: v.conversation.to_string(),
            queue: v.queue.clone(),
            patient: v.patient.as_str().to_string(),
            nurse: v.nurse.as_str().to_string(),
            host_node: self.placement.node_id().to_string(),
            created_at: v.created_ms,
            state: v.state.as_str().to_string(),
            recording: notice_str(self.notice(&v.id)).to_string(),
            recording_id: self.live().sessions.get(&v.id).map(|s| s.id.to_string()),
            epoch: v.epoch as i64,
        }
    }

    /// Writes this node's row for a live visit (when several nodes share the database). If another node holds
    /// the visit now (it took it over while this one was cut off from the database), this node lets it go.
    pub(super) async fn publish_host(&self, id: &VisitId) {
        let visit = self.live().visits.get(id).cloned();
        if let Some(v) = visit
            && self.placement.shared()
            && !self.placement.register(self.host_row(&v)).await
        {
            self.let_go(&v.id).await;
        }
    }

    /// A visit another node holds now: its part of the recording is stored, its connections here closed, and
    /// nobody is told (the participants follow the new host).
    async fn let_go(&self, id: &VisitId) {
        let Some(v) = self.live().visits.give_up(id) else {
            return;
        };
        tracing::warn!("a visit this node hosted is held by another node now: letting it go");
        self.stop_recording(&v).await;
        self.close_media(&v).await;
        self.guests_left_behind(&v);
        self.live().classes.remove(&v.id);
        self.metrics.live_visits.set(self.live_visits() as i64);
    }

    /// Closes the visit's connections and media room here (it ends, or moves on).
    pub(super) async fn close_media(&self, v: &Visit) {
        for seat in v.seats() {
            self.live().retired.remove(&(v.id.clone(), seat.clone()));
            let j = self.live().joined.remove(&(v.id.clone(), seat));
            if let Some(j) = j {
                self.engine.leave(&j.participant).await;
                self.unlabel(&j.participant);
            }
        }
        self.engine.close_room(v.id.as_str()).await;
    }

    /// Whether a frame for `visit_id` arrived while its visit is being handed over (the client waits).
    pub fn is_moving(&self, visit_id: &str) -> bool {
        VisitId::parse(visit_id).is_some_and(|id| self.live().moving.contains(&id))
    }

    /// Takes over the visit `a.row` describes: false when it is not (or no longer) the row's host's to give,
    /// or is already here.
    pub async fn adopt(&self, a: Adoption) -> Result<bool, VideoError> {
        let row = a.row;
        let (Some(id), Some(state)) = (VisitId::parse(&row.visit_id), VisitState::parse(&row.state)) else {
            return Ok(false);
        };
        let claimed = self
            .placement
            .take_over(&row.visit_id, &row.host_node)
            .await
            .map_err(|e| VideoError::Media(crate::media::MediaError::Engine(e.to_string())))?;
        if !claimed {
            return Ok(false);
        }
        let now = now_ms();
        let visit = Visit::resumed(
            id.clone(),
            ConversationId::new(row.conversation_id.clone()),
            row.queue.clone(),
            SubjectId::new(row.patient.clone()),
            SubjectId::new(row.nurse.clone()),
            state,
            row.created_at,
            row.epoch.max(0) as u32 + 1,
            now,
        );
        if !self.live().visits.adopt(visit.clone()) {
            return Ok(false);
        }
        self.metrics.live_visits.set(self.live_visits() as i64);
        match row.recording.as_str() {
            // Consent was given (or not required) on the first host: the recording goes on without asking.
            "recording" | "paused" => {
                self.start_recording(&visit, Some(true)).await;
                let session = self.live().sessions.get(&id).cloned();
                if let Some(s) = session {
                    s.set_continuation(Continuation {
                        recording_id: row.recording_id.clone(),
                        reason: a.reason.clone(),
                        outage_since_ms: a.outage_since_ms,
                    });
                    if row.recording == "paused" {
                        s.set_state(
                            RecordingState::Paused,
                            "secure pause carried over from the previous host",
                            "system",
                            now,
                        );
                    }
                    self.save_manifest(&s).await;
                }
            }
            "declined" => {
                self.live().notices.insert(id.clone(), RecordingNotice::Declined);
            }
            _ => {}
        }
        self.publish_host(&id).await;
        self.recording
            .audit
            .record_or_log(
                AuditEvent::system(
                    "visit-host",
                    "visit.handover",
                    format!("visit:{id}"),
                    Outcome::Success,
                )
                .reason(format!(
                    "{} from {} to {}",
                    a.reason,
                    row.host_node,
                    self.placement.node_id()
                )),
            )
            .await;
        // Both rejoin with a new connection (the epoch went up; a visit still being proposed is asked again).
        let frame = self.describe(&visit);
        self.to_both(&visit, frame);
        Ok(true)
    }

    /// A draining node hands every live visit to another node, until `deadline`; returns how many moved. A visit
    /// no node took ends here for both (`server_restart`), its recording stored and its classification audited.
    pub async fn hand_over_all(&self, deadline: tokio::time::Instant) -> usize {
        let mut moved = 0;
        let ids: Vec<VisitId> = self.live().visits.all().into_iter().map(|v| v.id).collect();
        for id in ids {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let successor = match self.placement.successor().await {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "no node to hand visits to");
                    break;
                }
            };
            // The row is written from the visit as it is now (it may have been answered meanwhile).
            let Some(v) = self.live().visits.give_up(&id) else {
                continue;
            };
            self.live().moving.insert(id.clone());
            let row = self.host_row(&v);
            // This host's part of the recording is stored whole before the next host starts its part.
            self.stop_recording(&v).await;
            self.close_media(&v).await;
            self.guests_left_behind(&v);
            let body = Adoption {
                row,
                reason: "drain".into(),
                outage_since_ms: None,
            };
            let call = self.placement.call(
                &successor,
                ADOPT_PATH,
                serde_json::to_vec(&body).expect("serialises"),
            );
            let adopted = match tokio::time::timeout_at(deadline, call).await {
                Ok(Ok(bytes)) => {
                    serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v["adopted"] == true)
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, node = %successor.node, "visit not handed over");
                    false
                }
                Err(_) => false,
            };
            // A call that failed may still have been carried out: only a visit this node still holds ends here.
            if adopted || !self.placement.holds(id.as_str()).await {
                moved += 1;
                self.live().classes.remove(&id);
                tracing::info!(node = %successor.node, "visit handed over");
            } else {
                self.classified(&id).await;
                self.placement.forget(&v).await;
                self.to_both(
                    &v,
                    ServerFrame::VideoEnded {
                        conversation_id: v.conversation.clone(),
                        visit_id: v.id.to_string(),
                        reason: EndReason::ServerRestart,
                        epoch: v.epoch,
                    },
                );
            }
            self.live().moving.remove(&id);
        }
        self.metrics.live_visits.set(self.live_visits() as i64);
        moved
    }

    /// Under the `visit-failover` lease: visits whose host died are adopted by the least loaded live node.
    pub async fn run_failover(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        if !self.placement.shared() {
            // One node: nobody else hosts visits.
            let _ = stop.wait_for(|s| *s).await;
            return;
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let orphans = match self.placement.orphans().await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "orphaned visits could not be read");
                    continue;
                }
            };
            for (row, silent_for) in orphans {
                let adoption = Adoption {
                    reason: "failover".into(),
                    outage_since_ms: silent_for.map(|ms| now_ms() - ms),
                    row,
                };
                let result = match self.placement.adopter().await {
                    Ok(Some(Host::Here)) => self.adopt(adoption).await.map(|_| ()).map_err(|e| e.to_string()),
                    Ok(Some(Host::Node(to))) => self
                        .placement
                        .call(
                            &to,
                            ADOPT_PATH,
                            serde_json::to_vec(&adoption).expect("serialises"),
                        )
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "an orphaned visit could not be adopted; retrying");
                }
            }
        }
    }
}
