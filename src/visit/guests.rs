//! Family members and caregivers in a visit, without sockets or storage. The patient invites one with a link:
//! a random token only its holder knows (the broker keeps its SHA-256), bound to one visit, usable once and
//! only until it expires or the visit ends. Opening it puts the guest, under the name they typed, in the
//! visit's lobby; the nurse admits them (then they may join the media room, after answering the recording
//! question like anyone else) or turns them away, and may remove them later. Staff interpreters and
//! physicians take the same places without a link or a lobby: the nurse asks one in by name, and they are in
//! once they accept. A visit holds at most [`MAX_PARTICIPANTS`] people. Time is injected.

use sha2::{Digest, Sha256};

use crate::ids::{SubjectId, random_hex};
use crate::pii::Pii;
use crate::role::Role;

/// Patient, nurse and up to four guests or staff: what two cores' worth of decoders in each browser can show.
pub const MAX_PARTICIPANTS: usize = 6;
/// How long an invitation link stays usable when nobody opens it.
pub const LINK_LIFETIME_MS: i64 = 15 * 60 * 1000;
/// The longest display name a guest may give (characters).
pub const MAX_NAME_CHARS: usize = 60;

/// A guest's subject: `guest-` and 16 random hex characters. Opaque, printable (it names no person).
pub fn new_guest_subject() -> SubjectId {
    SubjectId::new(format!("guest-{}", random_hex(8)))
}

/// The stored form of a link's token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Where a guest stands (lobby, admitted, removed): a wire value, defined with the protocol.
pub use crate::protocol::GuestState;

#[derive(Clone, Debug)]
pub struct Guest {
    pub subject: SubjectId,
    /// What they typed (a staff member: their display name): shown to the others in the visit and named in
    /// the recording's manifest.
    pub name: Pii<String>,
    /// `Guest` (a family member or caregiver with a link), `Interpreter` or `Physician` (asked in by the nurse).
    pub role: Role,
    /// The nurse's display name, for a staff member she asked in.
    pub asked_by: Option<String>,
    /// Came with a link (their session is for this visit alone) rather than asked in as signed-in staff.
    pub by_link: bool,
    pub state: GuestState,
    /// Whether they answered the camera and recording question (they may join then).
    pub answered: bool,
    /// Their answer to the recording consent question, when the visit's policy asks it.
    pub consent: Option<bool>,
    /// Their tracks in the visit's recording (`recorder::Source::guest`), given at their first join while
    /// recorded, in the order guests first joined.
    pub slot: Option<usize>,
    /// When they first joined the media room and last left it.
    pub joined_ms: Option<i64>,
    pub left_ms: Option<i64>,
}

/// An invitation not yet used.
#[derive(Clone, Debug)]
pub struct Invitation {
    pub token_hash: String,
    pub expires_ms: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuestError {
    /// Unknown, already used, expired, or its visit ended: the guest is told one thing, and so is the log.
    #[error("this invitation link is not valid any more; ask for a new one")]
    LinkInvalid,
    #[error("type the name the others will see (1 to {MAX_NAME_CHARS} characters)")]
    BadName,
    #[error("the visit is full")]
    Full,
    #[error("no such guest in this visit")]
    UnknownGuest,
    #[error("the guest is not waiting in the lobby")]
    NotInLobby,
    #[error("the guest has not been admitted")]
    NotAdmitted,
    #[error("the question was already answered")]
    AlreadyAnswered,
    #[error("they are already in this visit or asked to join it")]
    AlreadyInVisit,
    #[error("nobody asked you into this visit, or the request was withdrawn")]
    NotAsked,
}

impl GuestError {
    /// The code a client gets for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::LinkInvalid => "link_invalid",
            Self::BadName => "invalid_name",
            Self::Full => "visit_full",
            Self::UnknownGuest => "unknown_guest",
            Self::NotInLobby => "not_in_lobby",
            Self::NotAdmitted => "not_admitted",
            Self::AlreadyAnswered => "already_answered",
            Self::AlreadyInVisit => "already_in_visit",
            Self::NotAsked => "not_asked",
        }
    }
}

