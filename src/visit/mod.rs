//! Video visits: the rules for elevating a chat to video, without sockets or media. A visit belongs to one
//! assigned conversation; only its nurse may propose it (and not during wrap-up), only its patient may accept
//! or decline, and only those two, the guests the nurse admitted and the staff she asked in (`guests`) may join
//! its media room. Declining keeps the chat; the patient or nurse can end the video and return to chat. A visit
//! whose participants have all gone is closed after a grace period so a reload rejoins the same visit; one
//! whose chat is transferred goes with it to the next nurse (`transfer`). Time is injected; the media engine
//! and the socket layer act on the results.

pub mod classification;
pub mod controls;
pub mod guests;
mod party;
pub mod placement;
mod seat;
pub mod service;
mod transfer;

use std::collections::HashMap;

/// Which side of a visit, and why one ended: wire values, defined with the protocol.
pub use crate::protocol::{EndReason, Side};

pub use seat::Seat;

use crate::ids::{ConversationId, SubjectId, random_hex};

/// Opaque id of a visit and of its media room: random, carries no PHI.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct VisitId(String);

impl VisitId {
    pub fn random() -> Self {
        Self(format!("v{}", random_hex(12)))
    }
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 25 && s.starts_with('v') && s[1..].chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VisitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    /// The nurse asked; the patient has not answered.
    Proposed,
    /// The patient agreed: both may join the media room.
    Active,
}

impl VisitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "proposed" => Some(Self::Proposed),
            "active" => Some(Self::Active),
            _ => None,
        }
    }
}

/// What the caller knows about the conversation when a nurse elevates it.
pub struct ConversationFacts<'a> {
    pub id: &'a ConversationId,
    pub queue: &'a str,
    pub patient: &'a SubjectId,
    /// The nurse it is assigned to, if it is assigned.
    pub assigned_nurse: Option<&'a SubjectId>,
    pub nurse_in_wrap_up: bool,
}

#[derive(Debug, Clone)]
pub struct Visit {
    pub id: VisitId,
    pub conversation: ConversationId,
    pub queue: String,
    pub patient: SubjectId,
    pub nurse: SubjectId,
    pub state: VisitState,
    pub created_ms: i64,
    joined: Vec<Side>,
    /// When the last participant left (for the abandonment grace).
    empty_since_ms: Option<i64>,
    /// When one participant dropped out while the other stayed (for the reconnect limit).
    alone_since_ms: Option<i64>,
    /// Mute, camera off, audio only.
    pub controls: controls::Controls,
    /// How many times the visit moved to another node.
    pub epoch: u32,
    /// Family members and caregivers the patient invited, and staff the nurse asked in (see `guests`).
    pub party: guests::Party,
    /// Handed on with its chat and not yet joined by the next nurse (see `transfer`).
    handover: Option<transfer::Handover>,
    /// When its chat was last assigned, as last seen (a change is a transfer, even back to the same nurse).
    assigned_at: Option<i64>,
}

impl Visit {
    pub fn side_of(&self, subject: &SubjectId) -> Option<Side> {
        if subject == &self.nurse && self.handover != Some(transfer::Handover::Queued) {
            Some(Side::Nurse)
        } else if subject == &self.patient {
            Some(Side::Patient)
        } else {
            None
        }
    }
    pub fn joined(&self) -> &[Side] {
        &self.joined
    }

    /// Who holds `seat`.
    pub fn subject_of<'a>(&'a self, seat: &'a Seat) -> &'a SubjectId {
        match seat {
            Seat::Patient => &self.patient,
            Seat::Nurse => &self.nurse,
            Seat::Guest(g) => g,
        }
    }

    /// Everyone who takes part: the patient, the nurse, and guests not removed (waiting in the lobby too).
    pub fn people(&self) -> Vec<SubjectId> {
        let guests = self.party.present().map(|g| g.subject.clone());
        let nurse = Some(self.nurse.clone()).filter(|_| !self.awaits_nurse());
        std::iter::once(self.patient.clone())
            .chain(nurse)
            .chain(guests)
            .collect()
    }

    /// Every seat the visit has had: patient, nurse and each guest (removed ones too).
    pub fn seats(&self) -> Vec<Seat> {
        let guests = self.party.guests.iter().map(|g| Seat::Guest(g.subject.clone()));
        [Seat::Patient, Seat::Nurse].into_iter().chain(guests).collect()
    }

    /// The place `subject` may take in the media room, if any.
    pub fn seat_of(&self, subject: &SubjectId) -> Option<Seat> {
        match self.side_of(subject) {
            Some(side) => Some(side.into()),
            None => self.party.get(subject).map(|g| Seat::Guest(g.subject.clone())),
        }
    }

