//! Classification of every interaction, chat-only ones included: when a chat closes its flags enter the audit
//! chain (`conversation.classified`), where the consent report reads them beside the visits'
//! (`visit::classification`). Among them seed 003's agent-authorization flag: every nurse who accepted the chat
//! held its queue's skills and the policy's grant to work queues at that moment. Flags only, never identifiers
//! of people.

use serde::Serialize;

use super::Messaging;
use crate::audit::{AuditEvent, Outcome};
use crate::ids::ConversationId;

/// Whether a nurse accepting a chat was authorized to: the policy granted her queue work, and she holds every
/// skill the queue asks for.
pub fn agent_authorized(required: &[String], held: &[String], granted: bool) -> bool {
    granted && required.iter().all(|skill| held.contains(skill))
}

/// A closed chat's flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatClassification {
    pub conversation: String,
    pub queue: String,
    /// `chat` when no video was proposed in it; `video` when it was (each visit has its own flags).
    pub interaction_type: &'static str,
    pub visits: i64,
    /// Nothing is recorded in a chat: there is no consent to ask for. A chat with video defers to its visits.
    pub consent: &'static str,
    pub recording_status: &'static str,
    pub data_classification: &'static str,
    pub agent_authorized: Option<bool>,
    /// How it ended: `finished`, `patient_left`, `idle`, `callback_requested`, `abandoned`, …
    pub ended: String,
}

impl ChatClassification {
    pub fn of(
        conversation: &str,
        queue: &str,
        visits: i64,
        agent_authorized: Option<bool>,
        ended: &str,
    ) -> Self {
        let chat_only = visits == 0;
        Self {
            conversation: conversation.to_string(),
            queue: queue.to_string(),
            interaction_type: if chat_only { "chat" } else { "video" },
            visits,
            consent: if chat_only { "not_applicable" } else { "see_visits" },
            recording_status: if chat_only { "none" } else { "see_visits" },
            data_classification: "phi.chat",
            agent_authorized,
            ended: ended.to_string(),
        }
    }
}

impl Messaging {
    /// A nurse the policy let work queues (`granted`) accepted this chat holding `skills`.
    pub async fn note_acceptance(&self, conversation: &ConversationId, skills: &[String], granted: bool) {
        let required = match self.db.conversation(conversation).await {
            Ok(Some(c)) => self
                .queues
                .get(&c.queue)
                .map(|q| q.skills.clone())
                .unwrap_or_default(),
            _ => return,
        };
        let authorized = agent_authorized(&required, skills, granted);
        if let Err(e) = self.db.note_acceptance(conversation.as_str(), authorized).await {
            tracing::error!(error = %e, "agent authorization could not be saved");
        }
    }

    /// The chat just closed: its flags enter the audit chain.
    pub(super) async fn classify_closed(&self, conversation: &ConversationId, ended: &str) {
        let id = conversation.as_str();
        let facts = async {
            let queue = self.db.conversation(conversation).await?.map(|c| c.queue);
            let visits = self.db.visits_in_conversation(id).await?;
            let authorized = self.db.agent_authorized(id).await?;
            Ok::<_, crate::store::StoreError>((queue.unwrap_or_default(), visits, authorized))
        };
        let (queue, visits, authorized) = match facts.await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "chat classification could not be read");
                return;
            }
        };
        let flags = ChatClassification::of(id, &queue, visits, authorized, ended);
        self.audit
            .record_or_log(
                AuditEvent::system(
                    "classifier",
                    "conversation.classified",
                    format!("conversation:{id}"),
                    Outcome::Success,
                )
                .reason(serde_json::to_string(&flags).unwrap_or_default()),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn an_agent_is_authorized_with_the_grant_and_every_skill_of_the_queue() {
        assert!(agent_authorized(&[], &[], true), "a queue that asks no skill");
        assert!(agent_authorized(
            &s(&["spanish"]),
            &s(&["spanish", "pediatrics"]),
            true
        ));
        assert!(
            !agent_authorized(&s(&["spanish"]), &s(&["pediatrics"]), true),
            "a skill missing"
        );
        assert!(!agent_authorized(&[], &s(&["spanish"]), false), "no grant");
    }

    #[test]
    fn chat_only_interactions_are_classified_as_chat() {
        let chat = ChatClassification::of("c1", "triage", 0, Some(true), "finished");
        assert_eq!(
            (
                chat.interaction_type,
                chat.consent,
                chat.recording_status,
                chat.data_classification
            ),
            ("chat", "not_applicable", "none", "phi.chat")
        );
        let video = ChatClassification::of("c1", "triage", 2, Some(false), "idle");
        assert_eq!((video.interaction_type, video.consent), ("video", "see_visits"));
        let json = serde_json::to_value(&video).unwrap();
        assert_eq!(json["agent_authorized"], false);
        assert_eq!(json["visits"], 2);
    }
}