/// Invisible characters that reorder or hide text (bidi controls, zero-width characters): a name holding them
/// could pass for another on screen.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
}

/// A display name as shown: trimmed, control and invisible formatting characters refused, within
/// [`MAX_NAME_CHARS`].
pub fn clean_name(raw: &str) -> Result<Pii<String>, GuestError> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(|c| c.is_control() || is_format(c)) {
        return Err(GuestError::BadName);
    }
    Ok(Pii::new(name.to_string()))
}

/// The guests of one visit and its open invitations.
#[derive(Clone, Debug, Default)]
pub struct Party {
    pub guests: Vec<Guest>,
    invitations: Vec<Invitation>,
}

impl Party {
    /// A new invitation: returns the token to put in the link (shown once, to the patient).
    pub fn invite(&mut self, now_ms: i64) -> (String, i64) {
        self.invitations.retain(|i| i.expires_ms > now_ms);
        let token = random_hex(24);
        let expires_ms = now_ms + LINK_LIFETIME_MS;
        self.invitations.push(Invitation {
            token_hash: token_hash(&token),
            expires_ms,
        });
        (token, expires_ms)
    }

    /// Whether this party holds an open invitation with this token hash.
    pub fn holds(&self, hash: &str, now_ms: i64) -> bool {
        self.invitations
            .iter()
            .any(|i| i.token_hash == hash && i.expires_ms > now_ms)
    }

    /// Present in the room now or waiting to be: the patient and nurse plus guests not removed.
    fn people(&self) -> usize {
        2 + self.present().count()
    }

    /// Opens a link with a usable name while there is room: the invitation is used up and the guest waits in
    /// the lobby. A refused name or a full visit leaves the link as it was.
    pub fn redeem(
        &mut self,
        hash: &str,
        name: &str,
        subject: SubjectId,
        now_ms: i64,
    ) -> Result<&Guest, GuestError> {
        let at = self
            .invitations
            .iter()
            .position(|i| i.token_hash == hash && i.expires_ms > now_ms)
            .ok_or(GuestError::LinkInvalid)?;
        let name = clean_name(name)?;
        if self.people() >= MAX_PARTICIPANTS {
            return Err(GuestError::Full);
        }
        self.invitations.remove(at);
        self.guests.push(Guest {
            subject,
            name,
            role: Role::Guest,
            asked_by: None,
            by_link: true,
            state: GuestState::Lobby,
            answered: false,
            consent: None,
            slot: None,
            joined_ms: None,
            left_ms: None,
        });
        Ok(self.guests.last().expect("just pushed"))
    }

    /// The nurse (`asked_by`, her display name) asks a staff interpreter or physician in; they wait as `Asked`
    /// until they answer. One removed earlier (or who declined) may be asked again, keeping their recording
    /// tracks and their answer to the recording question.
    pub fn ask(
        &mut self,
        subject: SubjectId,
        name: Pii<String>,
        role: Role,
        asked_by: Option<String>,
    ) -> Result<&Guest, GuestError> {
        if self.get(&subject).is_some_and(|g| g.state != GuestState::Removed) {
            return Err(GuestError::AlreadyInVisit);
        }
        if self.people() >= MAX_PARTICIPANTS {
            return Err(GuestError::Full);
        }
        let at = match self.guests.iter().position(|g| g.subject == subject) {
            Some(at) => {
                let g = &mut self.guests[at];
                (g.name, g.role, g.asked_by, g.state) = (name, role, asked_by, GuestState::Asked);
                at
            }
            None => {
                self.guests.push(Guest {
                    subject,
                    name,
                    role,
                    asked_by,
                    by_link: false,
                    state: GuestState::Asked,
                    answered: false,
                    consent: None,
                    slot: None,
                    joined_ms: None,
                    left_ms: None,
                });
                self.guests.len() - 1
            }
        };
        Ok(&self.guests[at])
    }

