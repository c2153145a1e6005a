//! The routing core's effects applied on the leader: the rows they change (offers, assignments, chats that
//! were abandoned or handed back) and the frames they send, through the hub and the bus, to whoever they
//! concern. An effect the rows contradict (the conversation ended meanwhile) becomes a command back to the core.

use super::routing::RoutingCommand;
use super::{Messaging, MessagingError};
use crate::audit::{AuditEvent, Outcome};
use crate::clock::now_ms;
use crate::ids::ConversationId;
use crate::protocol::ServerFrame;
use crate::store::ConversationState;
use crate::waiting_room::Effect;

/// Priority a chat handed back by an absent nurse gets: ahead of everyone waiting, behind emergencies.
pub(super) const RETURNED_BOOST: i64 = crate::waiting_room::EMERGENCY_BOOST / 2;

/// The offer of `c` to a nurse, open until `expires_at`; `from_nurse` names who hands it on (a warm transfer).
pub(super) fn offer_frame(
    c: &crate::store::ConversationRow,
    expires_at: i64,
    now: i64,
    from_nurse: Option<String>,
) -> ServerFrame {
    ServerFrame::Offer {
        conversation_id: c.id.clone(),
        reference: c.reference.clone(),
        queue: c.queue.clone(),
        expires_in_seconds: ((expires_at - now).max(0) / 1000) as u64,
        waited_seconds: ((now - c.enqueued_at).max(0) / 1000) as u64,
        emergency: c.priority_boost >= crate::waiting_room::EMERGENCY_BOOST,
        from_nurse,
    }
}

