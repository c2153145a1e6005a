//! What happens when a patient writes of an emergency or a crisis (`crate::triage` decides whether they did):
//! the notice goes to the socket that said it, in the language it was said in; the chat is flagged in its row
//! (the nurse's offer and chat, the supervisor's board) and, while waiting, moves to the front of the queue.

use super::routing::RoutingCommand;
use super::{Messaging, MessagingError};
use crate::protocol::ServerFrame;
use crate::store::{ConversationRow, ConversationState};
use crate::waiting_room::EMERGENCY_BOOST;

impl Messaging {
    /// Reads `text`, written by `c`'s patient, for an emergency or a crisis, and acts on it.
    pub(super) async fn screen(&self, c: &ConversationRow, text: &str) -> Result<(), MessagingError> {
        let Some(alarm) = self.triage.assess(text) else {
            return Ok(());
        };
        // To the patient's sockets on this node: what a patient wrote about their health does not go on the
        // bus, not even as this notice.
        self.hub.send(
            &c.patient,
            ServerFrame::Emergency {
                conversation_id: c.id.clone(),
                kind: alarm.kind,
                language: alarm.language,
                text: alarm.notice,
            },
        );
        // The flag is in the row (a new leader, the nurse's view and the board read it there), set once, and only
        // on an open chat; what follows reads the row as it is now (a nurse may have accepted meanwhile).
        if !self.db.flag_emergency(&c.id, EMERGENCY_BOOST).await? {
            return Ok(());
        }
        let Some(c) = self.db.conversation(&c.id).await? else {
            return Ok(());
        };
        match (c.state, &c.nurse) {
            (ConversationState::Waiting, _) => {
                let boost = RoutingCommand::Boost {
                    conversation: c.id.clone(),
                };
                if let Err(e) = self.route(boost).await {
                    tracing::warn!(error = %e, "emergency boost not routed yet");
                }
            }
            // The nurse with the chat sees the flag at once. This frame may cross the bus to her node: it carries the
            // flag and the reference, never the patient's words (those stay on this node, above).
            (ConversationState::Assigned, Some(nurse)) => {
                self.send_to(
                    nurse,
                    ServerFrame::Conversation {
                        conversation: self.view(&c),
                    },
                );
            }
            _ => {}
        }
        Ok(())
    }
}
