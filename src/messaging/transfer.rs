//! A nurse hands an assigned chat to another queue (a cold transfer): the chat goes back to waiting there, first
//! in line (the boost a chat handed back by an absent nurse gets), keeping its transcript, its reference and
//! its first enqueue time; the nurse's part ends (her wrap-up starts, without a wrap-up of her own: the chat
//! is not over); the patient is told. The next nurse of that queue is offered it as any other chat and sees
//! the conversation so far.

use super::effects::RETURNED_BOOST;
use super::routing::RoutingCommand;
use super::{Messaging, MessagingError};
use crate::clock::now_ms;
use crate::policy::Authorized;
use crate::protocol::{RequeueReason, ServerFrame};
use crate::store::{ConversationRow, ConversationState};

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
}
