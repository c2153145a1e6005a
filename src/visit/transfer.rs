//! A live visit handed on with its chat (see `messaging::transfer`). Warm, to a colleague who accepted: she
//! holds the nurse's place at once. Cold, back to a queue: nobody holds it (the first nurse no longer may join)
//! until a nurse accepts the chat there, who then holds it. The visit, its recording and its guests go on
//! throughout; until the next nurse joins, her absence does not end the visit as a lost connection would.

use super::{Side, Visit, VisitId, Visits};
use crate::ids::SubjectId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// Back in a queue: the nurse's place is empty.
    Queued,
    /// A nurse holds the place and has not joined yet.
    Pending,
}

impl Visit {
    /// Whether the nurse's place waits for a nurse to accept the chat from a queue.
    pub fn awaits_nurse(&self) -> bool {
        self.handover == Some(Handover::Queued)
    }
}

impl Visits {
    /// Whether the chat's assignment (`assigned_at`, from the store) changed since last seen: a transfer, even
    /// one that came back to the same nurse between two looks. The first look only remembers it.
    pub fn reassigned(&mut self, id: &VisitId, assigned_at: Option<i64>) -> bool {
        let Some(v) = self.by_id.get_mut(id) else {
            return false;
        };
        let before = std::mem::replace(&mut v.assigned_at, assigned_at);
        before.is_some() && before != assigned_at
    }

    /// The visit's chat is `nurse`'s now (a colleague accepted it, or a nurse took it from the queue, `again`
    /// when it is the same nurse as before): she holds the nurse's place. Returns the visit, or `None` when
    /// nothing changed.
    pub fn hand_to(&mut self, id: &VisitId, nurse: &SubjectId, again: bool) -> Option<Visit> {
        let v = self.by_id.get_mut(id)?;
        if &v.nurse == nurse && v.handover != Some(Handover::Queued) && !again {
            return None;
        }
        v.nurse = nurse.clone();
        v.handover = Some(Handover::Pending);
        v.joined.retain(|s| *s != Side::Nurse);
        Some(v.clone())
    }

    /// The visit's chat went back to a queue: nobody holds the nurse's place. Returns the visit, or `None` when
    /// it was already waiting.
    pub fn to_queue(&mut self, id: &VisitId) -> Option<Visit> {
        let v = self.by_id.get_mut(id)?;
        if v.handover == Some(Handover::Queued) {
            return None;
        }
        v.handover = Some(Handover::Queued);
        v.joined.retain(|s| *s != Side::Nurse);
        Some(v.clone())
    }
}
