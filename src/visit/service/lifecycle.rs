//! How visits end without anyone pressing a button: the periodic sweep (an unanswered request, an abandoned
//! visit, a participant who did not come back after a network cut, a chat that ended; and pre-call tests past
//! their time), and a draining node that waits for its visits and ends those left at its limit. The same sweep
//! hands a visit on when its chat was transferred (`transfer`).

use std::sync::Arc;

use super::VideoService;
use crate::clock::now_ms;
use crate::ids::SubjectId;
use crate::store::ConversationState;
use crate::visit::{EndReason, VisitState};

impl VideoService {
    /// Periodic: closes requests unanswered past `media.video_prompt_seconds` (`no_answer`), started visits whose
    /// participants are gone past the grace (`abandoned`) or one of whom dropped out past
    /// `media.reconnect_limit_seconds` (`connection_lost`), and visits whose chat ended; then closes pre-call
    /// tests open too long.
    pub async fn sweep(&self) {
        let grace = self.config.empty_visit_grace_seconds as i64 * 1000;
        let prompt = self.config.video_prompt_seconds as i64 * 1000;
        let reconnect = self.config.reconnect_limit_seconds as i64 * 1000;
        let closed = self.live().visits.sweep(now_ms(), grace, prompt, reconnect);
        for (v, reason) in closed {
            self.finish(&v, reason).await;
        }
        let live = self.live().visits.all();
        for v in live {
            // The visit follows its chat: handed to another nurse, or back to a queue (a transfer).
            let row = self.messaging.conversation(&v.conversation).await;
            let open = match row {
                Ok(Some(row)) if row.state == ConversationState::Assigned => {
                    let again = self.live().visits.reassigned(&v.id, row.assigned_at);
                    match row.nurse.filter(|n| again || n != &v.nurse || v.awaits_nurse()) {
                        Some(nurse) if v.state == VisitState::Active => {
                            self.nurse_changed(&v, nurse, again).await;
                            true
                        }
                        // A request the patient has not answered is the first nurse's: it ends.
                        Some(_) => false,
                        None => true,
                    }
                }
                Ok(Some(row)) if row.state == ConversationState::Waiting && v.state == VisitState::Active => {
                    self.back_to_queue(&v).await;
                    true
                }
                _ => false,
            };
            let ended = if open {
                None
            } else {
                self.live().visits.end_conversation(&v.conversation)
            };
            if let Some(v) = ended {
                self.finish(&v, EndReason::ChatEnded).await;
            }
        }
        self.metrics.live_visits.set(self.live().visits.len() as i64);
        self.expire_precalls().await;
    }

    pub async fn run_timers(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.sweep().await;
            self.close_due_segments().await;
            self.retry_uploads().await;
        }
    }

    /// Visits this node hosts (asked, or started).
    pub fn live_visits(&self) -> usize {
        self.live().visits.len()
    }

    /// Whether `who` takes part in a visit here (a draining node keeps their socket until it ends).
    pub fn takes_part(&self, who: &SubjectId) -> bool {
        let live = self.live();
        !live.visits.of_subject(who).is_empty() || live.ending.values().any(|people| people.contains(who))
    }

    /// Ends every visit (a draining node past its limit): recordings are stored, both sides told.
    pub async fn end_all(&self, reason: EndReason) {
        let all = self.live().visits.all();
        for v in all {
            let ended = self.live().visits.end_conversation(&v.conversation);
            if let Some(v) = ended {
                self.finish(&v, reason).await;
            }
        }
    }
}
