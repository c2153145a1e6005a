//! Guests in a live visit (see [`crate::visit::guests`]): the patient's invitation, a link opened into the
//! lobby, the nurse's admission or removal, a guest's answer to the recording question and their leaving. Each
//! change is told to everyone in the visit as its guest list (`video_party`); a guest hears about their own
//! place (`guest_lobby`, the camera and recording question, `video_started`, `video_ended`).

use secrecy::{ExposeSecret, SecretString};

use super::{VideoError, VideoService};
use crate::clock::now_ms;
use crate::ids::SubjectId;
use crate::policy::Authorized;
use crate::protocol::{GuestView, ServerFrame};
use crate::recording::recorder::Source;
use crate::visit::guests::{self, GuestState};
use crate::visit::{EndReason, Seat, Visit, VisitId, VisitState};

/// The guest page; the token follows in the fragment.
const GUEST_PAGE: &str = "/guest/#";

/// What the app does with a guest who has no place in a visit any more (ends their session).
pub type GuestGone = std::sync::Arc<dyn Fn(SubjectId) + Send + Sync>;

/// A guest who opened a link: who they are now, in which visit, and their name (for their session).
pub struct Arrival {
    pub visit: VisitId,
    pub guest: SubjectId,
    pub name: crate::pii::Pii<String>,
}

impl VideoService {
    /// Sets what happens to a guest who has no place in a visit any more (once, when the app is built).
    pub fn on_guest_gone(&self, gone: GuestGone) {
        let _ = self.guest_gone.set(gone);
    }

    /// `guest` has no place in `v` any more: a guest with a link loses their session (it was for this visit
    /// alone); a staff member keeps theirs.
    pub(super) fn gone(&self, v: &Visit, guest: &SubjectId) {
        let with_link = v.party.get(guest).is_none_or(|g| g.by_link);
        if let (true, Some(gone)) = (with_link, self.guest_gone.get()) {
            gone(guest.clone());
        }
    }

    /// The patient asks for a guest link (`visit.invite`): the page path with its token, and when it expires.
    pub async fn invite(&self, proof: &Authorized<VisitId>) -> Result<ServerFrame, VideoError> {
        proof.require(&["visit.invite"])?;
        let (id, who) = (proof.resource(), proof.subject());
        let (token, expires_at_ms) = self.live().visits.invite(id, who, now_ms())?;
        Ok(ServerFrame::GuestLink {
            visit_id: id.to_string(),
            link: format!("{GUEST_PAGE}{token}"),
            expires_at_ms,
        })
    }

    /// Someone opens a guest link under `name`: the token is the credential (no account). They wait in the
    /// lobby; the nurse and patient see them there.
    pub async fn redeem(&self, token: &SecretString, name: &str) -> Result<Arrival, VideoError> {
        let hash = guests::token_hash(token.expose_secret());
        let guest = guests::new_guest_subject();
        let v = self.live().visits.redeem(&hash, name, guest.clone(), now_ms())?;
        let name = v.party.get(&guest).expect("just arrived").name.clone();
        self.tell_party(&v);
        Ok(Arrival {
            visit: v.id,
            guest,
            name,
        })
    }

    /// The nurse acts on a guest (`visit.admit`): admits or turns away one waiting (`Some`), or removes one
    /// (`None`). An admitted guest is asked the camera and recording question; one turned away or removed is
    /// told and loses their connection.
    pub async fn admit(
        &self,
        proof: &Authorized<VisitId>,
        guest: &str,
        admit: Option<bool>,
    ) -> Result<(), VideoError> {
        proof.require(&["visit.admit"])?;
        let (id, nurse) = (proof.resource(), proof.subject());
        let guest = SubjectId::new(guest);
        let v = self.live().visits.admit(id, nurse, &guest, admit, now_ms())?;
        self.tell_party(&v);
        if admit == Some(true) {
            if let Some(frame) = self.describe_for_guest(&v, &guest) {
                self.messaging.send_to(&guest, frame);
            }
        } else {
            self.guest_gone(&v, &guest, EndReason::Removed).await;
        }
        Ok(())
    }

    /// An admitted guest's answer to the camera and recording question; declining is leaving.
    pub(super) async fn guest_answer(
        &self,
        id: &VisitId,
        guest: &SubjectId,
        accept: bool,
        consent: Option<bool>,
    ) -> Result<Visit, VideoError> {
        // Under a policy that asks, only a yes is consent (no answer is a no); otherwise the visit's recording
        // takes them as it takes everyone.
        let visit = self.live().visits.get(id).cloned();
        let asked = visit
            .and_then(|v| self.decision(&v))
            .is_some_and(|d| d.consent_required);
        let consent = asked.then_some(consent == Some(true));
        let v = self
            .live()
            .visits
            .guest_answer(id, guest, accept, consent, now_ms())?;
        self.tell_party(&v);
        if accept {
            self.messaging.send_to(guest, self.describe(&v));
        } else {
            self.guest_gone(&v, guest, EndReason::Left).await;
        }
        Ok(v)
    }

    /// A guest leaves the visit (`video_end` from a guest); it goes on for the others.
    pub(super) async fn guest_leaves(&self, id: &VisitId, guest: &SubjectId) -> Result<(), VideoError> {
        let v = self.live().visits.guest_leaves(id, guest, now_ms())?;
        self.tell_party(&v);
        self.guest_gone(&v, guest, EndReason::Left).await;
        Ok(())
    }

