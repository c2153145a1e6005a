//! The media engine's events for one participant's connection, as socket frames: its ICE candidates, the
//! connection states and slow-link notices of the patient and the nurse (to both), renegotiation requests, the
//! SFU's own offers, and whose camera each of its tiles carries (`video_tile`: a role, and a guest's name).

use std::sync::Arc;

use super::VideoService;
use crate::media::{EventSink, MediaEvent, ParticipantId};
use crate::protocol::{ServerFrame, TileWho};
use crate::visit::{Seat, Side, Visit};

impl VideoService {
    /// Engine events of one participant, as frames: candidates to that participant; the patient's and nurse's
    /// connection state to both of them (a guest's goes to nobody); whose picture each of its tiles shows.
    pub(super) fn sink(&self, v: &Visit, seat: &Seat) -> EventSink {
        let labels = self.labels.clone();
        let hub = self.messaging.clone();
        let me = v.subject_of(seat).clone();
        let patient = v.patient.clone();
        let live = self.live.clone();
        let id = v.id.clone();
        // Whoever is the visit's nurse when the event comes (a transfer changes her; nobody while it waits in a
        // queue). The engine raises events outside the live lock.
        let to_patient_and_nurse = move |frame: ServerFrame| {
            hub.send_to(&patient, frame.clone());
            let nurse = live
                .lock()
                .expect("live visits lock")
                .visits
                .get(&id)
                .filter(|v| !v.awaits_nurse())
                .map(|v| v.nurse.clone());
            if let Some(nurse) = nurse {
                hub.send_to(&nurse, frame);
            }
        };
        let hub = self.messaging.clone();
        let side = seat.side();
        let visit_id = v.id.to_string();
        Arc::new(move |event| match event {
            MediaEvent::LocalCandidate(candidate) => hub.send_to(
                &me,
                ServerFrame::VideoCandidate {
                    visit_id: visit_id.clone(),
                    candidate,
                },
            ),
            MediaEvent::State(state) => {
                if let Some(side) = side {
                    let frame = ServerFrame::VideoPeer {
                        visit_id: visit_id.clone(),
                        side,
                        state,
                    };
                    to_patient_and_nurse(frame);
                }
            }
            MediaEvent::Downlink { audio_only } => {
                let frame = |side| ServerFrame::VideoLink {
                    visit_id: visit_id.clone(),
                    side,
                    audio_only,
                };
                match side {
                    Some(side) => to_patient_and_nurse(frame(side)),
                    // A guest on a slow link is told it, as the patient would be.
                    None => hub.send_to(&me, frame(Side::Patient)),
                }
            }
            MediaEvent::Renegotiate => hub.send_to(
                &me,
                ServerFrame::VideoRenegotiate {
                    visit_id: visit_id.clone(),
                },
            ),
            MediaEvent::ServerOffer(sdp) => hub.send_to(
                &me,
                ServerFrame::VideoServerOffer {
                    visit_id: visit_id.clone(),
                    sdp,
                },
            ),
            MediaEvent::Tile { stream, from } => {
                let who = from.and_then(|p| labels.lock().expect("labels lock").get(&p).cloned());
                hub.send_to(
                    &me,
                    ServerFrame::VideoTile {
                        visit_id: visit_id.clone(),
                        stream_id: stream,
                        who,
                    },
                );
            }
        })
    }

    /// Whose media a participant connection carries, for the others' tiles: set when it joins.
    pub(super) fn label(&self, v: &Visit, seat: &Seat, participant: &ParticipantId) {
        let who = match seat {
            Seat::Patient => TileWho {
                role: "patient",
                name: None,
                guest_id: None,
            },
            Seat::Nurse => TileWho {
                role: "nurse",
                name: None,
                guest_id: None,
            },
            Seat::Guest(g) => TileWho {
                role: v.party.get(g).map_or("guest", |g| g.role.as_str()),
                name: v.party.get(g).map(|g| g.name.clone()),
                guest_id: Some(g.as_str().to_string()),
            },
        };
        self.labels
            .lock()
            .expect("labels lock")
            .insert(participant.clone(), who);
    }

    /// A connection closed: nobody's tile names it any more.
    pub(super) fn unlabel(&self, participant: &ParticipantId) {
        self.labels.lock().expect("labels lock").remove(participant);
    }
}
