//! The nurse's wrap-up of a chat: a disposition from the configured list and optional notes, sealed with the
//! conversation's data key (PHI: the notes are clinical). Written once: a clinical note is never overwritten.
//! Nothing reads it back yet (the compliance view of issue "Reviewing a visit" will, under its own proof). The
//! waiting room's wrap-up timer is separate: saving here does not end it, "Ready" does.

use serde::{Deserialize, Serialize};

use super::{Messaging, MessagingError, key_context};
use crate::ids::ConversationId;
use crate::pii::Pii;
use crate::policy::Authorized;
use crate::store::{ConversationRow, StoreError, WrapUpRow};

/// Longest wrap-up notes.
pub const MAX_NOTES_CHARS: usize = 4000;

/// What the nurse recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrapUp {
    pub disposition: String,
    pub notes: Option<Pii<String>>,
}

fn aad(id: &ConversationId) -> Vec<u8> {
    format!("examroom-wrapup-v1|{id}").into_bytes()
}

impl Messaging {
    /// The dispositions a nurse picks from, in order.
    pub fn dispositions(&self) -> &[String] {
        &self.dispositions
    }

    /// Stores the wrap-up of an ended chat, once.
    pub async fn save_wrap_up(
        &self,
        proof: &Authorized<ConversationRow>,
        wrap_up: WrapUp,
    ) -> Result<(), MessagingError> {
        proof.require(&["conversation.wrap_up"])?;
        let c = proof.resource();
        if c.state.is_open() {
            return Err(MessagingError::StillOpen);
        }
        if !self.dispositions.contains(&wrap_up.disposition) {
            return Err(MessagingError::UnknownDisposition);
        }
        if wrap_up
            .notes
            .as_ref()
            .is_some_and(|n| n.expose().chars().count() > MAX_NOTES_CHARS)
        {
            return Err(MessagingError::TooLong);
        }
        let key = self
            .keyring
            .unwrap_data_key(&c.kek_id, &c.wrapped_key, &key_context(c.id.as_str()))?;
        let json = serde_json::to_vec(&wrap_up).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = WrapUpRow {
            nurse: proof.subject().as_str().to_string(),
            sealed: key.seal(&json, &aad(&c.id))?,
            at_ms: crate::clock::now_ms(),
        };
        if !self.db.put_wrap_up(&c.id, &row).await? {
            return Err(MessagingError::AlreadyWrappedUp);
        }
        Ok(())
    }
}
