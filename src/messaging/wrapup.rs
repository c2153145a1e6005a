//! The nurse's wrap-up of a chat: a disposition from the configured list and optional notes, sealed with the
//! conversation's data key (PHI: the notes are clinical). Written once: a clinical note is never overwritten.
//! The compliance console reads it beside a recording of the chat's visit (`conversation.wrap_up.view` on it). The
//! waiting room's wrap-up timer is separate: saving here does not end it, "Ready" does.

use serde::{Deserialize, Serialize};

use super::{Message, Messaging, MessagingError};
use crate::ids::{ConversationId, SubjectId};
use crate::pii::Pii;
use crate::policy::Authorized;
use crate::store::{ConversationRow, RecordingRow, WrapUpRow};

/// Longest wrap-up notes.
pub const MAX_NOTES_CHARS: usize = 4000;

/// What the nurse recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrapUp {
    pub disposition: String,
    pub notes: Option<Pii<String>>,
}

/// A stored wrap-up with who wrote it and when.
#[derive(Debug, Clone)]
pub struct SavedWrapUp {
    pub wrap_up: WrapUp,
    pub nurse: SubjectId,
    pub at_ms: i64,
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
        let row = WrapUpRow {
            nurse: proof.subject().as_str().to_string(),
            sealed: self.seal_json(c, &aad(&c.id), &wrap_up)?,
            at_ms: crate::clock::now_ms(),
        };
        if !self.db.put_wrap_up(&c.id, &row).await? {
            return Err(MessagingError::AlreadyWrappedUp);
        }
        Ok(())
    }

    /// The messages of the chat a recorded visit came from, for whoever the policy lets read it beside the
    /// recording (`conversation.transcript.view`); `None` when the chat is gone (retention).
    pub async fn transcript_of_recording(
        &self,
        proof: &Authorized<RecordingRow>,
    ) -> Result<Option<Vec<Message>>, MessagingError> {
        proof.require(&["conversation.transcript.view"])?;
        let Some(conversation) = self.db.conversation_of_visit(&proof.resource().visit_id).await? else {
            return Ok(None);
        };
        let Some(c) = self.db.conversation(&ConversationId::new(conversation)).await? else {
            return Ok(None);
        };
        // A chat is read whole: its length is bounded by the message limits, not by this read.
        Ok(Some(self.read_messages(&c, 0, i64::MAX).await?))
    }

    /// The wrap-up of the chat a recorded visit came from, for a reviewer allowed to view that recording.
    pub async fn wrap_up_of_recording(
        &self,
        proof: &Authorized<RecordingRow>,
    ) -> Result<Option<SavedWrapUp>, MessagingError> {
        proof.require(&["conversation.wrap_up.view"])?;
        let Some(conversation) = self.db.conversation_of_visit(&proof.resource().visit_id).await? else {
            return Ok(None);
        };
        let Some(c) = self.db.conversation(&ConversationId::new(conversation)).await? else {
            return Ok(None);
        };
        let Some(row) = self.db.wrap_up(&c.id).await? else {
            return Ok(None);
        };
        Ok(Some(SavedWrapUp {
            wrap_up: self.open_json(&c, &aad(&c.id), &row.sealed)?,
            nurse: SubjectId::new(row.nurse),
            at_ms: row.at_ms,
        }))
    }
}
