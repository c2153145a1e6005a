//! The first negotiation of a participant's connection: which kinds the SFU sends back (one outgoing track per
//! kind the offer carries in a codec it forwards), the answer, and the feedback relay of each outgoing track.

use std::sync::{Arc, Mutex};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::peer_connection::RTCSessionDescription;

use super::keyframes::relay_feedback;
use super::{Outgoing, Peer, WebRtcSfu, codecs, engine_error};
use crate::media::MediaError;
use crate::media::rewrite::Rewriter;

impl WebRtcSfu {
    /// First negotiation: the offer, then one outgoing track per kind the offer carries in a codec the SFU
    /// forwards (Opus, VP8), then the answer. A kind offered only in other codecs (Safari with VP8 turned off:
    /// H.264 alone) gets no track, and its section is refused: that browser joins with audio only.
    pub(super) async fn negotiate_first(&self, peer: &Arc<Peer>, offer: &str) -> Result<String, MediaError> {
        let desc = RTCSessionDescription::offer(offer.to_string())
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        peer.pc
            .set_remote_description(desc)
            .await
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let mut senders = Vec::new();
        let offered = |codec: &str| offer.to_ascii_lowercase().contains(codec);
        for (kind, has) in [
            (
                RtpCodecKind::Audio,
                offer.contains("m=audio") && offered(" opus/48000"),
            ),
            (
                RtpCodecKind::Video,
                offer.contains("m=video") && offered(" vp8/90000"),
            ),
        ] {
            if !has {
                continue;
            }
            let (track, ssrc) = codecs::local_track(
                format!("sfu-{}", peer.room),
                format!("{kind}-{}", crate::ids::random_hex(4)),
                kind,
            );
            let sender = peer.pc.add_track(track.clone()).await.map_err(engine_error)?;
            senders.push((kind, track, ssrc, sender));
        }
        let answer = peer
            .pc
            .create_answer(None)
            .await
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        peer.pc
            .set_local_description(answer)
            .await
            .map_err(engine_error)?;
        for (kind, track, ssrc, sender) in senders {
            let params = sender.get_parameters().await.map_err(engine_error)?;
            let payload_types = params
                .rtp_parameters
                .codecs
                .iter()
                .map(|c| (c.rtp_codec.mime_type.to_ascii_lowercase(), c.payload_type))
                .collect();
            let clock_rate = if kind == RtpCodecKind::Audio {
                48_000
            } else {
                90_000
            };
            let out = Arc::new(Outgoing {
                track,
                ssrc,
                payload_types,
                rewriter: Mutex::new(Rewriter::new(clock_rate)),
            });
            peer.outgoing.lock().expect("peer lock").insert(kind, out.clone());
            tokio::spawn(relay_feedback(
                out,
                peer.id.clone(),
                peer.room.clone(),
                Arc::downgrade(&self.state),
                self.metrics.clone(),
            ));
        }
        self.local_description(&peer.pc).await
    }
}
