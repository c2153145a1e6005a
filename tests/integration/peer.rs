//! An in-process WebRTC participant (the `webrtc` crate, no browser) for SFU tests: sends synthetic audio and
//! video RTP whose payload names the sender, counts what it receives, and counts keyframe requests (PLI/FIR)
//! that reach its senders.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use examroom::media::sfu::codecs;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
    SettingEngineBuilder,
};

#[derive(Default)]
pub struct Counters {
    pub video_received: AtomicU64,
    pub audio_received: AtomicU64,
    /// Received packets whose payload did not start with the expected sender tag.
    pub foreign: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub connected: AtomicU64,
}

struct Handler {
    counters: Arc<Counters>,
    expect_from: Vec<u8>,
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    remote_video: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.candidates.send(init);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.counters.connected.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        if kind == RtpCodecKind::Video {
            let _ = self.remote_video.send(track.clone());
        }
        let (counters, tag) = (self.counters.clone(), self.expect_from.clone());
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    if !p.payload[2..].starts_with(&tag) {
                        counters.foreign.fetch_add(1, Ordering::Relaxed);
                    }
                    let c = if kind == RtpCodecKind::Video {
                        &counters.video_received
                    } else {
                        &counters.audio_received
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

pub struct ClientPeer {
    pub pc: Arc<dyn PeerConnection>,
    pub counters: Arc<Counters>,
    pub candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    remote_video: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
    remote_video_track: Option<Arc<dyn TrackRemote>>,
    senders: Vec<(Arc<TrackLocalStaticRTP>, u32, u8, RtpCodecKind)>,
    tag: Vec<u8>,
}

impl ClientPeer {
    /// A peer tagging its packets with `tag` and expecting the other side's `expect_from`.
    pub async fn new(tag: &str, expect_from: &str) -> ClientPeer {
        // The SFU's own table (with its keyframe-request marker, so requests reach this peer's senders).
        let (media, registry) = codecs::table().unwrap();
        let counters = Arc::new(Counters::default());
        let (ctx, crx) = mpsc::unbounded_channel();
        let (vtx, vrx) = mpsc::unbounded_channel();
        let handler = Arc::new(Handler {
            counters: counters.clone(),
            expect_from: expect_from.as_bytes().to_vec(),
            candidates: ctx,
            remote_video: vtx,
        });
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(true)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .unwrap();
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let mut senders = Vec::new();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let ssrc: u32 = rand::random();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("{tag}-stream"),
                format!("{tag}-{kind}"),
                format!("{kind}"),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codecs::codec(kind),
                    ..Default::default()
                }],
            )));
            pc.add_track(track.clone()).await.unwrap();
            senders.push((track, ssrc, 0, kind));
        }
        ClientPeer {
            pc,
            counters,
            candidates: crx,
            remote_video: vrx,
            remote_video_track: None,
            senders,
            tag: tag.as_bytes().to_vec(),
        }
    }

    pub async fn offer(&self) -> String {
        let offer = self.pc.create_offer(None).await.unwrap();
        self.pc.set_local_description(offer.clone()).await.unwrap();
        offer.sdp
    }

    /// Applies the SFU's answer, learns the negotiated payload types, and starts counting keyframe requests.
    pub async fn answered(&mut self, sdp: &str) {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp.to_string()).unwrap())
            .await
            .unwrap();
        let transceivers = self.pc.get_senders().await;
        for (track, _, pt, kind) in self.senders.iter_mut() {
            let mime = codecs::codec(*kind).mime_type.to_ascii_lowercase();
            for s in &transceivers {
                if let Ok(params) = s.get_parameters().await
                    && let Some(c) = params
                        .rtp_parameters
                        .codecs
                        .iter()
                        .find(|c| c.rtp_codec.mime_type.to_ascii_lowercase() == mime)
                {
                    *pt = c.payload_type;
                }
            }
            let (track, counters) = (track.clone(), self.counters.clone());
            tokio::spawn(async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
                    if packets
                        .iter()
                        .any(|p| p.as_any().downcast_ref::<PictureLossIndication>().is_some())
                    {
                        counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }

    /// ICE restart (a changed network): a new offer on the same connection, answered by the SFU.
    pub async fn restart_offer(&self) -> String {
        self.pc.restart_ice().await.unwrap();
        self.offer().await
    }

    pub async fn reanswered(&self, sdp: &str) {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp.to_string()).unwrap())
            .await
            .unwrap();
    }

    pub async fn add_candidate(&self, c: RTCIceCandidateInit) {
        let _ = self.pc.add_ice_candidate(c).await;
    }

    /// One audio and one video packet. Video payloads are shaped like VP8 (a payload descriptor starting a
    /// frame, then a frame tag that marks every tenth frame a keyframe) so the recorder accepts them; both
    /// carry this peer's tag right after, so receivers can tell whose media they got.
    pub async fn send(&self, seq: u16) {
        for (track, ssrc, pt, kind) in &self.senders {
            let mut payload = if *kind == RtpCodecKind::Video {
                vec![0x10, if seq.is_multiple_of(10) { 0x10 } else { 0x11 }]
            } else {
                vec![0xFC, 0xFF]
            };
            payload.extend_from_slice(&self.tag);
            payload.resize(if *kind == RtpCodecKind::Video { 1000 } else { 120 }, 7);
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: true,
                    payload_type: *pt,
                    sequence_number: seq,
                    // 30 packets a second on either clock.
                    timestamp: seq as u32 * if *kind == RtpCodecKind::Video { 3000 } else { 1600 },
                    ssrc: *ssrc,
                    ..Default::default()
                },
                payload: payload.into(),
            };
            let _ = track.write_rtp(packet).await;
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
