//! Staff asked into a live visit (see [`crate::visit::guests`]): the nurse lists the interpreters and physicians
//! signed in now and asks one in by name; they hear it (`consult_asked`) on their page wherever it is connected,
//! and accept or decline there. Once they accept they are in the visit's party like an admitted guest: the
//! recording question, the media room, their tile captioned with their role, the manifest. A decline is told to
//! the nurse.

use super::{VideoError, VideoService};
use crate::clock::now_ms;
use crate::ids::SubjectId;
use crate::pii::Pii;
use crate::policy::Authorized;
use crate::protocol::{Consultant, ServerFrame};
use crate::role::Role;
use crate::store::StaffSignedIn;
use crate::visit::guests::GuestState;
use crate::visit::{VisitError, VisitId};

/// A signed-in staff member's consulting role (interpreter first), if they have one.
fn consulting_role(s: &StaffSignedIn) -> Option<Role> {
    let roles: Vec<Role> = s
        .roles
        .split_whitespace()
        .filter_map(|r| r.parse().ok())
        .collect();
    [Role::Interpreter, Role::Physician]
        .into_iter()
        .find(|r| roles.contains(r))
}

impl VideoService {
    /// The staff signed in now as interpreters or physicians, for the visit's nurse (`visit.consult`); those
    /// already in the visit or asked are left out.
    pub async fn consultants(&self, proof: &Authorized<VisitId>) -> Result<ServerFrame, VideoError> {
        proof.require(&["visit.consult"])?;
        let (id, nurse) = (proof.resource(), proof.subject());
        let v = self
            .live()
            .visits
            .get(id)
            .cloned()
            .ok_or(VisitError::UnknownVisit)?;
        if &v.nurse != nurse {
            return Err(VisitError::NotAssignedNurse.into());
        }
        let signed_in = self.recording.db.signed_in_staff(now_ms()).await?;
        let staff = signed_in
            .iter()
            .filter(|s| s.subject != nurse.as_str())
            .filter(|s| {
                v.party
                    .get(&SubjectId::new(&s.subject))
                    .is_none_or(|g| g.state == GuestState::Removed)
            })
            .filter_map(|s| {
                Some(Consultant {
                    staff_id: SubjectId::new(&s.subject),
                    name: s.display_name.clone(),
                    role: consulting_role(s)?,
                    skills: s.skills.split_whitespace().map(str::to_string).collect(),
                })
            })
            .collect();
        Ok(ServerFrame::ConsultStaff {
            visit_id: id.to_string(),
            staff,
        })
    }

    /// The visit's nurse asks a staff interpreter or physician in (`visit.consult`): one signed in now with
    /// that role. They are told; the others see them asked.
    pub async fn ask_staff(&self, proof: &Authorized<VisitId>, staff_id: &str) -> Result<(), VideoError> {
        proof.require(&["visit.consult"])?;
        let (id, nurse) = (proof.resource(), proof.subject());
        let now = now_ms();
        let signed_in = self.recording.db.signed_in_staff(now).await?;
        let (staff, role) = signed_in
            .iter()
            .find(|s| s.subject == staff_id)
            .and_then(|s| Some((s, consulting_role(s)?)))
            .ok_or(VideoError::NotConsultant)?;
        let asked_by = self.recording.db.staff_display_name(nurse.as_str()).await?;
        // A staff member without a display name is named by their role (their id means nothing to a patient).
        let name = Pii::new(staff.display_name.clone().unwrap_or_else(|| role.to_string()));
        let subject = SubjectId::new(&staff.subject);
        let v = self
            .live()
            .visits
            .ask_staff(id, nurse, (subject.clone(), name, role), asked_by)?;
        self.tell_party(&v);
        if let Some(frame) = self.describe_for_guest(&v, &subject) {
            self.messaging.send_to(&subject, frame);
        }
        Ok(())
    }

    /// A staff member asked in accepts (`visit.consult_answer`): asked the camera and recording question, as
    /// an admitted guest is; or declines, and the nurse is told.
    pub async fn staff_answer(&self, proof: &Authorized<VisitId>, accept: bool) -> Result<(), VideoError> {
        proof.require(&["visit.consult_answer"])?;
        let (id, who) = (proof.resource(), proof.subject());
        let v = self.live().visits.staff_answer(id, who, accept)?;
        self.tell_party(&v);
        if accept {
            if let Some(frame) = self.describe_for_guest(&v, who) {
                self.messaging.send_to(who, frame);
            }
        } else if let Some(g) = v.party.get(who).filter(|_| !v.awaits_nurse()) {
            self.messaging.send_to(
                &v.nurse,
                ServerFrame::ConsultDeclined {
                    visit_id: v.id.to_string(),
                    name: g.name.clone(),
                },
            );
        }
        Ok(())
    }
}
