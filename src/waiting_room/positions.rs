//! Each waiting patient's place and estimated wait, sent when they change: every change near the front, farther
//! back at most every few seconds.

use std::collections::HashMap;

use super::{Effect, Millis, Presence, WaitingRoom, estimate_wait};

/// Least time between two position updates to a patient beyond the first three places.
const POSITION_EVERY_MS: Millis = 5_000;

impl WaitingRoom {
    pub(super) fn positions(&mut self, now: Millis) -> Vec<Effect> {
        // Per queue once: nurses staffing it and its handle time (not per waiting patient).
        let per_queue_facts: HashMap<String, (usize, Millis)> = self
            .queues
            .keys()
            .map(|q| {
                let staffed = self
                    .nurses
                    .values()
                    .filter(|n| self.has_skills(n, q) && self.state_of(n, now) != Presence::Away)
                    .count();
                (q.clone(), (staffed, self.average_handle_ms(q)))
            })
            .collect();
        let mut per_queue: HashMap<&str, usize> = HashMap::new();
        let mut updates = Vec::new();
        for w in &mut self.waiting {
            let position = {
                let p = per_queue.entry(w.queue.as_str()).or_insert(0);
                *p += 1;
                *p
            };
            let (staffed, handle_ms) = per_queue_facts.get(&w.queue).copied().unwrap_or((0, 0));
            let eta = estimate_wait(position, staffed, handle_ms);
            // Every change near the front; farther back at most every few seconds (a long queue moving would
            // otherwise send each patient a frame per patient served). A held change goes at a later tick.
            let due = position <= 3 || w.position_sent_at.is_none_or(|t| now - t >= POSITION_EVERY_MS);
            if w.last_position != Some((position, eta)) && due {
                w.last_position = Some((position, eta));
                w.position_sent_at = Some(now);
                updates.push(Effect::Position {
                    conversation: w.conversation.clone(),
                    position,
                    eta_seconds: eta,
                });
            }
        }
        updates
    }
}
