//! The waiting room and routing core: queues of conversations waiting for a nurse, nurse presence, offers,
//! wrap-up, positions and estimated waits, reassurance prompts, who is connected (`patients`), statistics
//! (`stats`). A state machine with injected time: events and `now` go in, [`Effect`]s come out; a driver
//! (`messaging::routing`) owns sockets and timers. No I/O here, so every rule is unit-tested without a server or
//! sleeping.

mod eta;
mod handoff;
mod nurses;
mod patients;
mod positions;
mod stats;

use std::collections::{HashMap, HashSet, VecDeque};

use crate::ids::{ConversationId, SubjectId};

pub use eta::estimate_wait;
pub use handoff::HandoffEffect;
pub use patients::Abandonment;
pub use stats::{NurseStats, QueueStats};

/// Milliseconds since the Unix epoch; the only clock this module knows.
pub type Millis = i64;

#[derive(Debug, Clone)]
pub struct Reassurance {
    pub after_seconds: u64,
    /// Repeat every so often after the first; `None` shows it once.
    pub every_seconds: Option<u64>,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    /// Skills a nurse needs to be offered this queue's conversations.
    pub skills: Vec<String>,
    /// Higher first; emergencies add [`EMERGENCY_BOOST`].
    pub priority: i64,
    pub reassurance: Vec<Reassurance>,
    /// After this wait the patient is offered to leave a message for a call back.
    pub max_wait_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RoutingSpec {
    pub offer_timeout_ms: Millis,
    pub wrap_up_ms: Millis,
    pub max_chats_per_nurse: usize,
    /// Handle time assumed before a queue has history.
    pub default_handle_ms: Millis,
    /// How long a patient whose socket dropped keeps their place (waiting) or is "reconnecting" (with a nurse).
    pub patient_grace_ms: Millis,
    /// How long a nurse may be away or disconnected before her chats go back to the front of their queue.
    pub stranded_grace_ms: Millis,
}

/// Priority added to a conversation that mentions emergency symptoms.
pub const EMERGENCY_BOOST: i64 = 1000;
/// How many recent handle times feed the estimate.
const HANDLE_HISTORY: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Ready,
    Busy,
    WrapUp,
    Away,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferEnd {
    Expired,
    Declined,
    /// The conversation left the queue (the patient gave up) while offered.
    Cancelled,
    /// The nurse went away or disconnected.
    NurseUnavailable,
    /// A new routing leader took over (the previous node stopped) and routes the conversation afresh.
    Rerouted,
    /// The waiting patient's connection dropped; it comes again if they come back within the grace.
    PatientLeft,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Offer {
        nurse: SubjectId,
        conversation: ConversationId,
        expires_at: Millis,
    },
    OfferEnded {
        nurse: SubjectId,
        conversation: ConversationId,
        reason: OfferEnd,
    },
    Assigned {
        nurse: SubjectId,
        conversation: ConversationId,
    },
    Position {
        conversation: ConversationId,
        position: usize,
        eta_seconds: Option<u64>,
    },
    Reassure {
        conversation: ConversationId,
        text: String,
    },
    MaxWaitReached {
        conversation: ConversationId,
    },
    NurseState {
        nurse: SubjectId,
        state: Presence,
    },
    /// A waiting patient stayed away past the grace: out of the queue.
    Abandoned {
        conversation: ConversationId,
        waited_ms: Millis,
    },
    /// The patient of an assigned chat connected, dropped, or stayed away past the grace.
    PatientPresence {
        nurse: SubjectId,
        conversation: ConversationId,
        state: PatientState,
    },
    /// The nurse stayed away past the grace: the chat goes back to its queue (the driver re-queues the row).
    Stranded {
        nurse: SubjectId,
        conversation: ConversationId,
    },
    /// A warm transfer offered, done, or not taken (`handoff`).
    Handoff(HandoffEffect),
}

/// Where an assigned chat's patient is, as the nurse sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientState {
    Online,
    Reconnecting,
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("unknown queue `{0}`")]
    UnknownQueue(String),
    #[error("no open offer of this conversation to this nurse")]
    NoSuchOffer,
    #[error("the conversation is not assigned to this nurse")]
    NotAssigned,
    #[error("that colleague cannot take a chat now")]
    ColleagueUnavailable,
}

