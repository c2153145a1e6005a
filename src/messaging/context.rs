//! Who the patient is and why they came, for the nurse: the verified name and birth date from the portal's ID
//! token and the reason typed when starting, sealed with the conversation's data key when the chat opens, and
//! the preview a nurse reads before accepting (with the first message and the emergency flag). PHI throughout:
//! nothing here is logged, and the preview goes only to the asking socket.

use serde::{Deserialize, Serialize};

use super::{Messaging, MessagingError};
use crate::ids::{ConversationId, SubjectId};
use crate::pii::Pii;
use crate::policy::Authorized;
use crate::store::ConversationRow;
use crate::waiting_room::EMERGENCY_BOOST;

/// Longest reason for the visit a patient may type.
pub const MAX_REASON_CHARS: usize = 300;
/// How much of the first message the preview shows.
const PREVIEW_CHARS: usize = 280;

/// The sealed document; fields absent from the token or not given stay `None`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PatientContext {
    pub name: Option<Pii<String>>,
    pub birthdate: Option<Pii<String>>,
    pub reason: Option<Pii<String>>,
}

/// What the nurse sees of a chat before (and while) she works it.
#[derive(Debug, Clone)]
pub struct Preview {
    pub context: PatientContext,
    pub first_message: Option<Pii<String>>,
    pub emergency: bool,
}

fn aad(id: &ConversationId) -> Vec<u8> {
    format!("examroom-context-v1|{id}").into_bytes()
}

impl Messaging {
    /// Seals and stores a new conversation's context (once: a repeated start keeps the first).
    pub(super) async fn save_context(
        &self,
        c: &ConversationRow,
        context: &PatientContext,
    ) -> Result<(), MessagingError> {
        let sealed = self.seal_json(c, &aad(&c.id), context)?;
        self.db.put_conversation_context(&c.id, &sealed).await?;
        Ok(())
    }

    /// The nurse a waiting conversation is offered to right now (for the policy's `offered` condition).
    pub async fn offered_to(&self, id: &ConversationId) -> Result<Option<SubjectId>, MessagingError> {
        let nurse = self.db.offered_to(id, crate::clock::now_ms()).await?;
        Ok(nurse.map(SubjectId::new))
    }

    /// The preview of a conversation, for a caller the policy allowed `conversation.preview`.
    pub async fn preview(&self, proof: &Authorized<ConversationRow>) -> Result<Preview, MessagingError> {
        proof.require(&["conversation.preview"])?;
        let c = proof.resource();
        let context = match self.db.conversation_context(&c.id).await? {
            Some(sealed) => self.open_json(c, &aad(&c.id), &sealed)?,
            // A chat opened before this existed.
            None => PatientContext::default(),
        };
        let first_message = self
            .read_messages(c, 0, 20)
            .await?
            .into_iter()
            .find(|m| m.sender_role == "patient")
            .map(|m| Pii::new(cut(m.body.expose(), PREVIEW_CHARS)));
        Ok(Preview {
            context,
            first_message,
            emergency: c.priority_boost >= EMERGENCY_BOOST,
        })
    }
}

/// At most `max` characters, ending in "…" when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_first_messages_are_cut_on_a_character() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééééé", 3), "éé…");
    }

    #[test]
    fn the_context_never_prints_its_contents() {
        let c = PatientContext {
            name: Some(Pii::new("Ana Example".into())),
            birthdate: Some(Pii::new("1980-02-03".into())),
            reason: None,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("Ana") && !shown.contains("1980"), "{shown}");
    }
}
