//! Video visits: the rules for elevating a chat to video, without sockets or media. A visit belongs to one
//! assigned conversation; only its nurse may propose it (and not during wrap-up), only its patient may accept
//! or decline, and only those two may join its media room. Declining keeps the chat; either side can end the
//! video and return to chat. A visit whose participants have both gone is closed after a grace period so a
//! reload rejoins the same visit. Time is injected; the media engine and the socket layer act on the results.

pub mod classification;
pub mod controls;
pub mod placement;
pub mod service;

use std::collections::HashMap;

/// Which side of a visit, and why one ended: wire values, defined with the protocol.
pub use crate::protocol::{EndReason, Side};

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
}

impl Visit {
    pub fn side_of(&self, subject: &SubjectId) -> Option<Side> {
        if subject == &self.nurse {
            Some(Side::Nurse)
        } else if subject == &self.patient {
            Some(Side::Patient)
        } else {
            None
        }
    }
    pub fn subject(&self, side: Side) -> &SubjectId {
        match side {
            Side::Patient => &self.patient,
            Side::Nurse => &self.nurse,
        }
    }
    pub fn joined(&self) -> &[Side] {
        &self.joined
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

    /// May this subject join the visit's media room? Returns its side.
    pub fn may_join(&self, id: &VisitId, who: &SubjectId) -> Result<(&Visit, Side), VisitError> {
        let visit = self.by_id.get(id).ok_or(VisitError::UnknownVisit)?;
        let side = visit.side_of(who).ok_or(VisitError::NotParticipant)?;
        if visit.state != VisitState::Active {
            return Err(VisitError::NotActive);
        }
        Ok((visit, side))
    }

    pub fn joined(&mut self, id: &VisitId, side: Side) {
        if let Some(v) = self.by_id.get_mut(id) {
            if !v.joined.contains(&side) {
                v.joined.push(side);
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
                    VisitState::Active => v
                        .alone_since_ms
                        .is_some_and(|t| now_ms - t >= reconnect_ms)
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
            .filter(|v| v.side_of(who).is_some())
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
mod tests {
    use super::*;

    fn ids() -> (SubjectId, SubjectId, SubjectId) {
        (
            SubjectId::new("pat"),
            SubjectId::new("nurse"),
            SubjectId::new("other-nurse"),
        )
    }

    static C1: std::sync::LazyLock<ConversationId> = std::sync::LazyLock::new(|| ConversationId::new("c1"));

    fn facts<'a>(patient: &'a SubjectId, nurse: Option<&'a SubjectId>, wrap: bool) -> ConversationFacts<'a> {
        ConversationFacts {
            id: &C1,
            queue: "triage",
            patient,
            assigned_nurse: nurse,
            nurse_in_wrap_up: wrap,
        }
    }

    #[test]
    fn only_the_assigned_nurse_outside_wrap_up_elevates() {
        let (p, n, o) = ids();
        let mut v = Visits::default();
        assert_eq!(
            v.elevate(&facts(&p, Some(&n), false), &o, 0).unwrap_err(),
            VisitError::NotAssignedNurse
        );
        assert_eq!(
            v.elevate(&facts(&p, None, false), &n, 0).unwrap_err(),
            VisitError::NotAssignedNurse
        );
        assert_eq!(
            v.elevate(&facts(&p, Some(&n), true), &n, 0).unwrap_err(),
            VisitError::WrapUp
        );
        let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
        // Idempotent.
        assert_eq!(v.elevate(&facts(&p, Some(&n), false), &n, 5).unwrap().id, id);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn nobody_joins_before_the_patient_accepts() {
        let (p, n, o) = ids();
        let mut v = Visits::default();
        let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
        assert_eq!(v.may_join(&id, &n).unwrap_err(), VisitError::NotActive);
        assert_eq!(v.answer(&id, &n, true, 1).unwrap_err(), VisitError::NotPatient);
        assert_eq!(
            v.answer(&id, &o, true, 1).unwrap_err(),
            VisitError::NotParticipant
        );
        v.answer(&id, &p, true, 1).unwrap();
        assert_eq!(
            v.answer(&id, &p, true, 1).unwrap_err(),
            VisitError::AlreadyAnswered
        );
        assert_eq!(v.may_join(&id, &n).unwrap().1, Side::Nurse);
        assert_eq!(v.may_join(&id, &p).unwrap().1, Side::Patient);
        assert_eq!(v.may_join(&id, &o).unwrap_err(), VisitError::NotParticipant);
        let forged = VisitId::random();
        assert_eq!(v.may_join(&forged, &p).unwrap_err(), VisitError::UnknownVisit);
    }

    #[test]
    fn declining_ends_the_visit_and_a_new_request_is_possible() {
        let (p, n, _) = ids();
        let mut v = Visits::default();
        let first = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
        v.answer(&first, &p, false, 1).unwrap();
        assert!(v.is_empty());
        let second = v.elevate(&facts(&p, Some(&n), false), &n, 2).unwrap().id.clone();
        assert_ne!(first, second);
    }

    #[test]
    fn an_unanswered_request_waits_for_the_prompt_not_the_empty_grace() {
        let (p, n, _) = ids();
        let mut v = Visits::default();
        let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
        // Past the empty-visit grace (30 s), still within the prompt (120 s): a patient looking for the
        // camera permission keeps the question.
        assert!(v.sweep(60_000, 30_000, 120_000, 90_000).is_empty());
        let swept = v.sweep(120_000, 30_000, 120_000, 90_000);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].1, EndReason::NoAnswer);
        assert!(v.get(&id).is_none());
    }

    #[test]
    fn a_participant_who_does_not_come_back_within_the_limit_ends_the_visit_back_to_chat() {
        let (p, n, _) = ids();
        let mut v = Visits::default();
        let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
        v.answer(&id, &p, true, 0).unwrap();
        // Only the nurse in so far: the patient is still joining, not gone.
        v.joined(&id, Side::Nurse);
        assert!(v.sweep(200_000, 30_000, 120_000, 90_000).is_empty());
        v.joined(&id, Side::Patient);
        // A cut shorter than the limit: back in the same visit.
        v.left(&id, Side::Patient, 300_000);
        assert!(v.sweep(380_000, 30_000, 120_000, 90_000).is_empty());
        v.joined(&id, Side::Patient);
        assert!(
            v.sweep(500_000, 30_000, 120_000, 90_000).is_empty(),
            "the clock starts again"
        );
        // One that outlasts it ends the visit; the nurse is not left waiting in it.
        v.left(&id, Side::Patient, 600_000);
        let swept = v.sweep(690_000, 30_000, 120_000, 90_000);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].1, EndReason::ConnectionLost);
    }

    #[test]
    fn either_side_ends_and_empty_visits_are_swept_after_the_grace() {
        let (p, n, o) = ids();
        let mut v = Visits::default();
        let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
        v.answer(&id, &p, true, 0).unwrap();
        v.joined(&id, Side::Patient);
        v.joined(&id, Side::Nurse);
        assert!(
            v.sweep(100_000, 30_000, 120_000, 300_000).is_empty(),
            "occupied visits stay"
        );
        v.left(&id, Side::Patient, 100_000);
        assert!(
            v.sweep(200_000, 30_000, 120_000, 300_000).is_empty(),
            "the nurse is still there"
        );
        v.left(&id, Side::Nurse, 200_000);
        // A reload within the grace rejoins the same visit.
        assert!(v.sweep(210_000, 30_000, 120_000, 300_000).is_empty());
        v.joined(&id, Side::Patient);
        v.left(&id, Side::Patient, 220_000);
        let swept = v.sweep(250_000, 30_000, 120_000, 300_000);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].1, EndReason::Abandoned);
        assert!(v.get(&id).is_none());

        let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
        assert_eq!(v.end(&id, &o).unwrap_err(), VisitError::NotParticipant);
        assert_eq!(v.end(&id, &p).unwrap().1, EndReason::PatientEnded);
        assert!(v.of_conversation(&C1).is_none());
    }

    #[test]
    fn visit_ids_are_opaque_and_parsed_strictly() {
        let id = VisitId::random();
        assert_eq!(VisitId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(VisitId::parse("v../../etc"), None);
        assert_eq!(VisitId::parse(&format!("{}0", id.as_str())), None);
    }
}
