//! The visit book's side of guests and staff asked in (see [`super::guests`]): each step finds the visit,
//! checks who may take it (the patient invites, the nurse admits, asks and removes) and hands the visit's party
//! the rest.

use super::guests::{self, GuestError};
use super::{Side, Visit, VisitError, VisitId, VisitState, Visits};
use crate::ids::SubjectId;
use crate::pii::Pii;
use crate::role::Role;

impl Visits {
    /// The patient of an active visit invites a guest: the link's token and when it expires.
    pub fn invite(
        &mut self,
        id: &VisitId,
        who: &SubjectId,
        now_ms: i64,
    ) -> Result<(String, i64), VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        if visit.side_of(who) != Some(Side::Patient) {
            return Err(VisitError::NotPatient);
        }
        if visit.state != VisitState::Active {
            return Err(VisitError::NotActive);
        }
        Ok(visit.party.invite(now_ms))
    }

    /// Someone opens an invitation link (its token's hash): they wait in that visit's lobby as `subject`.
    pub fn redeem(
        &mut self,
        hash: &str,
        name: &str,
        subject: SubjectId,
        now_ms: i64,
    ) -> Result<Visit, VisitError> {
        let visit = self
            .by_id
            .values_mut()
            .find(|v| v.party.holds(hash, now_ms))
            .ok_or(guests::GuestError::LinkInvalid)?;
        visit.party.redeem(hash, name, subject, now_ms)?;
        Ok(visit.clone())
    }

    /// The nurse of the visit acts on a guest: admits or turns away one waiting (`Some(admit)`), or removes one
    /// (`None`).
    pub fn admit(
        &mut self,
        id: &VisitId,
        nurse: &SubjectId,
        guest: &SubjectId,
        admit: Option<bool>,
        now_ms: i64,
    ) -> Result<Visit, VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        if visit.side_of(nurse) != Some(Side::Nurse) {
            return Err(VisitError::NotAssignedNurse);
        }
        match admit {
            Some(admit) => visit.party.admit(guest, admit)?,
            None => visit.party.remove(guest, now_ms)?,
        };
        Ok(visit.clone())
    }

    /// An admitted guest answers the camera and recording question; declining is leaving.
    pub fn guest_answer(
        &mut self,
        id: &VisitId,
        guest: &SubjectId,
        accept: bool,
        consent: Option<bool>,
        now_ms: i64,
    ) -> Result<Visit, VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        if accept {
            visit.party.consent(guest, consent)?;
        } else {
            visit.party.may_join(guest)?;
            visit.party.remove(guest, now_ms)?;
        }
        Ok(visit.clone())
    }

    /// A guest leaves the visit for good (ended their part): like a removal, and they keep no place.
    pub fn guest_leaves(
        &mut self,
        id: &VisitId,
        guest: &SubjectId,
        now_ms: i64,
    ) -> Result<Visit, VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        visit.party.remove(guest, now_ms)?;
        Ok(visit.clone())
    }

    /// The tracks a guest about to join is recorded on (their slot of `max`), unless they declined.
    pub fn take_slot(&mut self, id: &VisitId, guest: &SubjectId, max: usize) -> Option<usize> {
        let v = self.by_id.get_mut(id)?;
        if v.party.get(guest)?.consent == Some(false) {
            return None;
        }
        v.party.take_slot(guest, max)
    }

    /// The nurse of an active visit asks a staff interpreter or physician in (see [`guests::Party::ask`]).
    pub fn ask_staff(
        &mut self,
        id: &VisitId,
        nurse: &SubjectId,
        (staff, name, role): (SubjectId, Pii<String>, Role),
        asked_by: Option<String>,
    ) -> Result<Visit, VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        if visit.side_of(nurse) != Some(Side::Nurse) {
            return Err(VisitError::NotAssignedNurse);
        }
        if visit.state != VisitState::Active {
            return Err(VisitError::NotActive);
        }
        if visit.side_of(&staff).is_some() {
            return Err(GuestError::AlreadyInVisit.into());
        }
        visit.party.ask(staff, name, role, asked_by)?;
        Ok(visit.clone())
    }

    /// A staff member asked in accepts or declines.
    pub fn staff_answer(
        &mut self,
        id: &VisitId,
        staff: &SubjectId,
        accept: bool,
    ) -> Result<Visit, VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        visit.party.answer_ask(staff, accept)?;
        Ok(visit.clone())
    }
}
