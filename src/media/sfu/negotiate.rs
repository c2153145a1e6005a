//! Negotiations of a participant's connection: the first one (which kinds the SFU sends back, one outgoing
//! track per kind the offer carries in a codec it forwards, and the feedback relay of each), and every later
//! one (ICE restarts, a codec change). Each answer names the video codecs in the SFU's order (`preferences`):
//! VP8 first for a browser that has it, so what is recorded is VP8 (H.264 after it, so a later answer can
//! switch); H.264 for a browser without VP8, and H.264 first for everyone in a room that has such a browser, so
//! it sees the others. When that browser joins or leaves, the others are asked to negotiate again
//! (`MediaEvent::Renegotiate`) and then send H.264, or VP8 again. A browser that has VP8 but not H.264 and one
//! that has H.264 but not VP8 cannot see each other (the SFU does not transcode).

use std::collections::HashMap;
use std::sync::Arc;

use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use super::codecs::VideoCodec;
use super::keyframes::relay_feedback;
use super::{Outgoing, Peer, WebRtcSfu, codecs, engine_error};
use crate::media::{MediaError, MediaEvent};

/// The video codecs to answer with, in order (a browser sends the first): an offer's codecs among those the
/// SFU forwards, VP8 first when it is there (the recorder writes VP8), H.264 first when someone in the room can
/// only receive H.264 (so that they see this participant). Both stay negotiated either way, so a later
/// negotiation can switch (an engine keeps the codecs of its first negotiation).
pub fn preferences(offered: &[VideoCodec], room_needs_h264: bool) -> Vec<VideoCodec> {
    let mut order: Vec<VideoCodec> = VideoCodec::ALL
        .into_iter()
        .filter(|c| offered.contains(c))
        .collect();
    if room_needs_h264 {
        order.sort_by_key(|c| *c != VideoCodec::H264);
    }
    order
}

impl WebRtcSfu {
    /// `left` has left its room: when it was the one that could receive only H.264, the others are asked to
    /// negotiate again and are answered VP8 first (what the recorder writes).
    pub(super) fn codec_may_change(&self, left: &Peer) {
        if !left.h264_only() || self.room_needs_h264(&left.room) {
            return;
        }
        let others: Vec<Arc<Peer>> = {
            let rooms = self.state.lock().expect("rooms lock");
            let peers = rooms.rooms.get(&left.room).cloned().unwrap_or_default();
            peers
                .into_iter()
                .filter(|p| p.video_offered.contains(&VideoCodec::Vp8))
                .collect()
        };
        for other in others {
            (other.events)(MediaEvent::Renegotiate);
        }
    }
}

/// One format of an SDP's first video section: payload type, encoding name (lower case), fmtp line.
struct Format {
    pt: u8,
    name: String,
    fmtp: String,
}

/// The formats of an SDP's first video section, in its order.
fn video_formats(sdp: &str) -> Vec<Format> {
    let Some(start) = sdp.find("\nm=video ") else {
        return Vec::new();
    };
    let section = &sdp[start + 1..];
    let section = &section[..section[1..].find("\nm=").map_or(section.len(), |i| i + 1)];
    let mut formats: Vec<Format> = Vec::new();
    for line in section.lines() {
        if let Some((pt, rest)) = line.strip_prefix("a=rtpmap:").and_then(|l| l.split_once(' '))
            && let Ok(pt) = pt.parse()
        {
            let name = rest.split('/').next().unwrap_or_default().to_ascii_lowercase();
            formats.push(Format {
                pt,
                name,
                fmtp: String::new(),
            });
        }
    }
    for line in section.lines() {
        if let Some((pt, fmtp)) = line.strip_prefix("a=fmtp:").and_then(|l| l.split_once(' '))
            && let Some(f) = formats.iter_mut().find(|f| f.pt.to_string() == pt)
        {
            f.fmtp = fmtp.trim().to_string();
        }
    }
    formats
}

/// The offer's format for `codec`: VP8's first; for H.264 packetization mode 1, Constrained Baseline
/// (42e01f) if offered, else any Baseline (what the SFU registered, so the engine matches it).
fn format_of(formats: &[Format], codec: VideoCodec) -> Option<&Format> {
    match codec {
        VideoCodec::Vp8 => formats.iter().find(|f| f.name == "vp8"),
        VideoCodec::H264 => {
            let mode1 = |f: &&Format| {
                f.name == "h264" && f.fmtp.to_ascii_lowercase().contains("packetization-mode=1")
            };
            let profile = |f: &Format, p: &str| {
                f.fmtp
                    .to_ascii_lowercase()
                    .contains(&format!("profile-level-id={p}"))
            };
            formats
                .iter()
                .filter(mode1)
                .find(|f| profile(f, "42e01f"))
                .or_else(|| formats.iter().filter(mode1).find(|f| profile(f, "42")))
        }
    }
}

/// The video codecs an offer lists that the SFU forwards, in the SFU's order.
pub fn offered(offer: &str) -> Vec<VideoCodec> {
    let formats = video_formats(offer);
    VideoCodec::ALL
        .into_iter()
        .filter(|c| format_of(&formats, *c).is_some())
        .collect()
}

