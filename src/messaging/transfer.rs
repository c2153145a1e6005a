//! A nurse hands an assigned chat on. Cold, to a queue: the chat goes back to waiting there, first in line (the
//! boost a chat handed back by an absent nurse gets), keeping its transcript, its reference and its first
//! enqueue time; the nurse's part ends (her wrap-up starts, without a wrap-up of her own: the chat is not
//! over); the patient is told; the next nurse of that queue is offered it as any other chat. Warm, to a named
//! colleague (`waiting_room::handoff`): the colleague is offered it while the first nurse keeps it, and it
//! moves only when she accepts. Either way the next nurse sees the conversation so far.

use super::effects::{RETURNED_BOOST, offer_frame};
use super::routing::{RoutingCommand, RoutingReply};
use super::{Messaging, MessagingError};
use crate::clock::now_ms;
use crate::ids::SubjectId;
use crate::policy::Authorized;
use crate::protocol::{Colleague, RequeueReason, ServerFrame};
use crate::store::{ConversationRow, ConversationState};
use crate::waiting_room::{HandoffEffect, Presence};

impl Messaging {
    /// The configured queues in their configured order: where a chat may be transferred.
    pub fn queue_names(&self) -> Vec<String> {
        self.room_spec.0.iter().map(|q| q.name.clone()).collect()
    }

    /// Transfers the proof's chat to `queue`. Only the nurse it is assigned to may (`conversation.transfer`).
    pub async fn transfer(
        &self,
        proof: &Authorized<ConversationRow>,
        queue: &str,
    ) -> Result<(), MessagingError> {
        proof.require(&["conversation.transfer"])?;
        let c = proof.resource();
        if !self.queues.contains_key(queue) {
            return Err(MessagingError::UnknownQueue);
        }
        if c.state != ConversationState::Assigned {
            return Err(MessagingError::Closed);
        }
        let nurse = proof.subject();
        let now = now_ms();
        if !self
            .db
            .transfer_conversation(&c.id, nurse.as_str(), queue, RETURNED_BOOST)
            .await?
        {
            // Ended, or handed back, in the meantime.
            return Err(MessagingError::Closed);
        }
        // The nurse's part ends first, so the chat is nobody's when it is queued again.
        let finish = RoutingCommand::Finish {
            nurse: nurse.clone(),
            conversation: c.id.clone(),
            queue: c.queue.clone(),
            handled_ms: now - c.assigned_at.unwrap_or(now),
        };
        self.send_to(
            nurse,
            ServerFrame::Ended {
                conversation_id: c.id.clone(),
                reason: "transferred".into(),
            },
        );
        self.send_to(
            &c.patient,
            ServerFrame::Requeued {
                conversation_id: c.id.clone(),
                text: "Your nurse has passed your chat to a colleague. You are first in line, and the next nurse \
                       will see your conversation so far."
                    .into(),
                reason: RequeueReason::Transferred,
            },
        );
        // Waiting in the database either way: a leader that cannot be reached now queues it when it reconciles.
        for command in [
            finish,
            RoutingCommand::Enqueue {
                conversation: c.id.clone(),
            },
        ] {
            if let Err(e) = self.route(command).await {
                tracing::warn!(error = %e, "transferred conversation not routed yet");
            }
        }
        Ok(())
    }

    /// Asks the colleague `to` to take the proof's chat (a warm transfer; `conversation.transfer`); returns
    /// Some(her name, if known).
    pub async fn hand_off(
        &self,
        proof: &Authorized<ConversationRow>,
        to: &SubjectId,
    ) -> Result<Option<Option<String>>, MessagingError> {
        proof.require(&["conversation.transfer"])?;
        let c = proof.resource();
        if c.state != ConversationState::Assigned {
            return Err(MessagingError::Closed);
        }
        let command = RoutingCommand::HandOff {
            from: proof.subject().clone(),
            to: to.clone(),
            conversation: c.id.clone(),
            queue: c.queue.clone(),
        };
        match self.route(command).await? {
            RoutingReply::Refused { .. } => Err(MessagingError::ColleagueUnavailable),
            // The colleague is asked already: a name that cannot be read now is not an error.
            _ => Ok(Some(self.db.staff_display_name(to.as_str()).await.ok().flatten())),
        }
    }

    /// Who could take the proof's chat now: ready, connected nurses without an open offer who have its queue's
    /// skills, the asking nurse excepted, by name.
    pub async fn colleagues(
        &self,
        proof: &Authorized<ConversationRow>,
    ) -> Result<Vec<Colleague>, MessagingError> {
        proof.require(&["conversation.transfer"])?;
        let c = proof.resource();
        let RoutingReply::Stats { nurses, .. } = self.route(RoutingCommand::Stats).await? else {
            return Err(MessagingError::RoutingUnavailable);
        };
        let needs = self
            .room_spec
            .0
            .iter()
            .find(|q| q.name == c.queue)
            .map(|q| q.skills.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for n in nurses {
            let able = n.presence == Presence::Ready && n.connected && !n.offered;
            if &n.nurse == proof.subject() || !able || !needs.iter().all(|s| n.skills.contains(s)) {
                continue;
            }
            let name = self.db.staff_display_name(n.nurse.as_str()).await?;
            out.push(Colleague { nurse: n.nurse, name });
        }
        Ok(out)
    }

    /// A warm transfer's step, applied on the leader: the colleague's offer, the chat moving to her, or the
    /// first nurse told it was not taken. A chat that ended meanwhile goes back to the core as cancelled.
    pub(super) async fn apply_handoff(
        &self,
        h: HandoffEffect,
    ) -> Result<Option<RoutingCommand>, MessagingError> {
        let now = now_ms();
        match h {
            HandoffEffect::Offered {
                from,
                to,
                conversation,
                expires_at,
            } => {
                let Some(c) = self.db.conversation(&conversation).await? else {
                    return Ok(Some(RoutingCommand::Cancel { conversation }));
                };
                // Kept for the policy: the colleague offered it may see who it is (`offered`).
                self.db
                    .record_offer(c.id.as_str(), to.as_str(), expires_at)
                    .await?;
                let from_nurse = self.db.staff_display_name(from.as_str()).await?;
                let from_nurse = from_nurse.unwrap_or_else(|| "a colleague".into());
                self.send_to(&to, offer_frame(&c, expires_at, now, Some(from_nurse)));
            }
            HandoffEffect::Done {
                from,
                to,
                conversation,
            } => {
                // Moved first, then the offer row goes: while it stands, no video starts in this chat.
                let moved = self
                    .db
                    .hand_over_conversation(&conversation, from.as_str(), to.as_str(), now)
                    .await?;
                self.db.end_offer(conversation.as_str()).await?;
                if !moved {
                    // It ended before the move was stored: the colleague gets her place back.
                    return Ok(Some(RoutingCommand::Cancel { conversation }));
                }
                let Some(c) = self.db.conversation(&conversation).await? else {
                    return Ok(None);
                };
                self.send_to(
                    &from,
                    ServerFrame::Ended {
                        conversation_id: c.id.clone(),
                        reason: "transferred".into(),
                    },
                );
                self.announce_assignment(&to, &c);
            }
            HandoffEffect::Ended {
                from,
                to,
                conversation,
                reason,
            } => {
                self.db.end_offer(conversation.as_str()).await?;
                let colleague = self.db.staff_display_name(to.as_str()).await?;
                self.send_to(
                    &from,
                    ServerFrame::TransferEnded {
                        conversation_id: conversation,
                        colleague,
                        reason,
                    },
                );
            }
        }
        Ok(None)
    }
}
