//! Who is actually there. Each person's open connections (node and socket) are counted, so a close that arrives
//! after the reopen that replaced it changes nothing. A patient with none keeps their place in the queue for
//! `patient_grace_ms` but is offered to nobody meanwhile (an open offer is withdrawn), then leaves the queue as
//! abandoned; a nurse with the chat sees the patient as online, reconnecting or gone. A nurse with no connection
//! past `stranded_grace_ms` loses her chats to the front of their queue (one who is merely "away" keeps them:
//! she stopped taking offers to finish them).

use super::{Effect, Millis, OfferEnd, PatientState, WaitingRoom};
use crate::ids::{ConversationId, SubjectId};

/// Conversations that left a queue before a nurse took them, by how long they had waited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Abandonment {
    pub under_1_minute: u64,
    pub from_1_to_5_minutes: u64,
    pub over_5_minutes: u64,
}

impl Abandonment {
    fn count(&mut self, waited_ms: Millis) {
        match waited_ms {
            ..60_000 => self.under_1_minute += 1,
            60_000..300_000 => self.from_1_to_5_minutes += 1,
            _ => self.over_5_minutes += 1,
        }
    }
}

impl WaitingRoom {
    /// A patient's `connection` (a node's socket) opened or closed, for their `conversation`.
    pub fn patient_connection(
        &mut self,
        conversation: &ConversationId,
        connection: &str,
        open: bool,
        now: Millis,
    ) -> Vec<Effect> {
        let set = self.connections.entry(conversation.clone()).or_default();
        if open {
            set.insert(connection.to_string());
        } else {
            set.remove(connection);
        }
        if set.is_empty() {
            self.patient_left(conversation, now)
        } else {
            self.patient_back(conversation, now)
        }
    }

    /// Known to have no connection (after a start, when nobody is connected yet).
    pub fn patient_absent(&mut self, conversation: &ConversationId, now: Millis) -> Vec<Effect> {
        self.connections.entry(conversation.clone()).or_default();
        self.patient_left(conversation, now)
    }

    /// A nurse's `connection` opened or closed; with none left, the stranded-chat grace starts.
    pub fn nurse_connection(&mut self, nurse: &SubjectId, connection: &str, open: bool, now: Millis) {
        let set = self.nurse_connections.entry(nurse.clone()).or_default();
        if open {
            set.insert(connection.to_string());
        } else {
            set.remove(connection);
        }
        let n = self.nurses.entry(nurse.clone()).or_default();
        n.disconnected_since = if set.is_empty() {
            n.disconnected_since.or(Some(now))
        } else {
            None
        };
    }

    /// Forgets the connections `gone` says belong to a node that died (their closes will never come).
    pub fn forget_connections(&mut self, gone: impl Fn(&str) -> bool, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        let touched: Vec<ConversationId> = self
            .connections
            .iter_mut()
            .filter_map(|(c, set)| {
                let before = set.len();
                set.retain(|k| !gone(k));
                (set.len() < before && set.is_empty()).then(|| c.clone())
            })
            .collect();
        for c in touched {
            effects.extend(self.patient_left(&c, now));
        }
        let nurses: Vec<SubjectId> = self.nurse_connections.keys().cloned().collect();
        for nurse in nurses {
            let gone_ones: Vec<String> = self.nurse_connections[&nurse]
                .iter()
                .filter(|k| gone(k))
                .cloned()
                .collect();
            for k in gone_ones {
                self.nurse_connection(&nurse, &k, false, now);
            }
        }
        effects
    }

    /// Whether `conversation`'s patient is known to have no connection (a new queue entry starts away).
    pub(super) fn patient_known_absent(&self, conversation: &ConversationId) -> bool {
        self.connections.get(conversation).is_some_and(|s| s.is_empty())
    }