/// `order` as the offer numbers it: the sender of the answer's section accepts exactly these payload types.
fn as_offered(offer: &str, order: &[VideoCodec]) -> Vec<RTCRtpCodecParameters> {
    let formats = video_formats(offer);
    let mut out = Vec::new();
    for codec in order {
        let Some(f) = format_of(&formats, *codec) else {
            continue;
        };
        // With the feedback the table registers: the engine decides from these whether to answer NACKs, ask
        // for repairs and number packets for TWCC.
        let mut feedback = codecs::video_feedback();
        feedback.push(RTCPFeedback {
            typ: "transport-cc".into(),
            parameter: String::new(),
        });
        out.push(RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                sdp_fmtp_line: f.fmtp.clone(),
                rtcp_feedback: feedback,
                ..codec.rtp_codec()
            },
            payload_type: f.pt,
        });
    }
    out
}

impl Peer {
    /// Can receive video only as H.264.
    fn h264_only(&self) -> bool {
        self.video_offered == [VideoCodec::H264]
    }

    /// The codec (lower-case MIME type) of payload type `pt` on this participant's section of `kind`, by its
    /// last negotiation; `None` for one it did not negotiate (its packets are not forwarded).
    pub(super) fn codec_of(&self, kind: RtpCodecKind, pt: u8) -> Option<String> {
        let outgoing = self.outgoing.lock().expect("peer lock");
        let types = outgoing
            .get(&kind)?
            .payload_types
            .lock()
            .expect("payload types lock");
        types
            .iter()
            .find(|(_, p)| **p == pt)
            .map(|(mime, _)| mime.clone())
    }
}

impl WebRtcSfu {
    /// Whether anyone in `room` can receive video only as H.264.
    fn room_needs_h264(&self, room: &str) -> bool {
        let rooms = self.state.lock().expect("rooms lock");
        rooms
            .rooms
            .get(room)
            .is_some_and(|peers| peers.iter().any(|p| p.h264_only()))
    }

    /// Applies the remote offer and orders the video codecs of the answer to come; returns that order.
    async fn apply_offer(&self, peer: &Arc<Peer>, offer: &str) -> Result<Vec<VideoCodec>, MediaError> {
        let desc = RTCSessionDescription::offer(offer.to_string())
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        peer.pc
            .set_remote_description(desc)
            .await
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let order = preferences(&peer.video_offered, self.room_needs_h264(&peer.room));
        if !order.is_empty() {
            prefer_video(&peer.pc, offer, &order).await?;
        }
        Ok(order)
    }

    async fn make_answer(&self, pc: &Arc<dyn PeerConnection>) -> Result<String, MediaError> {
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        pc.set_local_description(answer).await.map_err(engine_error)?;
        self.local_description(pc).await
    }

    /// A later offer on an existing connection (ICE restart, a codec change): the answer.
    pub(super) async fn negotiate_again(&self, peer: &Arc<Peer>, offer: &str) -> Result<String, MediaError> {
        self.apply_offer(peer, offer).await?;
        let answer = self.make_answer(&peer.pc).await?;
        for (kind, out) in peer.outgoing.lock().expect("peer lock").iter() {
            *out.payload_types.lock().expect("payload types lock") =
                payload_types(&answer, *kind, Section::First);
        }
        Ok(answer)
    }

    /// First negotiation: the offer, then one outgoing track per kind the offer carries in a codec the SFU
    /// forwards (Opus; VP8 or H.264), then the answer. A kind offered only in other codecs gets no track, and
    /// its section is refused: that browser joins without it.
    pub(super) async fn negotiate_first(&self, peer: &Arc<Peer>, offer: &str) -> Result<String, MediaError> {
        let order = self.apply_offer(peer, offer).await?;
        let mut senders = Vec::new();
        let audio = offer.contains("m=audio") && offer.to_ascii_lowercase().contains(" opus/48000");
        for (kind, video) in [
            (RtpCodecKind::Audio, audio.then_some(VideoCodec::Vp8)),
            (RtpCodecKind::Video, order.first().copied()),
        ] {
            // For audio the video codec is unused.
            let Some(video) = video else { continue };
            let (track, ssrc) = codecs::local_track(
                base_stream(&peer.room),
                format!("{kind}-{}", crate::ids::random_hex(4)),
                kind,
                video,
            );
            peer.pc.add_track(track.clone()).await.map_err(engine_error)?;
            senders.push((kind, track, ssrc));
        }
        let answer = self.make_answer(&peer.pc).await?;
        for (kind, track, ssrc) in senders {
            let types = payload_types(&answer, kind, Section::First);
            let out = Outgoing::new(track, ssrc, base_stream(&peer.room), kind, types);
            peer.outgoing.lock().expect("peer lock").insert(kind, out.clone());
            tokio::spawn(relay_feedback(
                out,
                peer.id.clone(),
                peer.room.clone(),
                Arc::downgrade(&self.state),
                self.metrics.clone(),
                crate::media::TrackSource::Camera,
            ));
        }
        if peer.h264_only() {
            // The others were answered VP8 first so far: they negotiate again, now with H.264 first.
            let others: Vec<Arc<Peer>> = {
                let rooms = self.state.lock().expect("rooms lock");
                let peers = rooms.rooms.get(&peer.room).cloned().unwrap_or_default();
                peers
                    .into_iter()
                    .filter(|p| {
                        p.id != peer.id && p.video_offered.contains(&VideoCodec::H264) && !p.h264_only()
                    })
                    .collect()
            };
            for other in others {
                (other.events)(MediaEvent::Renegotiate);
            }
        }
        Ok(answer)
    }
}

