//! A live visit handed on with its chat (see [`crate::visit::transfer`]), found by the sweep comparing each
//! visit with its conversation: the chat is another nurse's (a warm transfer she accepted, or a nurse who took
//! it from the queue), or back in a queue (cold). The first nurse's connection closes and she is told
//! (`video_ended` `transferred`); the patient and guests are told who takes over, or that the next nurse will
//! (`video_handover`); the new nurse hears of the visit in progress (`video_started`) and joins it as a rejoin.
//! The recording goes on: her tracks are the nurse's, and the manifest names each nurse by id.

use super::VideoService;
use crate::ids::SubjectId;
use crate::protocol::ServerFrame;
use crate::visit::{EndReason, Seat, Visit};

impl VideoService {
    /// The visit's chat is `nurse`'s now (`again`: it was reassigned, perhaps to her once more): she holds the
    /// nurse's place.
    pub(super) async fn nurse_changed(&self, v: &Visit, nurse: SubjectId, again: bool) {
        if !v.awaits_nurse() {
            self.release_nurse(v).await;
        }
        let Some(v) = self.live().visits.hand_to(&v.id, &nurse, again) else {
            return;
        };
        tracing::info!(visit = %v.id, "visit handed to another nurse with its chat");
        self.placement.nurse_changed(&v).await;
        let name = self.recording.db.staff_display_name(nurse.as_str()).await;
        let name = name.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the new nurse's name could not be read");
            None
        });
        self.tell_handover(&v, name);
        // Her workspace shows the visit in progress, to join from the chat.
        self.messaging.send_to(&nurse, self.describe(&v));
        if !v.party.guests.is_empty()
            && let Some(frame) = self.party_frame(&v, &nurse)
        {
            self.messaging.send_to(&nurse, frame);
        }
    }

    /// The visit's chat went back to a queue: the nurse's place is empty until someone accepts it there.
    pub(super) async fn back_to_queue(&self, v: &Visit) {
        if v.awaits_nurse() {
            return;
        }
        self.release_nurse(v).await;
        if let Some(v) = self.live().visits.to_queue(&v.id) {
            tracing::info!(visit = %v.id, "visit back in a queue with its chat");
            self.tell_handover(&v, None);
        }
    }

    /// The nurse who held the place leaves it: her connection closes (the manifest notes it) and she is told.
    async fn release_nurse(&self, v: &Visit) {
        let held = self
            .live()
            .joined
            .get(&(v.id.clone(), Seat::Nurse))
            .map(|j| j.participant.clone());
        if let Some(participant) = held {
            self.drop_participant(&v.id, Seat::Nurse, &participant).await;
        }
        self.messaging.send_to(
            &v.nurse,
            ServerFrame::VideoEnded {
                conversation_id: v.conversation.clone(),
                visit_id: v.id.to_string(),
                reason: EndReason::Transferred,
                epoch: v.epoch,
            },
        );
    }

    /// Everyone else in the visit hears who takes over (`None`: the next nurse from the queue).
    fn tell_handover(&self, v: &Visit, nurse: Option<String>) {
        let frame = ServerFrame::VideoHandover {
            visit_id: v.id.to_string(),
            nurse,
        };
        for who in v.people().into_iter().filter(|w| w != &v.nurse) {
            self.messaging.send_to(&who, frame.clone());
        }
    }
}
