//! The access decision on one conversation, shared by the socket and the HTTP routes: the row loaded, the
//! facts the policy's conditions need (owner, assigned, offered, live, break-glass grants), then the policy.
//! An unknown id is refused like a foreign one (and audited), so probing ids reveals nothing.

use super::App;
use crate::auth::Principal;
use crate::ids::{ConversationId, RequestId};
use crate::messaging::MessagingError;
use crate::policy::{Authorized, Resource, ResourceKind};
use crate::store::{ConversationRow, ConversationState};

/// Why a conversation could not be opened for an action.
pub enum AccessError {
    /// Unknown, or not this caller's to act on (the two look the same, so probing ids reveals nothing).
    Forbidden,
    Messaging(MessagingError),
}

/// Loads the conversation and asks the policy whether `principal` may do `action` on it; an unknown id is
/// refused like a foreign one (and audited). The proof carries the row.
impl App {
    pub async fn conversation_access(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        id: &ConversationId,
        action: &str,
    ) -> Result<Authorized<ConversationRow>, AccessError> {
        let row = self
            .messaging
            .conversation(id)
            .await
            .map_err(AccessError::Messaging)?;
        let resource = match &row {
            Some(c) => {
                // Only a preview asks who the chat is offered to (one more read, on the one action that needs it).
                // (A chat with a nurse is offered too during a warm transfer, to the colleague asked to take it.)
                let offered = if action == "conversation.preview" && c.state.is_open() {
                    self.messaging.offered_to(&c.id).await.ok().flatten()
                } else {
                    None
                };
                // Assigned means working it now; for its wrap-up, the nurse who had it (messaging refuses a wrap-up
                // of a chat still open, precisely).
                let assigned = action == "conversation.wrap_up" || c.state == ConversationState::Assigned;
                let resource = Resource::new(ResourceKind::Conversation, Some(c.id.to_string()))
                    .owned_by(c.patient.clone())
                    .offered_to(offered)
                    .assigned_to(c.nurse.iter().filter(|_| assigned).cloned().collect())
                    .live(c.state.is_open());
                self.with_break_glass(principal, action, resource).await
            }
            None => Resource::new(ResourceKind::Conversation, Some(safe_id(id.as_str()))),
        };
        self.authorize_for(principal, action, &resource, row, Some(request_id))
            .await
            .ok()
            .and_then(Authorized::transpose)
            .ok_or(AccessError::Forbidden)
    }
}

/// Ids from clients go into audit events only if they look like our ids.
pub fn safe_id(id: &str) -> String {
    if id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        id.to_string()
    } else {
        "invalid".to_string()
    }
}

impl App {
    /// Records a read of the proof's transcript by anyone but its patient, before it is shown: an error means
    /// no audit event, and then the caller shows nothing (both the socket and HTTP read through here).
    pub async fn audit_transcript_read(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        proof: &Authorized<ConversationRow>,
    ) -> Result<(), crate::store::StoreError> {
        let c = proof.resource();
        if proof.subject() == &c.patient {
            return Ok(());
        }
        let event = crate::audit::AuditEvent::new(
            "conversation.read",
            format!("conversation:{}", c.id),
            crate::audit::Outcome::Success,
        )
        .by(principal)
        .request(Some(request_id));
        self.audit.record(event).await.map(|_| ())
    }
}
