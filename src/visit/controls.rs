//! What each participant sends during a visit: their microphone and camera as they set them (mute, camera off),
//! and whether the whole visit is audio only. The sans-IO half: the service tells both sides of every change and
//! marks audio-only intervals in the recording's timeline. A change must come from a participant of an active
//! visit; setting what is already set changes nothing (so a retried frame is not announced twice).

use super::{Side, Visit, VisitError, VisitId, VisitState, Visits};
use crate::ids::SubjectId;
use crate::protocol::{AudioOnlyReason, MediaDevices};

/// The media controls of one visit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controls {
    patient: MediaDevices,
    nurse: MediaDevices,
    /// Set while the visit is audio only: who switched it and why.
    audio_only: Option<(Side, AudioOnlyReason)>,
}

impl Controls {
    pub fn devices(&self, side: Side) -> MediaDevices {
        match side {
            Side::Patient => self.patient,
            Side::Nurse => self.nurse,
        }
    }

    pub fn audio_only(&self) -> Option<(Side, AudioOnlyReason)> {
        self.audio_only
    }

    /// Returns whether anything changed.
    fn set_devices(&mut self, side: Side, devices: MediaDevices) -> bool {
        let slot = match side {
            Side::Patient => &mut self.patient,
            Side::Nurse => &mut self.nurse,
        };
        std::mem::replace(slot, devices) != devices
    }

    /// Returns whether the mode changed (the reason of a visit already audio only stays the first one).
    fn set_audio_only(&mut self, side: Side, on: bool, reason: AudioOnlyReason) -> bool {
        match (on, self.audio_only) {
            (true, None) => {
                self.audio_only = Some((side, reason));
                true
            }
            (false, Some(_)) => {
                self.audio_only = None;
                true
            }
            _ => false,
        }
    }
}

/// A change of a visit's controls: the visit after it and the side that made it.
pub struct Changed {
    pub visit: Visit,
    pub side: Side,
}

impl Visits {
    fn controls_of(&mut self, id: &VisitId, who: &SubjectId) -> Result<(&mut Visit, Side), VisitError> {
        let visit = self.by_id.get_mut(id).ok_or(VisitError::UnknownVisit)?;
        let side = visit.side_of(who).ok_or(VisitError::NotParticipant)?;
        if visit.state != VisitState::Active {
            return Err(VisitError::NotActive);
        }
        Ok((visit, side))
    }

    /// A participant mutes or unmutes, turns their camera off or on. `None` when nothing changed.
    pub fn set_devices(
        &mut self,
        id: &VisitId,
        who: &SubjectId,
        devices: MediaDevices,
    ) -> Result<Option<Changed>, VisitError> {
        let (visit, side) = self.controls_of(id, who)?;
        Ok(visit.controls.set_devices(side, devices).then(|| Changed {
            visit: visit.clone(),
            side,
        }))
    }

    /// A participant switches the visit to audio only or back to video. `None` when nothing changed.
    pub fn set_audio_only(
        &mut self,
        id: &VisitId,
        who: &SubjectId,
        on: bool,
        reason: AudioOnlyReason,
    ) -> Result<Option<Changed>, VisitError> {
        let (visit, side) = self.controls_of(id, who)?;
        Ok(visit.controls.set_audio_only(side, on, reason).then(|| Changed {
            visit: visit.clone(),
            side,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConversationId;
    use crate::visit::ConversationFacts;

    fn active() -> (Visits, VisitId, SubjectId, SubjectId) {
        let (p, n) = (SubjectId::new("pat"), SubjectId::new("nurse"));
        let mut v = Visits::default();
        let c = ConversationId::new("c1");
        let facts = ConversationFacts {
            id: &c,
            queue: "triage",
            patient: &p,
            assigned_nurse: Some(&n),
            nurse_in_wrap_up: false,
        };
        let id = v.elevate(&facts, &n, 0).unwrap().id.clone();
        (v, id, p, n)
    }

    #[test]
    fn mute_and_camera_off_are_per_side_and_announced_once() {
        let (mut v, id, p, n) = active();
        let muted = MediaDevices {
            microphone: false,
            camera: true,
        };
        assert_eq!(
            v.set_devices(&id, &p, muted).err(),
            Some(VisitError::NotActive),
            "no controls before the patient accepts"
        );
        v.answer(&id, &p, true, 1).unwrap();
        let changed = v.set_devices(&id, &p, muted).unwrap().expect("changed");
        assert_eq!(changed.side, Side::Patient);
        assert_eq!(changed.visit.controls.devices(Side::Patient), muted);
        assert_eq!(
            changed.visit.controls.devices(Side::Nurse),
            MediaDevices::default()
        );
        assert!(
            v.set_devices(&id, &p, muted).unwrap().is_none(),
            "a retry changes nothing"
        );
        let stranger = SubjectId::new("other");
        assert_eq!(
            v.set_devices(&id, &stranger, muted).err(),
            Some(VisitError::NotParticipant)
        );
        assert!(v.set_devices(&id, &n, muted).unwrap().is_some());
    }

    #[test]
    fn either_side_switches_to_audio_only_and_back() {
        let (mut v, id, p, n) = active();
        v.answer(&id, &p, true, 1).unwrap();
        let c = v
            .set_audio_only(&id, &p, true, AudioOnlyReason::CameraUnavailable)
            .unwrap()
            .expect("changed");
        assert_eq!(
            c.visit.controls.audio_only(),
            Some((Side::Patient, AudioOnlyReason::CameraUnavailable))
        );
        assert!(
            v.set_audio_only(&id, &n, true, AudioOnlyReason::Requested)
                .unwrap()
                .is_none(),
            "already audio only: the first reason stays"
        );
        let back = v
            .set_audio_only(&id, &n, false, AudioOnlyReason::Requested)
            .unwrap()
            .expect("changed");
        assert_eq!((back.side, back.visit.controls.audio_only()), (Side::Nurse, None));
    }
}
