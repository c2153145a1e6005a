//! Who holds each side of a visit, and which offers may take it: a participant's connection is claimed by the
//! socket that offered it, and a later offer replaces it (a reload, a rejoin). After a network cut, offers a
//! client sent on a socket it has since given up arrive late, when the network returns; they must not replace
//! the connection it made since from a new socket. So an offer is stale when it belongs to a connection a newer
//! one replaced, or comes from a socket older than the one holding the side now.

use super::{Live, VideoError, VideoService};
use crate::clock::now_ms;
use crate::ids::RequestId;
use crate::media::{MediaError, ParticipantId};
use crate::policy::Authorized;
use crate::visit::{Seat, VisitError, VisitId};

impl Live {
    /// A number for `socket`, larger for sockets this node saw offer later.
    fn order(&mut self, socket: &RequestId) -> u64 {
        if let Some(n) = self.socket_order.get(socket) {
            return *n;
        }
        self.sockets_seen += 1;
        self.socket_order.insert(socket.clone(), self.sockets_seen);
        self.sockets_seen
    }

    /// Whether an offer of the connection `print` from `socket` for `key` comes too late to count.
    pub(super) fn stale_offer(
        &mut self,
        key: &(VisitId, Seat),
        socket: &RequestId,
        print: &Option<String>,
    ) -> bool {
        if self.retired.get(key).is_some_and(|r| r.contains(print)) {
            return true;
        }
        let mine = self.order(socket);
        let holder = self.joined.get(key).map(|j| j.socket.clone());
        holder.is_some_and(|h| h != *socket && self.order(&h) > mine)
    }

    /// `print` was replaced by a newer connection: its late offers are refused (the last few are kept).
    pub(super) fn retire(&mut self, key: &(VisitId, Seat), print: Option<String>) {
        let retired = self.retired.entry(key.clone()).or_default();
        retired.push(print);
        retired.drain(..retired.len().saturating_sub(8));
    }
}

impl VideoService {
    /// A participant hangs up its connection but the visit stays (it may rejoin).
    /// Only the socket that holds the connection hangs it up: a tab another tab replaced leaves nothing.
    pub async fn leave(&self, proof: &Authorized<VisitId>, socket: &RequestId) -> Result<(), VideoError> {
        proof.require(&["visit.join"])?;
        let (who, id) = (proof.subject(), proof.resource());
        let (seat, participant) = {
            let live = self.live();
            let v = live.visits.get(id).ok_or(VisitError::UnknownVisit)?;
            let seat = v.seat_of(who).ok_or(VisitError::NotParticipant)?;
            match live.joined.get(&(id.clone(), seat.clone())) {
                Some(j) if &j.socket == socket => (seat, j.participant.clone()),
                _ => return Ok(()),
            }
        };
        self.drop_participant(id, seat, &participant).await;
        Ok(())
    }

    /// The participant's answer to the SFU's own offer (`visit.join`), from the socket holding the connection.
    pub async fn server_answer(
        &self,
        proof: &Authorized<VisitId>,
        socket: &RequestId,
        sdp: &str,
    ) -> Result<(), VideoError> {
        proof.require(&["visit.join"])?;
        let (who, id) = (proof.subject(), proof.resource());
        let participant = {
            let live = self.live();
            let v = live.visits.get(id).ok_or(VisitError::UnknownVisit)?;
            let seat = v.seat_of(who).ok_or(VisitError::NotParticipant)?;
            match live.joined.get(&(id.clone(), seat)) {
                Some(j) if &j.socket == socket => j.participant.clone(),
                _ => return Err(MediaError::NoPeerConnection.into()),
            }
        };
        Ok(self.engine.server_answer(&participant, sdp).await?)
    }

    /// Closes the connections a closed socket had joined.
    pub async fn socket_closed(&self, socket: &RequestId) {
        let gone: Vec<((VisitId, Seat), ParticipantId)> = self
            .live()
            .joined
            .iter()
            .filter(|(_, j)| &j.socket == socket)
            .map(|(k, j)| (k.clone(), j.participant.clone()))
            .collect();
        for ((id, seat), participant) in gone {
            self.drop_participant(&id, seat, &participant).await;
        }
        self.live().socket_order.remove(socket);
        self.precall_end(socket).await;
    }

    /// Closes `participant`'s connection, if it still holds its side's slot: a socket noticed dead late (a
    /// network cut) must not close the connection its owner has since made from a new socket.
    pub(super) async fn drop_participant(&self, id: &VisitId, seat: Seat, participant: &ParticipantId) {
        let key = (id.clone(), seat.clone());
        let ours = {
            let mut live = self.live();
            let ours = live
                .joined
                .get(&key)
                .is_some_and(|j| &j.participant == participant);
            if ours {
                // Under the same lock: a rejoin between the two must not be counted as gone.
                live.joined.remove(&key);
                live.visits.seat_left(id, &seat, now_ms());
            }
            ours
        };
        tracing::info!(visit = %id, seat = ?seat, participant = participant.as_str(), ours, "video connection dropped");
        if ours {
            self.engine.leave(participant).await;
            self.unlabel(participant);
            let v = self.live().visits.get(id).cloned();
            if let Some(v) = v {
                self.note_in_manifest(&v, &seat, false).await;
                if let Seat::Guest(_) = seat {
                    self.tell_party(&v);
                }
            }
            // Her capture went with her connection: the screen's interval in the recording ends here.
            if seat == Seat::Nurse {
                let session = self.live().sessions.get(id).cloned();
                if let Some(session) = session {
                    session.screen_stopped(now_ms());
                }
            }
        }
    }
}
