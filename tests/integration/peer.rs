//! The in-process WebRTC participant of the SFU tests: [`examroom::media::client::ClientPeer`] (shared with the
//! media load tool) sending synthetic audio and video whose payload names the sender, counting what it receives
//! and the keyframe requests (PLI/FIR) that reach its senders.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use examroom::media::client;
use examroom::media::sfu::codecs::VideoCodec;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit};

#[derive(Default)]
pub struct Counters {
    pub video_received: AtomicU64,
    pub audio_received: AtomicU64,
    /// Received packets whose payload did not start with the expected sender tag.
    pub foreign: AtomicU64,
    pub keyframe_requests: AtomicU64,
    /// The payload type of the last video packet received.
    pub video_payload_type: AtomicU64,
    /// Video packets received by the sender's tag (its first two bytes), and the SSRCs they came on.
    pub video_from: std::sync::Mutex<std::collections::HashMap<[u8; 2], u64>>,
    pub video_ssrcs: std::sync::Mutex<std::collections::HashMap<[u8; 2], std::collections::HashSet<u32>>>,
}

pub struct ClientPeer {
    peer: client::ClientPeer,
    pub pc: Arc<dyn PeerConnection>,
    pub counters: Arc<Counters>,
    pub candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    remote_video: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
    remote_video_track: Option<Arc<dyn TrackRemote>>,
    tag: Vec<u8>,
}

impl ClientPeer {
    /// A peer on loopback tagging its packets with `tag` and expecting the other side's `expect_from`.
    pub async fn new(tag: &str, expect_from: &str) -> ClientPeer {
        Self::with_video(tag, expect_from, &VideoCodec::ALL).await
    }

    /// [`Self::new`] offering only the `video` codecs (a browser without VP8).
    pub async fn with_video(tag: &str, expect_from: &str, video: &[VideoCodec]) -> ClientPeer {
        let counters = Arc::new(Counters::default());
        let (c, expected) = (counters.clone(), expect_from.as_bytes().to_vec());
        let on_rtp: client::OnRtp = Arc::new(move |kind, p: &rtp::Packet| {
            if !p.payload[2..].starts_with(&expected) {
                c.foreign.fetch_add(1, Ordering::Relaxed);
            }
            if kind == RtpCodecKind::Video {
                c.video_payload_type
                    .store(p.header.payload_type as u64, Ordering::Relaxed);
                if p.payload.len() >= 4 {
                    let tag = [p.payload[2], p.payload[3]];
                    *c.video_from.lock().unwrap().entry(tag).or_default() += 1;
                    c.video_ssrcs
                        .lock()
                        .unwrap()
                        .entry(tag)
                        .or_default()
                        .insert(p.header.ssrc);
                }
            }
            let n = if kind == RtpCodecKind::Video {
                &c.video_received
            } else {
                &c.audio_received
            };
            n.fetch_add(1, Ordering::Relaxed);
        });
        let mut peer = client::ClientPeer::with_video_codecs(
            std::net::Ipv4Addr::LOCALHOST.into(),
            tag,
            true,
            on_rtp,
            video,
        )
        .await
        .unwrap();
        let c = counters.clone();
        // The tasks end with the connection.
        drop(peer.on_keyframe_request(Arc::new(move |_| {
            c.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        })));
        ClientPeer {
            pc: peer.pc.clone(),
            candidates: peer.take_candidates(),
            remote_video: peer.take_remote_video(),
            peer,
            counters,
            remote_video_track: None,
            tag: tag.as_bytes().to_vec(),
        }
    }

    pub fn connected(&self) -> bool {
        self.peer.connected()
    }

    pub async fn offer(&self) -> String {
        self.peer.offer().await.unwrap()
    }

    /// Answers the SFU's own offer (more tracks, a screen).
    pub async fn answer_server(&self, offer: &str) -> String {
        self.peer.answer_gathered(offer).await.unwrap()
    }

    /// Applies the SFU's answer (and learns the negotiated payload types).
    pub async fn answered(&mut self, sdp: &str) {
        self.peer.answered(sdp).await.unwrap();
    }

    /// ICE restart (a changed network): a new offer on the same connection, answered by the SFU.
    pub async fn restart_offer(&self) -> String {
        self.peer.restart_offer().await.unwrap()
    }

    pub async fn reanswered(&mut self, sdp: &str) {
        self.peer.answered(sdp).await.unwrap();
    }

    /// The MIME type of the video this peer sends (the first codec of the last answer).
    pub async fn sending_video(&self) -> String {
        self.peer.sending(RtpCodecKind::Video).await.unwrap_or_default()
    }

    pub async fn add_candidate(&self, c: RTCIceCandidateInit) {
        self.peer.add_candidate(c).await;
    }

    /// One audio and one video packet. Video payloads are shaped like VP8 (a payload descriptor starting a
    /// frame, then a frame tag that marks every tenth frame a keyframe) so the recorder accepts them; both
    /// carry this peer's tag right after, so receivers can tell whose media they got.
    pub async fn send(&self, seq: u16) {
        for (i, local) in self.peer.senders.iter().enumerate() {
            let video = local.kind == RtpCodecKind::Video;
            let mut payload = if video {
                vec![0x10, if seq.is_multiple_of(10) { 0x10 } else { 0x11 }]
            } else {
                vec![0xFC, 0xFF]
            };
            payload.extend_from_slice(&self.tag);
            payload.resize(if video { 1000 } else { 120 }, 7);
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: true,
                    sequence_number: seq,
                    // 30 packets a second on either clock.
                    timestamp: seq as u32 * if video { 3000 } else { 1600 },
                    ..Default::default()
                },
                payload: payload.into(),
            };
            self.peer.write(i, packet).await;
        }
    }

    /// Asks the sender of the video this peer receives for a keyframe.
    pub async fn request_keyframe(&mut self) {
        if self.remote_video_track.is_none() {
            self.remote_video_track = self.remote_video.recv().await;
        }
        let track = self.remote_video_track.clone().unwrap();
        let ssrc = track.ssrcs().await.first().copied().unwrap();
        let pli: Vec<Box<dyn rtcp::Packet>> = vec![Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        })];
        track.write_rtcp(pli).await.unwrap();
    }

    pub fn count(&self, c: fn(&Counters) -> &AtomicU64) -> u64 {
        c(&self.counters).load(Ordering::Relaxed)
    }
}
