//! The SFU's own offers to a connection, for what the participant's offer could not carry: another
//! participant's shared screen (a track of its own, stream id [`SCREEN_STREAM`], so the client shows it apart
//! from the camera; removed after with `remove_track`, so a later share reuses the section), and, from a third
//! participant on, one more audio and video track per other participant (each bound to whoever's media arrives
//! first without a track, and freed when they leave: `Peer::target_for`). One negotiation at a time per
//! connection: while the SFU's offer waits for its answer, a client's offer is refused as glare (the SFU is the
//! impolite side; the client rolls back, answers, then offers again), and a further change is offered once the
//! answer is in.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::peer_connection::RTCSessionDescription;

use super::codecs::{self, VideoCodec};
use super::keyframes::{relay_feedback, request_keyframe};
use super::negotiate::{Section, payload_types};
use super::{Outgoing, Peer, Rooms, engine_error};
use crate::media::announce;
use crate::media::rewrite::Rewriter;
use crate::media::{MediaError, MediaEvent, ParticipantId, TrackSource};
use crate::telemetry::MediaMetrics;

/// The stream id of a shared screen on a viewer's connection.
pub const SCREEN_STREAM: &str = "examroom-screen";

/// Where the SFU's own offer to one connection stands.
#[derive(Default)]
pub(super) struct ServerNegotiation {
    /// An offer of the SFU's waits for its answer.
    pub offered: bool,
    /// Something changed meanwhile: offer again once the answer is in.
    again: bool,
}

/// What the SFU's offers need of the engine (held weakly, like the peers' handlers).
pub(super) struct Offers {
    pub state: Weak<Mutex<Rooms>>,
    pub metrics: MediaMetrics,
}

impl Outgoing {
    /// A track of `kind` on `stream`, numbered as `payload_types` says (empty until an answer tells them).
    pub(super) fn new(
        track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
        ssrc: u32,
        stream: String,
        kind: RtpCodecKind,
        payload_types: HashMap<String, u8>,
    ) -> Arc<Outgoing> {
        let clock_rate = if kind == RtpCodecKind::Audio {
            48_000
        } else {
            90_000
        };
        Arc::new(Outgoing {
            track,
            ssrc,
            stream,
            payload_types: Mutex::new(payload_types),
            rewriter: Mutex::new(Rewriter::new(clock_rate)),
        })
    }
}

/// Where a sender's media goes on one viewer's connection.
pub(super) enum Target {
    /// The track bound to it.
    Track(Arc<Outgoing>),
    /// A track bound to it by this packet: the viewer is told whose its stream is now.
    Bound(Arc<Outgoing>),
    /// No track is free: more must be offered.
    Wanted,
    /// None free, more already asked for.
    Busy,
}

impl Peer {
    /// The outgoing track carrying `source` of `from` to this viewer: the one bound to it, else the first free
    /// track of `kind` (bound from now on).
    pub(super) fn target_for(&self, from: &ParticipantId, source: TrackSource, kind: RtpCodecKind) -> Target {
        let mut bound = self.bound.lock().expect("peer lock");
        if let Some(out) = bound.get(&(from.clone(), source)) {
            return Target::Track(out.clone());
        }
        let Some(first) = self.outgoing.lock().expect("peer lock").get(&kind).cloned() else {
            // It did not offer this kind (or not in a codec the SFU forwards): it gets none of it.
            return Target::Busy;
        };
        let extra = self.extra.lock().expect("peer lock");
        // A sender's microphone and camera go to the two halves of one stream: its other half's, when one is
        // bound; else a stream nobody's media is on.
        let partner = match source {
            TrackSource::Microphone => Some(TrackSource::Camera),
            TrackSource::Camera => Some(TrackSource::Microphone),
            TrackSource::Screen => None,
        };
        let partner = partner
            .and_then(|p| bound.get(&(from.clone(), p)))
            .map(|o| o.stream.clone());
        let free = std::iter::once(first)
            .chain(extra.iter().filter(|(k, _)| *k == kind).map(|(_, o)| o.clone()))
            .filter(|o| !bound.values().any(|b| Arc::ptr_eq(b, o)))
            .find(|o| match &partner {
                Some(stream) => &o.stream == stream,
                None => !bound.values().any(|b| b.stream == o.stream),
            });
        match free {
            Some(out) => {
                bound.insert((from.clone(), source), out.clone());
                Target::Bound(out)
            }
            // Offers go only to a connection that has its first answer (the client would roll its offer back).
            None if !self.connected.load(Ordering::Relaxed) => Target::Busy,
            None if self.adding.swap(true, Ordering::Relaxed) => Target::Busy,
            None => Target::Wanted,
        }
    }
}

