//! Who is actually there: a patient whose connection drops keeps their place in the queue for
//! `patient_grace_ms` but is offered to nobody meanwhile (an open offer is withdrawn), then leaves the queue as
//! abandoned; a nurse with the chat sees the patient as online, reconnecting or gone. A nurse away or
//! disconnected past `stranded_grace_ms` loses her chats to the front of their queue.

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
            if nurse.away_since.is_some_and(|t| now - t >= stranded_grace) {
                stranded.extend(nurse.active.drain().map(|c| (id.clone(), c)));
            }
        }
        for (nurse, conversation) in stranded {
            self.patients_away.remove(&conversation);
            effects.push(Effect::Stranded { nurse, conversation });
        }
        effects
    }
}
