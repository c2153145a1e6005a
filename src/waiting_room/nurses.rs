//! A nurse's state as routing sees it: her presence (away, wrap-up, busy at her limit, ready), whether her
//! skills fit a queue, and the nurses a declined conversation skips for a while.

use super::{ConversationId, Millis, Nurse, Presence, SubjectId, WaitingRoom};

impl WaitingRoom {
    pub fn presence(&self, nurse: &SubjectId, now: Millis) -> Presence {
        self.nurses
            .get(nurse)
            .map(|n| self.state_of(n, now))
            .unwrap_or(Presence::Away)
    }

    pub(super) fn skip_for_a_while(&mut self, nurse: &SubjectId, conversation: &ConversationId, now: Millis) {
        if let Some(w) = self.waiting.iter_mut().find(|w| &w.conversation == conversation) {
            w.declined.insert(nurse.clone(), now + self.spec.offer_timeout_ms);
        }
    }

    pub(super) fn state_of(&self, n: &Nurse, now: Millis) -> Presence {
        if !n.available {
            Presence::Away
        } else if n.wrap_up_until.is_some_and(|t| t > now) {
            Presence::WrapUp
        } else if n.active.len() >= self.spec.max_chats_per_nurse {
            Presence::Busy
        } else {
            Presence::Ready
        }
    }

    pub(super) fn has_skills(&self, n: &Nurse, queue: &str) -> bool {
        self.queues
            .get(queue)
            .is_some_and(|q| q.skills.iter().all(|s| n.skills.contains(s)))
    }
}
