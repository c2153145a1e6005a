//! A place in a visit's media room: the patient's, the nurse's, or a guest's (a family member, or staff the
//! nurse asked in).

use super::Side;
use crate::ids::SubjectId;

/// Who holds a place in a visit's media room: its patient, its nurse, or a guest the nurse admitted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Seat {
    Patient,
    Nurse,
    Guest(SubjectId),
}

impl Seat {
    /// The patient's or nurse's side; `None` for a guest.
    pub fn side(&self) -> Option<Side> {
        match self {
            Seat::Patient => Some(Side::Patient),
            Seat::Nurse => Some(Side::Nurse),
            Seat::Guest(_) => None,
        }
    }
}

impl From<Side> for Seat {
    fn from(side: Side) -> Self {
        match side {
            Side::Patient => Seat::Patient,
            Side::Nurse => Seat::Nurse,
        }
    }
}

impl std::fmt::Debug for Seat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seat::Patient => f.write_str("Patient"),
            Seat::Nurse => f.write_str("Nurse"),
            // A guest's subject is random (it names nobody), but one word keeps log lines alike.
            Seat::Guest(_) => f.write_str("Guest"),
        }
    }
}
