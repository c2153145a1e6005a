//! Chat-side values carried in frames: a conversation as a client sees it, wrap-up as the workspace shows it,
//! why a chat went back to a queue, and a colleague a chat may be handed to.

use serde::Serialize;

use crate::ids::{ConversationId, SubjectId};

/// A conversation as its participants see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConversationView {
    pub conversation_id: ConversationId,
    pub reference: String,
    pub queue: String,
    pub state: String,
    pub last_seq: i64,
    pub chat_while_waiting: bool,
    pub hold_music: Option<String>,
    /// The patient wrote of an emergency or a crisis (staff see it; the chat was moved to the front).
    pub emergency: bool,
}

/// Wrap-up as the workspace shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WrapUpSpec {
    pub seconds: u64,
    pub dispositions: Vec<String>,
}

/// Why a chat went back to a queue.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RequeueReason {
    NurseAway,
    Transferred,
}

/// A nurse a chat may be handed to (warm transfer): ready now, with the skills of its queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Colleague {
    pub nurse: SubjectId,
    pub name: Option<String>,
}