#[derive(Debug)]
struct Waiting {
    conversation: ConversationId,
    queue: String,
    priority: i64,
    /// The patient wrote of an emergency (or was returned with one): staff see the flag.
    emergency: bool,
    enqueued_at: Millis,
    reassured: usize,
    next_reassurance_at: Option<Millis>,
    max_wait_notified: bool,
    last_position: Option<(usize, Option<u64>)>,
    /// Nurses who declined, and until when they are skipped for it.
    declined: HashMap<SubjectId, Millis>,
    /// Since when the patient has had no connection (not offered meanwhile; abandoned after the grace).
    away_since: Option<Millis>,
    position_sent_at: Option<Millis>,
}

#[derive(Debug, Default)]
struct Nurse {
    available: bool,
    skills: HashSet<String>,
    active: HashSet<ConversationId>,
    wrap_up_until: Option<Millis>,
    offer: Option<(ConversationId, Millis)>,
    last_state: Option<Presence>,
    /// Since when she has had no connection (her chats go back to the queue after the grace).
    disconnected_since: Option<Millis>,
}

/// The whole routing state of one broker node.
pub struct WaitingRoom {
    queues: HashMap<String, QueueSpec>,
    spec: RoutingSpec,
    waiting: Vec<Waiting>,
    nurses: HashMap<SubjectId, Nurse>,
    handle_times: HashMap<String, VecDeque<Millis>>,
    /// Assigned chats whose patient has no connection: since when, and whether the nurse was told "gone".
    patients_away: HashMap<ConversationId, (Millis, bool)>,
    /// Open connections of each conversation's patient, once any was seen (node and socket).
    connections: HashMap<ConversationId, HashSet<String>>,
    /// Open connections of each nurse, once any was seen.
    nurse_connections: HashMap<SubjectId, HashSet<String>>,
    /// Abandoned conversations by queue, by how long they had waited.
    abandoned: HashMap<String, patients::Abandonment>,
    /// Chats a nurse asked a named colleague to take (warm transfers), until taken or not.
    handoffs: HashMap<ConversationId, handoff::Handoff>,
}

impl WaitingRoom {
    pub fn new(queues: Vec<QueueSpec>, spec: RoutingSpec) -> Self {
        Self {
            queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
            spec,
            waiting: Vec::new(),
            nurses: HashMap::new(),
            handle_times: HashMap::new(),
            patients_away: HashMap::new(),
            connections: HashMap::new(),
            nurse_connections: HashMap::new(),
            abandoned: HashMap::new(),
            handoffs: HashMap::new(),
        }
    }

    pub fn queue(&self, name: &str) -> Option<&QueueSpec> {
        self.queues.get(name)
    }

    /// The conversations in a queue (offered or not).
    pub fn waiting_ids(&self) -> Vec<ConversationId> {
        self.waiting.iter().map(|w| w.conversation.clone()).collect()
    }

    /// Whether a nurse has `conversation` (accepted, even if the database does not say so yet).
    pub fn is_assigned(&self, conversation: &ConversationId) -> bool {
        self.nurses.values().any(|n| n.active.contains(conversation))
    }

