//! The pre-call test: before a visit, a patient (or a nurse) checks that media reaches this server. The browser
//! makes a real peer connection to the SFU — with the ICE servers (TURN) and transport policy a visit would use —
//! in a room of its own: nothing is forwarded to anyone or recorded. One test per person (at most `MAX_OPEN` on
//! a node: each holds a media port); it closes when the client ends it, starts another, or its socket closes,
//! and the periodic sweep closes any open past [`PRECALL_SECONDS`]. The browser judges what it measured (`web/widget/precall.js`).

use std::sync::Arc;

use super::{VideoError, VideoService};
use crate::clock::now_ms;
use crate::ids::{RequestId, SubjectId};
use crate::media::{IceCandidate, MediaError, MediaEvent, Offer, ParticipantId};
use crate::policy::Authorized;
use crate::protocol::ServerFrame;

/// How long a pre-call test connection may stay open.
pub const PRECALL_SECONDS: u64 = 20;
/// Test connections open at once on this node: each holds a media port, which visits need more.
const MAX_OPEN: usize = 50;

/// One socket's test connection.
pub(super) struct Precall {
    participant: ParticipantId,
    subject: SubjectId,
    opened_ms: i64,
}

impl VideoService {
    /// What the test connects with (`media.test` on the caller's own session).
    pub fn precall_start(&self, proof: &Authorized<SubjectId>) -> Result<ServerFrame, VideoError> {
        proof.require(&["media.test"])?;
        Ok(ServerFrame::PrecallReady {
            ice_servers: self.ice_servers(),
            ice_transport_policy: if self.config.force_relay { "relay" } else { "all" }.into(),
            seconds: PRECALL_SECONDS,
        })
    }

    /// The test connection's offer: a new connection in a room of its own (an earlier one of this socket closes).
    pub async fn precall_offer(
        &self,
        proof: &Authorized<SubjectId>,
        socket: &RequestId,
        sdp: &str,
    ) -> Result<String, VideoError> {
        proof.require(&["media.test"])?;
        // One test per person, whichever socket or tab started the last one.
        let mine: Vec<RequestId> = self
            .live()
            .precalls
            .iter()
            .filter(|(s, p)| *s == socket || &p.subject == proof.subject())
            .map(|(s, _)| s.clone())
            .collect();
        for s in mine {
            self.precall_end(&s).await;
        }
        let participant = ParticipantId::random();
        {
            let mut live = self.live();
            if live.precalls.len() >= MAX_OPEN {
                return Err(MediaError::NoPort.into());
            }
            live.precalls.insert(
                socket.clone(),
                Precall {
                    participant: participant.clone(),
                    subject: proof.subject().clone(),
                    opened_ms: now_ms(),
                },
            );
        }
        let hub = self.messaging.clone();
        let me = proof.subject().clone();
        let sink: crate::media::EventSink = Arc::new(move |event| {
            if let MediaEvent::LocalCandidate(candidate) = event {
                hub.send_to(&me, ServerFrame::PrecallCandidate { candidate });
            }
        });
        let room = format!("precall-{}", participant.as_str());
        let answer = self.engine.join(&room, &participant, Offer::sdp(sdp), sink).await;
        if answer.is_err() {
            self.live().precalls.remove(socket);
        }
        Ok(answer?)
    }

    /// A trickled candidate of this socket's test connection.
    pub async fn precall_candidate(
        &self,
        proof: &Authorized<SubjectId>,
        socket: &RequestId,
        candidate: IceCandidate,
    ) -> Result<(), VideoError> {
        proof.require(&["media.test"])?;
        crate::media::sdp::check_candidate(&candidate.candidate)?;
        let participant = self
            .live()
            .precalls
            .get(socket)
            .map(|p| p.participant.clone())
            .ok_or(MediaError::NoPeerConnection)?;
        Ok(self.engine.add_candidate(&participant, candidate).await?)
    }

    /// Closes this socket's test connection, if it has one.
    pub async fn precall_end(&self, socket: &RequestId) {
        let open = self.live().precalls.remove(socket);
        if let Some(p) = open {
            self.engine.leave(&p.participant).await;
        }
    }

    /// Closes test connections open longer than [`PRECALL_SECONDS`] (from the periodic sweep).
    pub(super) async fn expire_precalls(&self) {
        let limit = now_ms() - PRECALL_SECONDS as i64 * 1000;
        let expired: Vec<RequestId> = self
            .live()
            .precalls
            .iter()
            .filter(|(_, p)| p.opened_ms < limit)
            .map(|(s, _)| s.clone())
            .collect();
        for socket in expired {
            self.precall_end(&socket).await;
        }
    }
}