    /// A staff member asked in accepts (they are admitted: they may answer the recording question and join)
    /// or declines (their place goes).
    pub fn answer_ask(&mut self, subject: &SubjectId, accept: bool) -> Result<&Guest, GuestError> {
        let guest = self.get_mut(subject).map_err(|_| GuestError::NotAsked)?;
        if guest.state != GuestState::Asked {
            return Err(GuestError::NotAsked);
        }
        guest.state = if accept {
            GuestState::Admitted
        } else {
            GuestState::Removed
        };
        Ok(guest)
    }

    pub fn get(&self, subject: &SubjectId) -> Option<&Guest> {
        self.guests.iter().find(|g| &g.subject == subject)
    }

    fn get_mut(&mut self, subject: &SubjectId) -> Result<&mut Guest, GuestError> {
        self.guests
            .iter_mut()
            .find(|g| &g.subject == subject)
            .ok_or(GuestError::UnknownGuest)
    }

    /// The nurse lets a waiting guest in (`true`) or turns them away.
    pub fn admit(&mut self, subject: &SubjectId, admit: bool) -> Result<&Guest, GuestError> {
        let guest = self.get_mut(subject)?;
        if guest.state != GuestState::Lobby {
            return Err(GuestError::NotInLobby);
        }
        if admit {
            guest.state = GuestState::Admitted;
        } else {
            guest.state = GuestState::Removed;
        }
        Ok(guest)
    }

    /// The nurse removes a guest, waiting or admitted; they cannot come back with the same link.
    pub fn remove(&mut self, subject: &SubjectId, now_ms: i64) -> Result<&Guest, GuestError> {
        let guest = self.get_mut(subject)?;
        if guest.state == GuestState::Removed {
            return Err(GuestError::UnknownGuest);
        }
        guest.state = GuestState::Removed;
        if guest.joined_ms.is_some() {
            guest.left_ms = Some(now_ms);
        }
        Ok(guest)
    }

    /// An admitted guest answers the camera question, and the recording question when there is one.
    pub fn consent(&mut self, subject: &SubjectId, consent: Option<bool>) -> Result<&Guest, GuestError> {
        let guest = self.get_mut(subject)?;
        if guest.state != GuestState::Admitted {
            return Err(GuestError::NotAdmitted);
        }
        // Once: the recording started from the first answer (a second could not take them out of it).
        if guest.answered {
            return Err(GuestError::AlreadyAnswered);
        }
        guest.answered = true;
        guest.consent = consent;
        Ok(guest)
    }

    /// The recording slot of `subject`: theirs, or the next free one (`None` past `max`).
    pub fn take_slot(&mut self, subject: &SubjectId, max: usize) -> Option<usize> {
        let next = self
            .guests
            .iter()
            .filter_map(|g| g.slot)
            .max()
            .map_or(0, |s| s + 1);
        let guest = self.get_mut(subject).ok()?;
        if guest.slot.is_none() && next < max {
            guest.slot = Some(next);
        }
        guest.slot
    }

    /// May this guest join the media room now?
    pub fn may_join(&self, subject: &SubjectId) -> Result<&Guest, GuestError> {
        let guest = self.get(subject).ok_or(GuestError::UnknownGuest)?;
        match guest.state {
            GuestState::Admitted => Ok(guest),
            _ => Err(GuestError::NotAdmitted),
        }
    }

    pub fn joined(&mut self, subject: &SubjectId, now_ms: i64) {
        if let Ok(g) = self.get_mut(subject) {
            g.joined_ms.get_or_insert(now_ms);
            g.left_ms = None;
        }
    }

    pub fn left(&mut self, subject: &SubjectId, now_ms: i64) {
        if let Ok(g) = self.get_mut(subject)
            && g.joined_ms.is_some()
        {
            g.left_ms = Some(now_ms);
        }
    }

    /// Admitted guests (who may be in the media room).
    pub fn admitted(&self) -> impl Iterator<Item = &Guest> {
        self.guests.iter().filter(|g| g.state == GuestState::Admitted)
    }