    /// A conversation enters its queue (new, or restored after a restart with its original `enqueued_at`).
    pub fn enqueue(
        &mut self,
        conversation: ConversationId,
        queue: &str,
        boost: i64,
        enqueued_at: Millis,
        now: Millis,
    ) -> Result<Vec<Effect>, RoutingError> {
        let spec = self
            .queues
            .get(queue)
            .ok_or_else(|| RoutingError::UnknownQueue(queue.to_string()))?;
        if !self.waiting.iter().any(|w| w.conversation == conversation) {
            let away_since = self.patient_known_absent(&conversation).then_some(now);
            let first = spec
                .reassurance
                .first()
                .map(|r| enqueued_at + r.after_seconds as Millis * 1000);
            self.waiting.push(Waiting {
                conversation,
                queue: queue.to_string(),
                priority: spec.priority + boost,
                emergency: boost >= EMERGENCY_BOOST,
                enqueued_at,
                reassured: 0,
                next_reassurance_at: first,
                max_wait_notified: false,
                last_position: None,
                declined: HashMap::new(),
                away_since,
                position_sent_at: None,
            });
        }
        Ok(self.settle(now))
    }

    /// Raises a waiting conversation's priority (emergency symptoms mentioned).
    pub fn boost(&mut self, conversation: &ConversationId, now: Millis) -> Vec<Effect> {
        if let Some(w) = self.waiting.iter_mut().find(|w| &w.conversation == conversation)
            && !w.emergency
        {
            w.priority += EMERGENCY_BOOST;
            w.emergency = true;
        }
        self.settle(now)
    }

    /// The conversation leaves the waiting room without a nurse (patient left, expired, call back chosen).
    pub fn cancel(&mut self, conversation: &ConversationId, now: Millis) -> Vec<Effect> {
        let mut effects = self.end_handoff(conversation, OfferEnd::Cancelled);
        self.waiting.retain(|w| &w.conversation != conversation);
        self.forget_patient(conversation);
        for (id, nurse) in &mut self.nurses {
            // Accepted, but it ended before the assignment was stored: the nurse gets her place back.
            nurse.active.remove(conversation);
            if nurse.offer.as_ref().is_some_and(|(c, _)| c == conversation) {
                nurse.offer = None;
                effects.push(Effect::OfferEnded {
                    nurse: id.clone(),
                    conversation: conversation.clone(),
                    reason: OfferEnd::Cancelled,
                });
            }
        }
        effects.extend(self.settle(now));
        effects
    }

    /// A nurse goes ready (`true`) or away (`false`); her skills come from her identity.
    pub fn set_available(
        &mut self,
        nurse: &SubjectId,
        skills: &[String],
        available: bool,
        now: Millis,
    ) -> Vec<Effect> {
        let n = self.nurses.entry(nurse.clone()).or_default();
        n.available = available;
        // "Ready" during wrap-up is the nurse saying she is done with it.
        if available {
            n.wrap_up_until = None;
        }
        n.skills = skills.iter().cloned().collect();
        let mut effects = Vec::new();
        if !available && let Some((conversation, _)) = n.offer.take() {
            effects.push(Effect::OfferEnded {
                nurse: nurse.clone(),
                conversation: conversation.clone(),
                reason: OfferEnd::NurseUnavailable,
            });
            effects.extend(self.end_handoff(&conversation, OfferEnd::NurseUnavailable));
        }
        effects.extend(self.settle(now));
        effects
    }

    /// After a restart: the nurse already holds this conversation (until her connection is seen, she counts as
    /// connected: on a single node's start the driver says otherwise).
    pub fn restore_assignment(&mut self, nurse: &SubjectId, conversation: ConversationId) {
        self.nurses
            .entry(nurse.clone())
            .or_default()
            .active
            .insert(conversation);
    }

    pub fn accept(
        &mut self,
        nurse: &SubjectId,
        conversation: &ConversationId,
        now: Millis,
    ) -> Result<Vec<Effect>, RoutingError> {
        let open = self
            .nurses
            .get(nurse)
            .and_then(|n| n.offer.as_ref())
            .is_some_and(|(c, expires)| c == conversation && *expires > now);
        if !open {
            return Err(RoutingError::NoSuchOffer);
        }
        if self.handoffs.contains_key(conversation) {
            let mut effects = self.take_handoff(conversation, now);
            effects.push(self.patient_presence_for(nurse, conversation));
            return Ok(effects);
        }
        let n = self.nurses.get_mut(nurse).expect("has the offer");
        n.offer = None;
        n.active.insert(conversation.clone());
        self.waiting.retain(|w| &w.conversation != conversation);
        let mut effects = vec![
            Effect::Assigned {
                nurse: nurse.clone(),
                conversation: conversation.clone(),
            },
            self.patient_presence_for(nurse, conversation),
        ];
        effects.extend(self.settle(now));
        Ok(effects)
    }

