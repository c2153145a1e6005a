//! Warm transfer: a nurse asks a named colleague to take her chat. The colleague gets an offer of it (her one
//! offer slot, with the usual timeout) while the first nurse keeps the chat and goes on writing; when the
//! colleague accepts, the chat is hers and the first nurse's part ends (wrap-up); when she declines, lets the
//! offer expire or goes away, or the chat ends meanwhile, the first nurse still has it and is told. The
//! patient is never without a nurse.

use super::{ConversationId, Effect, Millis, OfferEnd, Presence, RoutingError, SubjectId, WaitingRoom};

/// One warm transfer in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Handoff {
    from: SubjectId,
    to: SubjectId,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HandoffEffect {
    /// The colleague is offered the chat; its first nurse keeps it meanwhile.
    Offered {
        from: SubjectId,
        to: SubjectId,
        conversation: ConversationId,
        expires_at: Millis,
    },
    /// The colleague took it: the chat is hers, the first nurse's part is over.
    Done {
        from: SubjectId,
        to: SubjectId,
        conversation: ConversationId,
    },
    /// Not taken, and why: the first nurse still has the chat (unless it ended: `Cancelled`).
    Ended {
        from: SubjectId,
        to: SubjectId,
        conversation: ConversationId,
        reason: OfferEnd,
    },
}

impl WaitingRoom {
    /// `from` asks `to` to take `conversation` (of `queue`, whose skills `to` must have). `to` must be ready
    /// (connected, not away, not in wrap-up, below her chat limit) with no offer open.
    pub fn hand_off(
        &mut self,
        from: &SubjectId,
        to: &SubjectId,
        conversation: &ConversationId,
        queue: &str,
        now: Millis,
    ) -> Result<Vec<Effect>, RoutingError> {
        if !self
            .nurses
            .get(from)
            .is_some_and(|n| n.active.contains(conversation))
        {
            return Err(RoutingError::NotAssigned);
        }
        let able = self.nurses.get(to).is_some_and(|n| {
            n.offer.is_none()
                && n.disconnected_since.is_none()
                && self.state_of(n, now) == Presence::Ready
                && self.has_skills(n, queue)
        });
        if from == to || !able || self.handoffs.contains_key(conversation) {
            return Err(RoutingError::ColleagueUnavailable);
        }
        let expires_at = now + self.spec.offer_timeout_ms;
        self.nurses.get_mut(to).expect("checked").offer = Some((conversation.clone(), expires_at));
        self.handoffs.insert(
            conversation.clone(),
            Handoff {
                from: from.clone(),
                to: to.clone(),
            },
        );
        Ok(vec![Effect::Handoff(HandoffEffect::Offered {
            from: from.clone(),
            to: to.clone(),
            conversation: conversation.clone(),
            expires_at,
        })])
    }

    /// The colleague accepted a handed-off chat (her offer already checked by `accept`).
    pub(super) fn take_handoff(&mut self, conversation: &ConversationId, now: Millis) -> Vec<Effect> {
        let Some(h) = self.handoffs.remove(conversation) else {
            return Vec::new();
        };
        let wrap_up = self.spec.wrap_up_ms;
        if let Some(to) = self.nurses.get_mut(&h.to) {
            to.offer = None;
            to.active.insert(conversation.clone());
        }
        if let Some(from) = self.nurses.get_mut(&h.from) {
            from.active.remove(conversation);
            if wrap_up > 0 {
                from.wrap_up_until = Some(now + wrap_up);
            }
        }
        let mut effects = vec![Effect::Handoff(HandoffEffect::Done {
            from: h.from,
            to: h.to,
            conversation: conversation.clone(),
        })];
        effects.extend(self.settle(now));
        effects
    }

    /// A pending transfer of `conversation` is over without the colleague taking it: her offer (if still
    /// open) ends, and the first nurse is told. Nothing when none is pending.
    pub(super) fn end_handoff(&mut self, conversation: &ConversationId, reason: OfferEnd) -> Vec<Effect> {
        let Some(h) = self.handoffs.remove(conversation) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        if let Some(to) = self.nurses.get_mut(&h.to)
            && to.offer.as_ref().is_some_and(|(c, _)| c == conversation)
        {
            to.offer = None;
            effects.push(Effect::OfferEnded {
                nurse: h.to.clone(),
                conversation: conversation.clone(),
                reason,
            });
        }
        effects.push(Effect::Handoff(HandoffEffect::Ended {
            from: h.from,
            to: h.to,
            conversation: conversation.clone(),
            reason,
        }));
        effects
    }
}