impl Messaging {
    /// Applies the routing core's effects: database changes and frames to the people concerned.
    pub(super) async fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match self.apply_one(effect).await {
                Ok(None) => {}
                // The core's view was behind the rows: tell it (boxed: `execute` applies effects in turn).
                Ok(Some(follow_up)) => {
                    Box::pin(self.execute(follow_up)).await;
                }
                Err(e) => tracing::error!(error = %e, "could not apply a routing effect"),
            }
        }
    }

    /// Applies one effect; returns a command for the core when the rows say the effect no longer holds (the
    /// conversation ended meanwhile).
    async fn apply_one(&self, effect: Effect) -> Result<Option<RoutingCommand>, MessagingError> {
        let now = now_ms();
        match effect {
            Effect::Offer {
                nurse,
                conversation,
                expires_at,
            } => {
                let row = self.db.conversation(&conversation).await?;
                if let Some(c) = row.filter(|c| c.state == ConversationState::Waiting) {
                    // Kept for a new leader to end, and for the policy: the nurse offered it may see who it is.
                    self.db
                        .record_offer(c.id.as_str(), nurse.as_str(), expires_at)
                        .await?;
                    self.send_to(&nurse, offer_frame(&c, expires_at, now, None));
                } else {
                    return Ok(Some(RoutingCommand::Cancel { conversation }));
                }
            }
            Effect::OfferEnded {
                nurse,
                conversation,
                reason,
            } => {
                self.db.end_offer(conversation.as_str()).await?;
                self.send_to(
                    &nurse,
                    ServerFrame::OfferEnded {
                        conversation_id: conversation.clone(),
                        reason,
                    },
                );
            }
            Effect::Assigned { nurse, conversation } => {
                self.patients.lock().expect("patients lock").remove(&conversation);
                self.db.end_offer(conversation.as_str()).await?;
                if self
                    .db
                    .assign_conversation(&conversation, nurse.as_str(), now)
                    .await?
                    && let Some(c) = self.db.conversation(&conversation).await?
                {
                    self.announce_assignment(&nurse, &c);
                } else {
                    // It ended before the assignment was stored: the nurse gets her place back.
                    return Ok(Some(RoutingCommand::Cancel { conversation }));
                }
            }
            Effect::Position {
                conversation,
                position,
                eta_seconds,
            } => {
                self.to_patient(
                    &conversation,
                    ServerFrame::Waiting {
                        conversation_id: conversation.clone(),
                        position,
                        eta_seconds,
                    },
                )
                .await?;
            }
            Effect::Reassure { conversation, text } => {
                self.to_patient(
                    &conversation,
                    ServerFrame::Reassurance {
                        conversation_id: conversation.clone(),
                        text,
                    },
                )
                .await?;
            }
            Effect::MaxWaitReached { conversation } => {
                let text = "Our nurses are busier than usual. You can keep waiting, or leave a message and we will call \
                            you back."
                    .to_string();
                self.to_patient(
                    &conversation,
                    ServerFrame::MaxWait {
                        conversation_id: conversation.clone(),
                        text,
                    },
                )
                .await?;
            }
            Effect::NurseState { nurse, state } => self.send_to(&nurse, ServerFrame::Presence { state }),
            Effect::PatientPresence {
                nurse,
                conversation,
                state,
            } => self.send_to(
                &nurse,
                ServerFrame::PatientPresence {
                    conversation_id: conversation,
                    state,
                },
            ),
            Effect::Abandoned {
                conversation,
                waited_ms,
            } => {
                let patient = self.patients.lock().expect("patients lock").remove(&conversation);
                if self
                    .db
                    .close_conversation(&conversation, ConversationState::Abandoned, now)
                    .await?
                {
                    let event = AuditEvent::system(
                        "routing",
                        "conversation.abandoned",
                        format!("conversation:{conversation}"),
                        Outcome::Success,
                    )
                    .reason(format!(
                        "the patient left the waiting room and did not come back; waited {} s",
                        waited_ms / 1000
                    ));
                    self.audit.record_or_log(event).await;
                    self.classify_closed(&conversation, "abandoned").await;
                    if let Some(patient) = patient {
                        self.send_to(
                            &patient,
                            ServerFrame::Ended {
                                conversation_id: conversation,
                                reason: "abandoned".into(),
                            },
                        );
                    }
                }
            }
            Effect::Handoff(h) => return self.apply_handoff(h).await,
            Effect::Stranded { nurse, conversation } => {
                if self
                    .db
                    .requeue_conversation(&conversation, RETURNED_BOOST)
                    .await?
                {
                    self.send_to(
                        &nurse,
                        ServerFrame::Ended {
                            conversation_id: conversation.clone(),
                            reason: "returned_to_queue".into(),
                        },
                    );
                    self.to_patient(
                        &conversation,
                        ServerFrame::Requeued {
                            conversation_id: conversation.clone(),
                            text: "Your nurse had to step away. You are first in line for the next nurse, who will \
                                   see your conversation so far."
                                .into(),
                            reason: crate::protocol::RequeueReason::NurseAway,
                        },
                    )
                    .await?;
                    return Ok(Some(RoutingCommand::Enqueue { conversation }));
                }
            }
        }
        Ok(None)
    }

    /// A chat is now `nurse`'s (accepted, or handed to her): she gets its panel, and she and the patient are told.
    pub(super) fn announce_assignment(
        &self,
        nurse: &crate::ids::SubjectId,
        c: &crate::store::ConversationRow,
    ) {
        self.send_to(
            nurse,
            ServerFrame::Conversation {
                conversation: self.view(c),
            },
        );
        self.deliver(
            c,
            ServerFrame::Assigned {
                conversation_id: c.id.clone(),
            },
        );
    }

    /// A frame for a waiting conversation's patient (known from when it was queued; else read).
    async fn to_patient(
        &self,
        conversation: &ConversationId,
        frame: ServerFrame,
    ) -> Result<(), MessagingError> {
        let known = self
            .patients
            .lock()
            .expect("patients lock")
            .get(conversation)
            .cloned();
        let patient = match known {
            Some(p) => Some(p),
            None => self.db.conversation(conversation).await?.map(|c| c.patient),
        };
        if let Some(patient) = patient {
            self.send_to(&patient, frame);
        }
        Ok(())
    }
}