/// Which section of a kind [`payload_types`] reads.
#[derive(Clone, Copy)]
pub(super) enum Section {
    /// The participant's own (in the answer to its offer): what the browser expects on the first track.
    First,
    /// The last one the SFU added with an offer of its own: its own codec table's numbers, which the answer keeps.
    Last,
}

/// The payload type of each codec (lower-case MIME type) in one section of `kind` of an SDP.
pub(super) fn payload_types(sdp: &str, kind: RtpCodecKind, which: Section) -> HashMap<String, u8> {
    let mut sections: Vec<HashMap<String, u8>> = Vec::new();
    let mut inside = false;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            inside = media.starts_with(&format!("{kind} "));
            if inside {
                sections.push(HashMap::new());
            }
        } else if inside
            && let Some((pt, rest)) = line.strip_prefix("a=rtpmap:").and_then(|l| l.split_once(' '))
            && let Ok(pt) = pt.parse()
            && let Some(out) = sections.last_mut()
        {
            let name = rest.split('/').next().unwrap_or_default();
            out.entry(format!("{kind}/{name}").to_ascii_lowercase())
                .or_insert(pt);
        }
    }
    let pick = match which {
        Section::First => sections.into_iter().next(),
        Section::Last => sections.pop(),
    };
    pick.unwrap_or_default()
}

/// The `a=mid` of every video section of an SDP.
fn video_mids(sdp: &str) -> Vec<String> {
    let mut mids = Vec::new();
    let mut video = false;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            video = media.starts_with("video ");
        } else if let Some(mid) = line.strip_prefix("a=mid:")
            && video
        {
            mids.push(mid.trim().to_string());
        }
    }
    mids
}

/// Puts `order` (as the offer numbers it) on the video transceivers of the offer's sections.
async fn prefer_video(
    pc: &Arc<dyn PeerConnection>,
    offer: &str,
    order: &[VideoCodec],
) -> Result<(), MediaError> {
    let codecs = as_offered(offer, order);
    let mids = video_mids(offer);
    for transceiver in pc.get_transceivers().await {
        let video = transceiver
            .mid()
            .await
            .ok()
            .flatten()
            .is_some_and(|m| mids.contains(&m));
        if video {
            transceiver
                .set_codec_preferences(codecs.clone())
                .await
                .map_err(engine_error)?;
        }
    }
    Ok(())
}

/// The stream of the first audio and video tracks on a connection (from the answer to its first offer).
pub(super) fn base_stream(room: &str) -> String {
    format!("sfu-{room}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use VideoCodec::{H264, Vp8};

    #[test]
    fn vp8_first_unless_the_room_has_a_browser_without_it() {
        assert_eq!(preferences(&[Vp8, H264], false), [Vp8, H264]);
        assert_eq!(preferences(&[H264, Vp8], false), [Vp8, H264]);
        assert_eq!(preferences(&[Vp8], true), [Vp8]);
        assert_eq!(preferences(&[Vp8, H264], true), [H264, Vp8]);
        assert_eq!(preferences(&[H264], false), [H264]);
        assert!(preferences(&[], true).is_empty());
    }

    #[test]
    fn offered_codecs_are_read_from_rtpmap_lines() {
        let offer = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\na=rtpmap:96 H264/90000\r\na=rtpmap:97 rtx/90000\r\n\
                     a=rtpmap:98 H264/90000\r\na=rtpmap:99 rtx/90000\r\n\
                     a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n\
                     a=fmtp:97 apt=96\r\na=fmtp:98 packetization-mode=1;profile-level-id=42e01f\r\na=fmtp:99 apt=98\r\n";
        assert_eq!(offered(offer), [H264]);
        // Constrained Baseline, numbered as offered.
        let listed: Vec<(u8, String)> = as_offered(offer, &[H264, Vp8])
            .into_iter()
            .map(|c| (c.payload_type, c.rtp_codec.sdp_fmtp_line))
            .collect();
        assert_eq!(
            listed,
            [(98, "packetization-mode=1;profile-level-id=42e01f".to_string())]
        );
        let high_only = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n\
                         a=fmtp:96 packetization-mode=1;profile-level-id=640c1f\r\n";
        assert!(offered(high_only).is_empty(), "only Baseline is registered");
        assert!(offered("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n").is_empty());
    }

    #[test]
    fn video_sections_are_found_by_their_mid() {
        let offer = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n";
        assert_eq!(video_mids(offer), ["v", "2"]);
    }
}