    /// A guest no longer in the visit: their connection closes, they are told why, and their session ends.
    async fn guest_gone(&self, v: &Visit, guest: &SubjectId, reason: EndReason) {
        let seat = Seat::Guest(guest.clone());
        let held = self
            .live()
            .joined
            .get(&(v.id.clone(), seat.clone()))
            .map(|j| j.participant.clone());
        if let Some(participant) = held {
            self.drop_participant(&v.id, seat, &participant).await;
        }
        self.messaging.send_to(
            guest,
            ServerFrame::VideoEnded {
                conversation_id: v.conversation.clone(),
                visit_id: v.id.to_string(),
                reason,
                epoch: v.epoch,
            },
        );
        self.gone(v, guest);
    }

    /// The visit moved to another node, which knows nothing of its guests (the guest list lives with the host):
    /// they are told it ended for them rather than left waiting; the patient can invite them again.
    pub(super) fn guests_left_behind(&self, v: &Visit) {
        for g in v.party.present() {
            self.messaging.send_to(
                &g.subject,
                ServerFrame::VideoEnded {
                    conversation_id: v.conversation.clone(),
                    visit_id: v.id.to_string(),
                    reason: EndReason::ServerRestart,
                    epoch: v.epoch,
                },
            );
            self.gone(v, &g.subject);
        }
    }

    /// The visit's guest list as `viewer` sees it: the nurse all of it; the patient and admitted guests each
    /// guest's name and place, and only their own answer to the recording question; a guest still in the lobby
    /// (nobody has vetted them yet) nothing.
    pub(super) fn party_frame(&self, v: &Visit, viewer: &SubjectId) -> Option<ServerFrame> {
        let waiting = v
            .party
            .get(viewer)
            .is_some_and(|g| g.state != GuestState::Admitted);
        if waiting {
            return None;
        }
        let live = self.live();
        let guests = v
            .party
            .present()
            .map(|g| GuestView {
                guest_id: g.subject.as_str().to_string(),
                name: g.name.clone(),
                role: g.role,
                state: g.state,
                recording_consent: g.consent.filter(|_| viewer == &v.nurse || viewer == &g.subject),
                in_call: live
                    .joined
                    .contains_key(&(v.id.clone(), Seat::Guest(g.subject.clone()))),
            })
            .collect();
        Some(ServerFrame::VideoParty {
            visit_id: v.id.to_string(),
            guests,
        })
    }

    /// Tells everyone in the visit its guest list (a guest turned away or removed hears nothing more of it).
    pub(super) fn tell_party(&self, v: &Visit) {
        for who in v.people() {
            if let Some(frame) = self.party_frame(v, &who) {
                self.messaging.send_to(&who, frame);
            }
        }
    }

    /// A guest's session could not be made after their link was used: their place in the lobby is given back.
    pub async fn arrival_failed(&self, id: &VisitId, guest: &SubjectId) {
        let left = self.live().visits.guest_leaves(id, guest, now_ms());
        if let Ok(v) = left {
            self.tell_party(&v);
        }
    }

    /// What a guest's socket hears about the visit: the lobby, the camera and recording question (their own
    /// consent), or the call.
    pub(super) fn describe_for_guest(&self, v: &Visit, guest: &SubjectId) -> Option<ServerFrame> {
        let g = v.party.get(guest)?;
        match (g.state, v.state, g.answered) {
            (GuestState::Asked, VisitState::Active, _) => Some(ServerFrame::ConsultAsked {
                visit_id: v.id.to_string(),
                from: g.asked_by.clone(),
                role: g.role,
            }),
            (GuestState::Lobby, _, _) => Some(ServerFrame::GuestLobby {
                visit_id: v.id.to_string(),
            }),
            (GuestState::Admitted, VisitState::Active, false) => Some(self.proposal(v)),
            (GuestState::Admitted, VisitState::Active, true) => Some(self.describe(v)),
            _ => None,
        }
    }

    /// The manifest notes who joined or left the media room while it records: by role, with whether their
    /// tracks are in the file.
    pub(super) async fn note_in_manifest(&self, v: &Visit, seat: &Seat, joined: bool) {
        let session = self.live().sessions.get(&v.id).cloned();
        let Some(session) = session else {
            return;
        };
        let (role, guest_id, recorded) = match seat {
            Seat::Patient => ("patient", None, Ok(Source::Patient)),
            // Each nurse by id: after a transfer the manifest names both.
            Seat::Nurse => ("nurse", Some(v.nurse.as_str()), Ok(Source::Nurse)),
            Seat::Guest(g) => (
                v.party.get(g).map_or("guest", |g| g.role.as_str()),
                Some(g.as_str()),
                guest_source(v, g),
            ),
        };
        let joined = joined.then_some(recorded);
        session.participant(role, guest_id, joined, now_ms());
        self.save_manifest(&session).await;
    }
}

/// Where a guest's media goes in the visit's recording: the tracks of their slot (given at their first join), or
/// why none — they declined, or the file has no tracks left (four other guests joined before).
pub(super) fn guest_source(v: &Visit, guest: &SubjectId) -> Result<Source, &'static str> {
    let g = v.party.get(guest).ok_or("declined")?;
    if g.consent == Some(false) {
        return Err("declined");
    }
    g.slot.and_then(Source::guest).ok_or("no_tracks_left")
}