    pub fn decline(
        &mut self,
        nurse: &SubjectId,
        conversation: &ConversationId,
        now: Millis,
    ) -> Result<Vec<Effect>, RoutingError> {
        let n = self.nurses.get_mut(nurse).ok_or(RoutingError::NoSuchOffer)?;
        if n.offer.as_ref().is_none_or(|(c, _)| c != conversation) {
            return Err(RoutingError::NoSuchOffer);
        }
        n.offer = None;
        self.skip_for_a_while(nurse, conversation, now);
        let mut effects = vec![Effect::OfferEnded {
            nurse: nurse.clone(),
            conversation: conversation.clone(),
            reason: OfferEnd::Declined,
        }];
        effects.extend(self.end_handoff(conversation, OfferEnd::Declined));
        effects.extend(self.settle(now));
        Ok(effects)
    }

    /// The nurse ends a chat: its handle time feeds the estimates, and she enters wrap-up.
    pub fn finish(
        &mut self,
        nurse: &SubjectId,
        conversation: &ConversationId,
        queue: &str,
        handled_ms: Millis,
        now: Millis,
    ) -> Result<Vec<Effect>, RoutingError> {
        let wrap_up = self.spec.wrap_up_ms;
        let n = self.nurses.get_mut(nurse).ok_or(RoutingError::NotAssigned)?;
        if !n.active.remove(conversation) {
            return Err(RoutingError::NotAssigned);
        }
        if wrap_up > 0 {
            n.wrap_up_until = Some(now + wrap_up);
        }
        self.patients_away.remove(conversation);
        let mut effects = self.end_handoff(conversation, OfferEnd::Cancelled);
        let history = self.handle_times.entry(queue.to_string()).or_default();
        history.push_back(handled_ms.max(0));
        if history.len() > HANDLE_HISTORY {
            history.pop_front();
        }
        effects.extend(self.settle(now));
        Ok(effects)
    }

    /// Seeds handle-time history at start-up from recently closed conversations.
    pub fn record_handle_time(&mut self, queue: &str, handled_ms: Millis) {
        let history = self.handle_times.entry(queue.to_string()).or_default();
        history.push_back(handled_ms.max(0));
        if history.len() > HANDLE_HISTORY {
            history.pop_front();
        }
    }

    /// Timers: offer expiry, end of wrap-up, reassurance prompts, maximum wait, and the graces of people who
    /// dropped out (abandonment, a patient gone, stranded chats).
    pub fn tick(&mut self, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut expired = Vec::new();
        for (id, nurse) in &mut self.nurses {
            if let Some((conversation, expires)) = &nurse.offer
                && *expires <= now
            {
                expired.push((id.clone(), conversation.clone()));
                nurse.offer = None;
            }
            if nurse.wrap_up_until.is_some_and(|t| t <= now) {
                nurse.wrap_up_until = None;
            }
        }
        for (nurse, conversation) in expired {
            self.skip_for_a_while(&nurse, &conversation, now);
            effects.push(Effect::OfferEnded {
                nurse,
                conversation: conversation.clone(),
                reason: OfferEnd::Expired,
            });
            effects.extend(self.end_handoff(&conversation, OfferEnd::Expired));
        }
        for w in &mut self.waiting {
            let spec = &self.queues[&w.queue];
            while let Some(at) = w.next_reassurance_at.filter(|at| *at <= now) {
                let rule = &spec.reassurance[w.reassured.min(spec.reassurance.len() - 1)];
                effects.push(Effect::Reassure {
                    conversation: w.conversation.clone(),
                    text: rule.text.clone(),
                });
                w.reassured += 1;
                w.next_reassurance_at = match spec.reassurance.get(w.reassured) {
                    Some(next) => Some(w.enqueued_at + next.after_seconds as Millis * 1000),
                    None => rule.every_seconds.map(|e| at + e.max(1) as Millis * 1000),
                };
                if w.reassured >= spec.reassurance.len() {
                    w.reassured = spec.reassurance.len();
                }
            }
            if let Some(max) = spec.max_wait_seconds
                && !w.max_wait_notified
                && now - w.enqueued_at >= max as Millis * 1000
            {
                w.max_wait_notified = true;
                effects.push(Effect::MaxWaitReached {
                    conversation: w.conversation.clone(),
                });
            }
        }
        effects.extend(self.absences(now));
        effects.extend(self.settle(now));
        effects
    }