impl Peer {
    /// Every outgoing video track on its connection: the first, those added for more participants, a screen.
    pub(super) fn video_tracks(&self) -> Vec<Arc<Outgoing>> {
        let first = self
            .outgoing
            .lock()
            .expect("peer lock")
            .get(&RtpCodecKind::Video)
            .cloned();
        let extra: Vec<Arc<Outgoing>> = self
            .extra
            .lock()
            .expect("peer lock")
            .iter()
            .filter(|(k, _)| *k == RtpCodecKind::Video)
            .map(|(_, o)| o.clone())
            .collect();
        let screen = self
            .screen_out
            .lock()
            .expect("peer lock")
            .as_ref()
            .map(|(o, _)| o.clone());
        first.into_iter().chain(extra).chain(screen).collect()
    }
}

impl Offers {
    /// One more audio and video track on `viewer`'s connection (a participant has none free for it), offered.
    pub async fn add_tracks(&self, viewer: &Arc<Peer>) {
        let mut added = Vec::new();
        // One stream for the pair, so a client can group them (one tile each, its sound with its picture).
        let stream = format!("sfu-{}-{}", viewer.room, crate::ids::random_hex(4));
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let (track, ssrc) = codecs::local_track(
                stream.clone(),
                format!("{kind}-{}", crate::ids::random_hex(4)),
                kind,
                VideoCodec::Vp8,
            );
            if let Err(e) = viewer.pc.add_track(track.clone()).await {
                tracing::warn!(participant = viewer.id.as_str(), error = %e, "no track added");
                viewer.adding.store(false, Ordering::Relaxed);
                return;
            }
            let out = Outgoing::new(track, ssrc, stream.clone(), kind, HashMap::new());
            if kind == RtpCodecKind::Video {
                tokio::spawn(relay_feedback(
                    out.clone(),
                    viewer.id.clone(),
                    viewer.room.clone(),
                    self.state.clone(),
                    self.metrics.clone(),
                    TrackSource::Camera,
                ));
            }
            added.push((kind, out));
        }
        viewer.extra.lock().expect("peer lock").extend(added);
        if let Err(e) = self.offer(viewer).await {
            tracing::warn!(participant = viewer.id.as_str(), error = %e, "more tracks not offered");
        }
        viewer.adding.store(false, Ordering::Relaxed);
    }

    /// Brings every connected participant of `room` in line with who shares a screen: a screen track while
    /// someone else shares, none after.
    pub async fn screen_changed(&self, room: &str) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let peers: Vec<Arc<Peer>> = state
            .lock()
            .expect("rooms lock")
            .rooms
            .get(room)
            .cloned()
            .unwrap_or_default();
        let sharer = peers
            .iter()
            .find(|p| p.screen_shared.load(Ordering::Relaxed))
            .map(|p| p.id.clone());
        for peer in peers.iter().filter(|p| p.connected.load(Ordering::Relaxed)) {
            let wants = sharer.as_ref().is_some_and(|s| *s != peer.id);
            let has = peer.screen_out.lock().expect("peer lock").is_some();
            if wants != has
                && let Err(e) = self.set_screen_out(peer, wants).await
            {
                tracing::warn!(participant = peer.id.as_str(), error = %e, "screen track not changed");
            }
        }
    }

    async fn set_screen_out(&self, peer: &Arc<Peer>, on: bool) -> Result<(), MediaError> {
        // Two changes at once (a connect and a renegotiation) must not both add a track: decided again here.
        let _one = peer.screen_change.lock().await;
        if peer.screen_out.lock().expect("peer lock").is_some() == on {
            return Ok(());
        }
        if on {
            let (track, ssrc) = codecs::local_track(
                SCREEN_STREAM.into(),
                format!("screen-{}", crate::ids::random_hex(4)),
                RtpCodecKind::Video,
                VideoCodec::Vp8,
            );
            let sender = peer.pc.add_track(track.clone()).await.map_err(engine_error)?;
            let out = Outgoing::new(
                track,
                ssrc,
                SCREEN_STREAM.into(),
                RtpCodecKind::Video,
                HashMap::new(),
            );
            *peer.screen_out.lock().expect("peer lock") = Some((out.clone(), sender));
            tokio::spawn(relay_feedback(
                out,
                peer.id.clone(),
                peer.room.clone(),
                self.state.clone(),
                self.metrics.clone(),
                TrackSource::Screen,
            ));
        } else {
            let gone = peer.screen_out.lock().expect("peer lock").take();
            if let Some((_, sender)) = gone {
                peer.pc.remove_track(&sender).await.map_err(engine_error)?;
            }
        }
        self.offer(peer).await
    }

    /// Offers the connection as it now is, unless an offer of the SFU's still waits (then after its answer).
    async fn offer(&self, peer: &Arc<Peer>) -> Result<(), MediaError> {
        let mut negotiation = peer.negotiation.lock().await;
        if negotiation.offered {
            negotiation.again = true;
            return Ok(());
        }
        let offer = peer.pc.create_offer(None).await.map_err(engine_error)?;
        peer.pc.set_local_description(offer).await.map_err(engine_error)?;
        let sdp = peer
            .pc
            .local_description()
            .await
            .map(|d| announce::sdp(&peer.announced, &d.sdp))
            .ok_or_else(|| MediaError::Engine("no local description".into()))?;
        // The sections the SFU offered carry its own payload types (its codec table), the same in each.
        if let Some((out, _)) = peer.screen_out.lock().expect("peer lock").as_ref() {
            *out.payload_types.lock().expect("payload types lock") =
                payload_types(&sdp, RtpCodecKind::Video, Section::Last);
        }
        for (kind, out) in peer.extra.lock().expect("peer lock").iter() {
            *out.payload_types.lock().expect("payload types lock") =
                payload_types(&sdp, *kind, Section::Last);
        }
        negotiation.offered = true;
        (peer.events)(MediaEvent::ServerOffer(sdp));
        Ok(())
    }

    /// The participant's answer to the SFU's offer; a change made meanwhile is offered next.
    pub async fn answered(&self, peer: &Arc<Peer>, answer: &str) -> Result<(), MediaError> {
        let again = {
            let mut negotiation = peer.negotiation.lock().await;
            if !negotiation.offered {
                return Err(MediaError::NoServerOffer);
            }
            let applied = match RTCSessionDescription::answer(answer.to_string()) {
                Ok(desc) => peer.pc.set_remote_description(desc).await,
                Err(e) => Err(e),
            };
            if let Err(e) = applied {
                // A bad answer must not leave the offer standing (every client offer would be refused as glare
                // from then on): it is withdrawn, and offered again.
                if let Ok(rollback) = RTCSessionDescription::rollback(None) {
                    let _ = peer.pc.set_local_description(rollback).await;
                }
                negotiation.offered = false;
                negotiation.again = true;
                return Err(MediaError::InvalidSdp(e.to_string()));
            }
            negotiation.offered = false;
            std::mem::take(&mut negotiation.again)
        };
        // It can show what was added from the next keyframe on.
        request_keyframe(
            &self.state,
            &peer.room,
            &peer.id,
            &[TrackSource::Camera, TrackSource::Screen],
            &self.metrics,
        )
        .await;
        if again {
            Box::pin(self.offer(peer)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screens_payload_types_are_read_from_the_last_video_section() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\na=rtpmap:97 VP8/90000\r\na=rtpmap:98 H264/90000\r\n";
        let types = payload_types(sdp, RtpCodecKind::Video, Section::Last);
        assert_eq!(types.get("video/vp8"), Some(&97));
        assert_eq!(types.get("video/h264"), Some(&98));
        let audio = payload_types(sdp, RtpCodecKind::Audio, Section::Last);
        assert_eq!(audio.get("audio/opus"), Some(&111));
        assert_eq!(audio.len(), 1, "only the audio section's: {audio:?}");
        assert!(payload_types("m=audio 9 X 0\r\n", RtpCodecKind::Video, Section::Last).is_empty());
        let first = payload_types(sdp, RtpCodecKind::Video, Section::First);
        assert_eq!(
            (first.get("video/vp8"), first.len()),
            (Some(&96), 1),
            "the participant's own section"
        );
    }
}