    /// A visit another node hosted, taken over here (its host drained or died): nobody is connected yet, and
    /// the abandonment grace runs from `now_ms` so both have time to rejoin.
    #[allow(clippy::too_many_arguments)]
    pub fn resumed(
        id: VisitId,
        conversation: ConversationId,
        queue: String,
        patient: SubjectId,
        nurse: SubjectId,
        state: VisitState,
        created_ms: i64,
        epoch: u32,
        now_ms: i64,
    ) -> Visit {
        Visit {
            id,
            conversation,
            queue,
            patient,
            nurse,
            state,
            created_ms,
            joined: Vec::new(),
            empty_since_ms: Some(now_ms),
            alone_since_ms: None,
            controls: Default::default(),
            epoch,
            party: Default::default(),
            handover: None,
            assigned_at: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VisitError {
    #[error("only the nurse the conversation is assigned to may start video")]
    NotAssignedNurse,
    #[error("video cannot start during wrap-up")]
    WrapUp,
    #[error("no such visit")]
    UnknownVisit,
    #[error("you are not a participant of this visit")]
    NotParticipant,
    #[error("only the patient answers the video request")]
    NotPatient,
    #[error("the patient has not accepted video yet")]
    NotActive,
    #[error("the video request was already answered")]
    AlreadyAnswered,
    #[error(transparent)]
    Guest(#[from] guests::GuestError),
}

/// Every live visit on this node, by id and by conversation.
#[derive(Default)]
pub struct Visits {
    by_id: HashMap<VisitId, Visit>,
    by_conversation: HashMap<ConversationId, VisitId>,
}

impl Visits {
    /// The nurse asks for video. Idempotent: a second request returns the live visit.
    pub fn elevate(
        &mut self,
        facts: &ConversationFacts<'_>,
        nurse: &SubjectId,
        now_ms: i64,
    ) -> Result<&Visit, VisitError> {
        if facts.assigned_nurse != Some(nurse) {
            return Err(VisitError::NotAssignedNurse);
        }
        if facts.nurse_in_wrap_up {
            return Err(VisitError::WrapUp);
        }
        let id = match self.by_conversation.get(facts.id) {
            Some(id) => id.clone(),
            None => {
                let visit = Visit {
                    id: VisitId::random(),
                    conversation: facts.id.clone(),
                    queue: facts.queue.to_string(),
                    patient: facts.patient.clone(),
                    nurse: nurse.clone(),
                    state: VisitState::Proposed,
                    created_ms: now_ms,
                    joined: Vec::new(),
                    empty_since_ms: Some(now_ms),
                    alone_since_ms: None,
                    controls: Default::default(),
                    epoch: 0,
                    party: Default::default(),
                    handover: None,
                    assigned_at: None,
                };
                let id = visit.id.clone();
                self.by_conversation
                    .insert(visit.conversation.clone(), id.clone());
                self.by_id.insert(id.clone(), visit);
                id
            }
        };
        Ok(&self.by_id[&id])
    }

    /// The patient's answer. Declining ends the visit and keeps the chat.
    pub fn answer(
        &mut self,
        id: &VisitId,
        who: &SubjectId,
        accept: bool,
        now_ms: i64,
    ) -> Result<Visit, VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        match visit.side_of(who) {
            Some(Side::Patient) => {}
            Some(Side::Nurse) => return Err(VisitError::NotPatient),
            None => return Err(VisitError::NotParticipant),
        }
        if visit.state != VisitState::Proposed {
            return Err(VisitError::AlreadyAnswered);
        }
        if accept {
            visit.state = VisitState::Active;
            visit.empty_since_ms = Some(now_ms);
            Ok(visit.clone())
        } else {
            Ok(self.remove(id).expect("present"))
        }
    }

    /// May this subject join the visit's media room? Returns its seat: a guest's once admitted and past the
    /// recording question.
    pub fn may_join(&self, id: &VisitId, who: &SubjectId) -> Result<(&Visit, Seat), VisitError> {
        let visit = self.by_id.get(id).ok_or(VisitError::UnknownVisit)?;
        let seat = visit.seat_of(who).ok_or(VisitError::NotParticipant)?;
        if visit.state != VisitState::Active {
            return Err(VisitError::NotActive);
        }
        if let Seat::Guest(g) = &seat
            && !visit.party.may_join(g)?.answered
        {
            return Err(VisitError::NotActive);
        }
        Ok((visit, seat))
    }

    /// Whoever holds `seat` joined the media room (a guest's times are the party's; the patient's and nurse's
    /// drive the abandonment and reconnect clocks).
    pub fn seat_joined(&mut self, id: &VisitId, seat: &Seat, now_ms: i64) {
        match seat {
            Seat::Guest(g) => {
                if let Some(v) = self.by_id.get_mut(id) {
                    v.party.joined(g, now_ms);
                }
            }
            Seat::Patient => self.joined(id, Side::Patient),
            Seat::Nurse => self.joined(id, Side::Nurse),
        }
    }

    /// Whoever holds `seat` left the media room (see [`Self::seat_joined`]).
    pub fn seat_left(&mut self, id: &VisitId, seat: &Seat, now_ms: i64) {
        match seat {
            Seat::Guest(g) => {
                if let Some(v) = self.by_id.get_mut(id) {
                    v.party.left(g, now_ms);
                }
            }
            Seat::Patient => self.left(id, Side::Patient, now_ms),
            Seat::Nurse => self.left(id, Side::Nurse, now_ms),
        }
    }

    pub fn joined(&mut self, id: &VisitId, side: Side) {
        if let Some(v) = self.by_id.get_mut(id) {
            if !v.joined.contains(&side) {
                v.joined.push(side);
            }
            if side == Side::Nurse {
                v.handover = None;
            }
            v.empty_since_ms = None;
            if v.joined.len() == 2 {
                v.alone_since_ms = None;
            }
        }
    }

    pub fn left(&mut self, id: &VisitId, side: Side, now_ms: i64) {
        if let Some(v) = self.by_id.get_mut(id) {
            let was_there = v.joined.contains(&side);
            v.joined.retain(|s| *s != side);
            if v.joined.is_empty() {
                v.empty_since_ms = Some(now_ms);
                // Both gone: the empty-visit grace applies; a side coming back starts a fresh reconnect clock.
                v.alone_since_ms = None;
            } else if was_there {
                v.alone_since_ms.get_or_insert(now_ms);
            }
        }
    }

    /// A participant ends the video; the chat goes on.
    pub fn end(&mut self, id: &VisitId, who: &SubjectId) -> Result<(Visit, EndReason), VisitError> {
        let visit = self.by_id.get(id).ok_or(VisitError::UnknownVisit)?;
        let reason = match visit.side_of(who) {
            Some(Side::Patient) => EndReason::PatientEnded,
            Some(Side::Nurse) => EndReason::NurseEnded,
            // A guest leaves (`guest_leaves`); the visit goes on without them.
            None => return Err(VisitError::NotParticipant),
        };
        Ok((self.remove(id).expect("present"), reason))
    }

    /// The chat ended: its visit, if any, goes with it.
    pub fn end_conversation(&mut self, conversation: &ConversationId) -> Option<Visit> {
        let id = self.by_conversation.get(conversation)?.clone();
        self.remove(&id)
    }

    /// Visits to close: a request the patient has not answered within `prompt_ms` (no answer), an active
    /// visit nobody has been in for `grace_ms` (abandoned), and one a participant dropped out of and has not
    /// come back to within `reconnect_ms` while the other waited (connection lost: both go back to the chat).
    /// The clocks differ: finding a camera permission takes longer than a reload, and a network cut longer still.
    pub fn sweep(
        &mut self,
        now_ms: i64,
        grace_ms: i64,
        prompt_ms: i64,
        reconnect_ms: i64,
    ) -> Vec<(Visit, EndReason)> {
        let stale: Vec<(VisitId, EndReason)> = self
            .by_id
            .values()
            .filter_map(|v| {
                match v.state {
                    VisitState::Proposed => {
                        (now_ms - v.created_ms >= prompt_ms).then_some(EndReason::NoAnswer)
                    }
                    VisitState::Active if v.empty_since_ms.is_some_and(|t| now_ms - t >= grace_ms) => {
                        Some(EndReason::Abandoned)
                    }
                    // Handed on: the patient waits for the next nurse as long as they stay.
                    VisitState::Active => v
                        .alone_since_ms
                        .is_some_and(|t| v.handover.is_none() && now_ms - t >= reconnect_ms)
                        .then_some(EndReason::ConnectionLost),
                }
                .map(|reason| (v.id.clone(), reason))
            })
            .collect();
        stale
            .into_iter()
            .filter_map(|(id, reason)| self.remove(&id).map(|v| (v, reason)))
            .collect()
    }

    /// A visit taken over from another node; false when one of its conversation is already here.
    pub fn adopt(&mut self, visit: Visit) -> bool {
        if self.by_conversation.contains_key(&visit.conversation) || self.by_id.contains_key(&visit.id) {
            return false;
        }
        self.by_conversation
            .insert(visit.conversation.clone(), visit.id.clone());
        self.by_id.insert(visit.id.clone(), visit);
        true
    }

    /// A visit handed to another node: it leaves this one without ending.
    pub fn give_up(&mut self, id: &VisitId) -> Option<Visit> {
        self.remove(id)
    }

    pub fn get(&self, id: &VisitId) -> Option<&Visit> {
        self.by_id.get(id)
    }

    pub fn of_conversation(&self, conversation: &ConversationId) -> Option<&Visit> {
        self.by_conversation
            .get(conversation)
            .and_then(|id| self.by_id.get(id))
    }

    /// Live visits a subject takes part in (to tell a reconnecting socket about them).
    pub fn of_subject(&self, who: &SubjectId) -> Vec<Visit> {
        self.by_id
            .values()
            .filter(|v| {
                v.seat_of(who).is_some_and(|s| match &s {
                    Seat::Guest(g) => v
                        .party
                        .get(g)
                        .is_some_and(|g| g.state != guests::GuestState::Removed),
                    _ => true,
                })
            })
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Visit> {
        self.by_id.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn remove(&mut self, id: &VisitId) -> Option<Visit> {
        let v = self.by_id.remove(id)?;
        self.by_conversation.remove(&v.conversation);
        Some(v)
    }
}

#[cfg(test)]
mod tests;