    fn average_handle_ms(&self, queue: &str) -> Millis {
        match self.handle_times.get(queue) {
            Some(h) if !h.is_empty() => h.iter().sum::<Millis>() / h.len() as Millis,
            _ => self.spec.default_handle_ms,
        }
    }

    /// Waiting conversations in service order: priority, then longest wait.
    fn order(&mut self) {
        self.waiting.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.enqueued_at.cmp(&b.enqueued_at))
        });
    }

    /// Offers waiting conversations to ready nurses, then reports changed positions and nurse states.
    fn settle(&mut self, now: Millis) -> Vec<Effect> {
        self.order();
        let mut effects = Vec::new();
        let offered: HashSet<ConversationId> = self
            .nurses
            .values()
            .filter_map(|n| n.offer.as_ref().map(|(c, _)| c.clone()))
            .collect();
        // Whoever could take an offer now; when nobody can, nobody is looked at (10,000 waiting, no nurse free).
        let mut free = self
            .nurses
            .values()
            .filter(|n| n.offer.is_none() && self.state_of(n, now) == Presence::Ready)
            .count();
        for i in 0..self.waiting.len() {
            if free == 0 {
                break;
            }
            let w = &self.waiting[i];
            // Nobody is offered a patient who is not there; they keep their place meanwhile.
            if offered.contains(&w.conversation) || w.away_since.is_some() {
                continue;
            }
            // The ready nurse with the fewest chats, then by id for determinism.
            let mut candidates: Vec<(&SubjectId, &Nurse)> = self
                .nurses
                .iter()
                .filter(|(id, n)| {
                    n.offer.is_none()
                        && self.state_of(n, now) == Presence::Ready
                        && self.has_skills(n, &w.queue)
                        && w.declined.get(*id).is_none_or(|until| *until <= now)
                })
                .collect();
            candidates.sort_by(|a, b| a.1.active.len().cmp(&b.1.active.len()).then(a.0.cmp(b.0)));
            if let Some((id, _)) = candidates.first() {
                let id = (*id).clone();
                let expires_at = now + self.spec.offer_timeout_ms;
                let conversation = w.conversation.clone();
                self.nurses.get_mut(&id).expect("candidate exists").offer =
                    Some((conversation.clone(), expires_at));
                free -= 1;
                effects.push(Effect::Offer {
                    nurse: id,
                    conversation,
                    expires_at,
                });
            }
        }
        effects.extend(self.positions(now));
        let states: Vec<(SubjectId, Presence)> = self
            .nurses
            .iter()
            .map(|(id, n)| (id.clone(), self.state_of(n, now)))
            .collect();
        for (id, state) in states {
            let n = self.nurses.get_mut(&id).expect("listed");
            if n.last_state != Some(state) {
                n.last_state = Some(state);
                effects.push(Effect::NurseState { nurse: id, state });
            }
        }
        effects
    }
}

#[cfg(test)]
mod handoff_tests;
#[cfg(test)]
mod tests;