    /// The patient of `conversation` has no connection any more.
    pub fn patient_left(&mut self, conversation: &ConversationId, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(w) = self.waiting.iter_mut().find(|w| &w.conversation == conversation) {
            w.away_since.get_or_insert(now);
            for (id, nurse) in &mut self.nurses {
                if nurse.offer.as_ref().is_some_and(|(c, _)| c == conversation) {
                    nurse.offer = None;
                    effects.push(Effect::OfferEnded {
                        nurse: id.clone(),
                        conversation: conversation.clone(),
                        reason: OfferEnd::PatientLeft,
                    });
                }
            }
        } else if let Some(nurse) = self.nurse_of(conversation) {
            self.patients_away
                .entry(conversation.clone())
                .or_insert((now, false));
            effects.push(Effect::PatientPresence {
                nurse,
                conversation: conversation.clone(),
                state: PatientState::Reconnecting,
            });
        }
        effects.extend(self.settle(now));
        effects
    }

    /// The patient of `conversation` is connected (again).
    pub fn patient_back(&mut self, conversation: &ConversationId, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(w) = self.waiting.iter_mut().find(|w| &w.conversation == conversation) {
            w.away_since = None;
        } else if self.patients_away.remove(conversation).is_some()
            && let Some(nurse) = self.nurse_of(conversation)
        {
            effects.push(Effect::PatientPresence {
                nurse,
                conversation: conversation.clone(),
                state: PatientState::Online,
            });
        }
        effects.extend(self.settle(now));
        effects
    }

    /// Where the patient of `conversation` is, for a nurse who just took it: every chat shows it from the start.
    pub(super) fn patient_presence_for(&self, nurse: &SubjectId, conversation: &ConversationId) -> Effect {
        Effect::PatientPresence {
            nurse: nurse.clone(),
            conversation: conversation.clone(),
            state: if self.patients_away.contains_key(conversation) {
                PatientState::Reconnecting
            } else {
                PatientState::Online
            },
        }
    }

    /// The nurse holding `conversation`, if one does.
    fn nurse_of(&self, conversation: &ConversationId) -> Option<SubjectId> {
        self.nurses
            .iter()
            .find(|(_, n)| n.active.contains(conversation))
            .map(|(id, _)| id.clone())
    }

    /// Forgets what is known about a conversation's patient (it ended).
    pub(super) fn forget_patient(&mut self, conversation: &ConversationId) {
        self.patients_away.remove(conversation);
        self.connections.remove(conversation);
    }

    /// The graces running out: waiting patients gone too long leave the queue, nurses are told a patient is
    /// gone, and the chats of nurses away too long are handed back.
    pub(super) fn absences(&mut self, now: Millis) -> Vec<Effect> {
        let grace = self.spec.patient_grace_ms;
        let mut effects = Vec::new();
        let (gone, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.away_since.is_some_and(|t| now - t >= grace));
        self.waiting = stay;
        for w in gone {
            let waited_ms = now - w.enqueued_at;
            self.abandoned
                .entry(w.queue.clone())
                .or_default()
                .count(waited_ms);
            effects.push(Effect::Abandoned {
                conversation: w.conversation,
                waited_ms,
            });
        }
        let overdue: Vec<ConversationId> = self
            .patients_away
            .iter_mut()
            .filter(|(_, (since, told))| !*told && now - *since >= grace)
            .map(|(c, (_, told))| {
                *told = true;
                c.clone()
            })
            .collect();
        for conversation in overdue {
            if let Some(nurse) = self.nurse_of(&conversation) {
                effects.push(Effect::PatientPresence {
                    nurse,
                    conversation,
                    state: PatientState::Gone,
                });
            }
        }
        let stranded_grace = self.spec.stranded_grace_ms;
        let mut stranded = Vec::new();
        for (id, nurse) in &mut self.nurses {
            if nurse
                .disconnected_since
                .is_some_and(|t| now - t >= stranded_grace)
            {
                stranded.extend(nurse.active.drain().map(|c| (id.clone(), c)));
            }
        }
        // The patient's connections stay known: a patient who is away is re-queued away.
        for (nurse, conversation) in stranded {
            self.patients_away.remove(&conversation);
            effects.extend(self.end_handoff(&conversation, OfferEnd::NurseUnavailable));
            effects.push(Effect::Stranded { nurse, conversation });
        }
        effects
    }
}