    /// Guests not removed: to tell about the visit's changes.
    pub fn present(&self) -> impl Iterator<Item = &Guest> {
        self.guests.iter().filter(|g| g.state != GuestState::Removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once_before_it_expires_and_only_its_own_token_counts() {
        let mut party = Party::default();
        let (token, expires) = party.invite(1_000);
        assert_eq!(expires, 1_000 + LINK_LIFETIME_MS);
        assert!(party.holds(&token_hash(&token), 2_000));
        assert!(!party.holds(&token_hash("forged"), 2_000));
        let g = party
            .redeem(&token_hash(&token), "  Ana  ", new_guest_subject(), 2_000)
            .unwrap();
        assert_eq!(g.name.expose(), "Ana");
        assert_eq!(g.state, GuestState::Lobby);
        // Used: a second opening (the link forwarded on) is refused.
        assert_eq!(
            party
                .redeem(&token_hash(&token), "Ana", new_guest_subject(), 3_000)
                .unwrap_err(),
            GuestError::LinkInvalid
        );
        let (late, _) = party.invite(10_000);
        assert_eq!(
            party
                .redeem(
                    &token_hash(&late),
                    "Bo",
                    new_guest_subject(),
                    10_000 + LINK_LIFETIME_MS
                )
                .unwrap_err(),
            GuestError::LinkInvalid,
            "expired"
        );
    }

    #[test]
    fn a_bad_name_leaves_the_link_usable() {
        let mut party = Party::default();
        let (token, _) = party.invite(0);
        let hash = token_hash(&token);
        for bad in [
            "",
            "   ",
            "a\u{7}b",
            "Nur\u{202E}esrun",
            "Nu\u{200B}rse",
            &"x".repeat(MAX_NAME_CHARS + 1),
        ] {
            assert_eq!(
                party.redeem(&hash, bad, new_guest_subject(), 1).unwrap_err(),
                GuestError::BadName
            );
        }
        assert!(party.redeem(&hash, "María José", new_guest_subject(), 1).is_ok());
    }

    #[test]
    fn the_nurse_admits_or_turns_away_from_the_lobby_and_only_admitted_guests_join() {
        let mut party = Party::default();
        let (a, b) = (new_guest_subject(), new_guest_subject());
        for s in [&a, &b] {
            let (t, _) = party.invite(0);
            party.redeem(&token_hash(&t), "Guest", s.clone(), 1).unwrap();
        }
        assert_eq!(party.may_join(&a).unwrap_err(), GuestError::NotAdmitted);
        assert_eq!(
            party.consent(&a, Some(true)).unwrap_err(),
            GuestError::NotAdmitted
        );
        party.admit(&a, true).unwrap();
        party.admit(&b, false).unwrap();
        assert_eq!(party.admit(&a, true).unwrap_err(), GuestError::NotInLobby);
        assert!(party.may_join(&a).is_ok());
        assert_eq!(party.may_join(&b).unwrap_err(), GuestError::NotAdmitted);
        assert_eq!(party.consent(&a, Some(false)).unwrap().consent, Some(false));
        assert_eq!(
            party.consent(&a, Some(true)).unwrap_err(),
            GuestError::AlreadyAnswered,
            "once"
        );
        party.joined(&a, 10);
        party.remove(&a, 20).unwrap();
        let g = party.get(&a).unwrap();
        assert_eq!(
            (g.state, g.joined_ms, g.left_ms),
            (GuestState::Removed, Some(10), Some(20))
        );
        assert_eq!(party.may_join(&a).unwrap_err(), GuestError::NotAdmitted);
        assert_eq!(party.remove(&a, 21).unwrap_err(), GuestError::UnknownGuest);
        assert_eq!(
            party.admit(&new_guest_subject(), true).unwrap_err(),
            GuestError::UnknownGuest
        );
    }

    #[test]
    fn a_visit_holds_six_people_and_a_removed_guest_frees_a_place() {
        let mut party = Party::default();
        let mut guests = Vec::new();
        for _ in 0..4 {
            let (t, _) = party.invite(0);
            let s = new_guest_subject();
            party.redeem(&token_hash(&t), "G", s.clone(), 1).unwrap();
            guests.push(s);
        }
        let (t, _) = party.invite(0);
        let hash = token_hash(&t);
        assert_eq!(
            party.redeem(&hash, "G", new_guest_subject(), 1).unwrap_err(),
            GuestError::Full
        );
        party.remove(&guests[0], 2).unwrap();
        assert!(
            party.redeem(&hash, "G", new_guest_subject(), 3).is_ok(),
            "the link was not used up"
        );
    }

    #[test]
    fn recording_slots_go_in_order_of_first_join_and_are_kept() {
        let mut party = Party::default();
        let guests: Vec<SubjectId> = (0..3).map(|_| new_guest_subject()).collect();
        for g in &guests {
            let (t, _) = party.invite(0);
            party.redeem(&token_hash(&t), "G", g.clone(), 1).unwrap();
        }
        // The third joins first; the first never joins (turned away): no slot is spent on them.
        assert_eq!(party.take_slot(&guests[2], 4), Some(0));
        assert_eq!(party.take_slot(&guests[1], 4), Some(1));
        assert_eq!(
            party.take_slot(&guests[2], 4),
            Some(0),
            "a rejoin keeps its tracks"
        );
        assert_eq!(party.take_slot(&guests[0], 2), None, "past the file's tracks");
    }

    #[test]
    fn staff_asked_in_join_once_they_accept_and_may_be_asked_again_keeping_their_tracks() {
        let mut party = Party::default();
        let ines = SubjectId::new("staff-ines");
        let name = || Pii::new("Ines Demo".to_string());
        let g = party
            .ask(ines.clone(), name(), Role::Interpreter, Some("Nora Demo".into()))
            .unwrap();
        assert_eq!((g.state, g.role), (GuestState::Asked, Role::Interpreter));
        assert_eq!(
            party
                .ask(ines.clone(), name(), Role::Interpreter, None)
                .unwrap_err(),
            GuestError::AlreadyInVisit
        );
        // Asked is not in: they may not join, nor be let in from a lobby they never were in.
        assert_eq!(party.may_join(&ines).unwrap_err(), GuestError::NotAdmitted);
        assert_eq!(party.admit(&ines, true).unwrap_err(), GuestError::NotInLobby);
        assert_eq!(
            party
                .answer_ask(&SubjectId::new("staff-other"), true)
                .unwrap_err(),
            GuestError::NotAsked
        );
        assert_eq!(party.answer_ask(&ines, true).unwrap().state, GuestState::Admitted);
        assert_eq!(
            party.answer_ask(&ines, true).unwrap_err(),
            GuestError::NotAsked,
            "once"
        );
        party.consent(&ines, Some(true)).unwrap();
        assert_eq!(party.take_slot(&ines, 4), Some(0));
        party.remove(&ines, 5).unwrap();
        // Asked again after a removal: the same tracks and the answer already given.
        party.ask(ines.clone(), name(), Role::Interpreter, None).unwrap();
        party.answer_ask(&ines, true).unwrap();
        let g = party.get(&ines).unwrap();
        assert_eq!((g.slot, g.answered, g.consent), (Some(0), true, Some(true)));
        // A decline frees the place; staff count toward the six.
        let paul = SubjectId::new("staff-paul");
        party.ask(paul.clone(), name(), Role::Physician, None).unwrap();
        assert_eq!(party.answer_ask(&paul, false).unwrap().state, GuestState::Removed);
        for n in 0..3 {
            let s = SubjectId::new(format!("staff-{n}"));
            party.ask(s, name(), Role::Physician, None).unwrap();
        }
        assert_eq!(
            party.ask(paul, name(), Role::Physician, None).unwrap_err(),
            GuestError::Full
        );
    }

    #[test]
    fn guest_subjects_are_opaque_and_fresh() {
        let (a, b) = (new_guest_subject(), new_guest_subject());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), "guest-".len() + 16);
    }
}
