//! Sharing a participant's screen with the others in its room, the one change the SFU offers itself: while
//! someone shares, every other connected participant gets an outgoing screen track on its connection (a section
//! of its own, stream id [`SCREEN_STREAM`] so the client shows it apart from the camera), and loses it after
//! (`remove_track`, so a later share reuses the section). One negotiation at a time per connection: while the
//! SFU's offer waits for its answer, a client's offer is refused as glare (the SFU is the impolite side; the
//! client rolls back, answers, then offers again), and a further change is offered once the answer is in.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::peer_connection::RTCSessionDescription;

use super::codecs::{self, VideoCodec};
use super::keyframes::{relay_feedback, request_keyframe};
use super::{Outgoing, Peer, Rooms, engine_error};
use crate::media::announce::{self, AnnouncedAddrs};
use crate::media::rewrite::Rewriter;
use crate::media::{MediaError, MediaEvent, TrackSource};
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

/// What the screen's negotiations need of the engine (held weakly, like the peers' handlers).
pub(super) struct Screens {
    pub state: Weak<Mutex<Rooms>>,
    pub announced: Arc<AnnouncedAddrs>,
    pub metrics: MediaMetrics,
}

impl Screens {
    /// Brings every connected participant of `room` in line with who shares a screen: a screen track while
    /// someone else shares, none after.
    pub async fn changed(&self, room: &str) {
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
        if on {
            let (track, ssrc) = codecs::local_track(
                SCREEN_STREAM.into(),
                format!("screen-{}", crate::ids::random_hex(4)),
                RtpCodecKind::Video,
                VideoCodec::Vp8,
            );
            let sender = peer.pc.add_track(track.clone()).await.map_err(engine_error)?;
            let out = Arc::new(Outgoing {
                track,
                ssrc,
                payload_types: Mutex::new(HashMap::new()),
                rewriter: Mutex::new(Rewriter::new(90_000)),
            });
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
            .map(|d| announce::sdp(&self.announced, &d.sdp))
            .ok_or_else(|| MediaError::Engine("no local description".into()))?;
        if let Some((out, _)) = peer.screen_out.lock().expect("peer lock").as_ref() {
            *out.payload_types.lock().expect("payload types lock") = last_video_payload_types(&sdp);
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
            let desc = RTCSessionDescription::answer(answer.to_string())
                .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
            peer.pc
                .set_remote_description(desc)
                .await
                .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
            negotiation.offered = false;
            std::mem::take(&mut negotiation.again)
        };
        // It can show the screen from the next keyframe on.
        request_keyframe(
            &self.state,
            &peer.room,
            &peer.id,
            &[TrackSource::Screen],
            &self.metrics,
        )
        .await;
        if again {
            Box::pin(self.offer(peer)).await?;
        }
        Ok(())
    }
}

/// The payload type of each codec (lower-case MIME type) in the SDP's last video section: the shared screen's,
/// the last section the SFU added. The answer keeps the offer's numbers.
fn last_video_payload_types(sdp: &str) -> HashMap<String, u8> {
    let Some(start) = sdp.rfind("\nm=video ") else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for line in sdp[start + 1..].lines() {
        if let Some((pt, rest)) = line.strip_prefix("a=rtpmap:").and_then(|l| l.split_once(' '))
            && let Ok(pt) = pt.parse()
        {
            let name = rest.split('/').next().unwrap_or_default();
            out.entry(format!("video/{name}").to_ascii_lowercase())
                .or_insert(pt);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screens_payload_types_are_read_from_the_last_video_section() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\na=rtpmap:97 VP8/90000\r\na=rtpmap:98 H264/90000\r\n";
        let types = last_video_payload_types(sdp);
        assert_eq!(types.get("video/vp8"), Some(&97));
        assert_eq!(types.get("video/h264"), Some(&98));
        assert!(last_video_payload_types("m=audio 9 X 0\r\n").is_empty());
    }
}
