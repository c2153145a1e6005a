//! One simulated participant's WebRTC peer connection (the `webrtc` crate, no browser): it sends synthetic
//! VP8 (30 frames a second of 4 or 5 packets, ~1.5 Mbit/s on the wire, a keyframe every two seconds and when
//! asked by PLI/FIR) and Opus (50 packets a second), each payload stamped with stream, sequence number and
//! send time, and feeds what it receives into [`Streams`]. The same peer serves examroom (trickle ICE over the
//! chat socket), Janus (candidates inside the SDP) and the direct baseline pair.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use examroom::media::sfu::codecs;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};

use crate::stats::{Path, Stream, Streams, TRAILER_LEN, now_us, stamp};

/// Payload types we offer. We are the offerer on every connection we send on, and an answerer keeps the
/// offerer's numbers, so these are also the numbers we send with.
const PT_OPUS: u8 = 111;
const PT_VP8: u8 = 96;
const FPS: u64 = 30;
/// VP8 payload bytes per packet: 135 packets/s of this, plus RTP, SRTP, UDP and IP headers, is ~1.5 Mbit/s.
const VIDEO_PAYLOAD: usize = 1340;
/// A 20 ms Opus packet at ~48 kbit/s.
const AUDIO_PAYLOAD: usize = 120;
/// Frames between periodic keyframes (two seconds).
const KEYFRAME_INTERVAL: u32 = 60;

/// The address every peer binds (set once from the command line, before the first peer): loopback for
/// examroom; Janus never gathers on a loopback interface, so its runs use an address on a veth device of the
/// benchmark's network namespace, and our peers sit on the same one.
pub static BIND_IP: std::sync::OnceLock<std::net::IpAddr> = std::sync::OnceLock::new();

struct Handler {
    streams: Arc<Streams>,
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.candidates.send(init);
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let streams = self.streams.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    // RTP header (no extensions counted) plus payload: what the server forwarded.
                    streams.received(&p.payload, 12 + p.payload.len());
                }
            }
        });
    }
}

struct Sender {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    kind: RtpCodecKind,
    stream: u32,
    /// Set when a PLI or FIR for this track arrives: the next frame is a keyframe.
    keyframe_wanted: Arc<AtomicBool>,
}

pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    candidates: Option<mpsc::UnboundedReceiver<RTCIceCandidateInit>>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: watch::Receiver<bool>,
    senders: Vec<Sender>,
    streams: Arc<Streams>,
    tasks: Vec<JoinHandle<()>>,
}

impl Peer {
    /// A peer that receives whatever the other side sends and, with `send`, sends one audio and one video
    /// stream registered under that path.
    pub async fn new(streams: Arc<Streams>, send: Option<Path>) -> anyhow::Result<Peer> {
        let (media, registry) = codecs::table()?;
        let (ctx, crx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (gathered_tx, gathered) = watch::channel(false);
        let handler = Arc::new(Handler {
            streams: streams.clone(),
            candidates: ctx,
            state: state_tx,
            gathered: gathered_tx,
        });
        let ip = *BIND_IP.get_or_init(|| std::net::Ipv4Addr::LOCALHOST.into());
        // One host candidate, no mDNS: benchmarks run in a network namespace that has nothing else.
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(ip.is_loopback())
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(vec![std::net::SocketAddr::new(ip, 0)])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let mut senders = Vec::new();
        let kinds = match send {
            Some(_) => vec![RtpCodecKind::Audio, RtpCodecKind::Video],
            None => vec![],
        };
        for kind in kinds {
            let ssrc: u32 = rand::random();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("load-{ssrc}"),
                format!("load-{ssrc}-{kind}"),
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
            pc.add_track(track.clone()).await?;
            senders.push(Sender {
                track,
                ssrc,
                kind,
                stream: streams.register(send.expect("sending")),
                keyframe_wanted: Arc::new(AtomicBool::new(false)),
            });
        }
        Ok(Peer {
            pc,
            candidates: Some(crx),
            state,
            gathered,
            senders,
            streams,
            tasks: Vec::new(),
        })
    }

    /// Local ICE candidates as they are gathered (trickle ICE); taken once.
    pub fn take_candidates(&mut self) -> mpsc::UnboundedReceiver<RTCIceCandidateInit> {
        self.candidates.take().expect("candidates taken once")
    }

    pub async fn offer(&self) -> anyhow::Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer.clone()).await?;
        Ok(offer.sdp)
    }

    /// The local description once gathering is complete: every candidate inside, for peers that do not
    /// trickle (Janus over plain HTTP here, and the baseline pair).
    async fn gathered_description(&self) -> anyhow::Result<String> {
        let mut gathered = self.gathered.clone();
        tokio::time::timeout(Duration::from_secs(10), gathered.wait_for(|g| *g))
            .await
            .context("ICE gathering timed out")??;
        Ok(self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))?
            .sdp)
    }

    pub async fn offer_gathered(&self) -> anyhow::Result<String> {
        self.offer().await?;
        self.gathered_description().await
    }

    pub async fn answered(&self, sdp: &str) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp.to_string())?)
            .await?;
        Ok(())
    }

    /// Answers a remote offer; the answer carries all our candidates.
    pub async fn answer_gathered(&self, offer: &str) -> anyhow::Result<String> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.to_string())?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.gathered_description().await
    }

    pub async fn add_candidate(&self, c: RTCIceCandidateInit) {
        let _ = self.pc.add_ice_candidate(c).await;
    }

    pub fn connected(&self) -> bool {
        *self.state.borrow() == RTCPeerConnectionState::Connected
    }

    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut state = self.state.clone();
        let waited = tokio::time::timeout(
            timeout,
            state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected | RTCPeerConnectionState::Failed
                )
            }),
        )
        .await;
        match waited {
            Ok(Ok(s)) if *s == RTCPeerConnectionState::Connected => Ok(()),
            Ok(Ok(s)) => bail!("peer connection {}", *s),
            _ => bail!("peer connection not connected within {timeout:?}"),
        }
    }

    /// Starts the media: a paced sender per track, and a reader of the RTCP the interceptors hand over.
    pub fn start_sending(&mut self) {
        for s in &self.senders {
            let (track, wanted) = (s.track.clone(), s.keyframe_wanted.clone());
            self.tasks.push(tokio::spawn(async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
                    if examroom::media::sfu::wants_keyframe(&packets) {
                        wanted.store(true, Ordering::Relaxed);
                    }
                }
            }));
            let task = if s.kind == RtpCodecKind::Video {
                tokio::spawn(send_video(
                    s.track.clone(),
                    s.ssrc,
                    self.streams.clone(),
                    s.stream,
                    s.keyframe_wanted.clone(),
                ))
            } else {
                tokio::spawn(send_audio(
                    s.track.clone(),
                    s.ssrc,
                    self.streams.clone(),
                    s.stream,
                ))
            };
            self.tasks.push(task);
        }
    }

    pub async fn close(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let _ = self.pc.close().await;
    }
}

/// A ticker at a random phase: real clients' frames are not synchronised, and peers that all fire together
/// would measure our own bursts instead of the server.
async fn staggered(period: Duration) -> tokio::time::Interval {
    tokio::time::sleep(period.mul_f64(rand::random::<f64>())).await;
    let mut ticker = tokio::time::interval(period);
    // A camera that falls behind drops frames; catching up in a burst would measure our own burst instead.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticker
}

fn packet(pt: u8, ssrc: u32, seq: u16, timestamp: u32, marker: bool, payload: Vec<u8>) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

/// 30 frames a second, sent as a burst of 4 or 5 packets each the way an encoder emits them. Every packet
/// starts with a VP8 payload descriptor (extended, 15-bit PictureID; S set on the first packet of a frame);
/// the first packet carries the VP8 frame tag and, on keyframes, the start code and a 640x360 size, so the
/// recorder's depacketizer and Janus's keyframe detection see what a browser would send.
async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    streams: Arc<Streams>,
    stream_id: u32,
    keyframe_wanted: Arc<AtomicBool>,
) {
    let stream = streams.handle(stream_id);
    let mut tick = staggered(Duration::from_micros(1_000_000 / FPS)).await;
    let (mut rtp_seq, ts0): (u16, u32) = (rand::random(), rand::random());
    let mut seq: u32 = 0;
    for frame in 0u32.. {
        tick.tick().await;
        let key = frame % KEYFRAME_INTERVAL == 0 || keyframe_wanted.swap(false, Ordering::Relaxed);
        let picture_id = (frame & 0x7FFF) as u16;
        let packets = if frame % 2 == 0 { 4 } else { 5 };
        let timestamp = ts0.wrapping_add(frame.wrapping_mul((90_000 / FPS) as u32));
        for i in 0..packets {
            let mut payload = vec![0x5A; VIDEO_PAYLOAD];
            payload[..4].copy_from_slice(&[
                if i == 0 { 0x90 } else { 0x80 },
                0x80,
                0x80 | (picture_id >> 8) as u8,
                picture_id as u8,
            ]);
            if i == 0 {
                // Frame tag: key/inter bit, version 0, shown, first partition of 1000 bytes.
                payload[4..7].copy_from_slice(&[if key { 0x10 } else { 0x11 }, 0x7D, 0x00]);
                if key {
                    payload[7..14].copy_from_slice(&[0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01]);
                }
            }
            send_one(
                &track,
                &streams,
                &stream,
                stream_id,
                seq,
                |payload| packet(PT_VP8, ssrc, rtp_seq, timestamp, i == packets - 1, payload),
                payload,
            )
            .await;
            seq += 1;
            rtp_seq = rtp_seq.wrapping_add(1);
        }
    }
}

/// 50 packets a second of 20 ms Opus (a CELT fullband TOC byte, then filler).
async fn send_audio(track: Arc<TrackLocalStaticRTP>, ssrc: u32, streams: Arc<Streams>, stream_id: u32) {
    let stream = streams.handle(stream_id);
    let mut tick = staggered(Duration::from_millis(20)).await;
    let (mut rtp_seq, ts0): (u16, u32) = (rand::random(), rand::random());
    for seq in 0u32.. {
        tick.tick().await;
        let mut payload = vec![0xA5; AUDIO_PAYLOAD];
        payload[0] = 0xFC;
        let timestamp = ts0.wrapping_add(seq.wrapping_mul(960));
        send_one(
            &track,
            &streams,
            &stream,
            stream_id,
            seq,
            |payload| packet(PT_OPUS, ssrc, rtp_seq, timestamp, false, payload),
            payload,
        )
        .await;
        rtp_seq = rtp_seq.wrapping_add(1);
    }
}

/// Stamps the payload with the send time at the last moment, counts it, writes it.
async fn send_one(
    track: &TrackLocalStaticRTP,
    streams: &Streams,
    stream: &Stream,
    stream_id: u32,
    seq: u32,
    build: impl FnOnce(Vec<u8>) -> rtp::Packet,
    mut payload: Vec<u8>,
) {
    debug_assert!(payload.len() > TRAILER_LEN + 14);
    let now = now_us();
    stamp(&mut payload, stream_id, seq, now);
    streams.sent(stream, now);
    let _ = track.write_rtp(build(payload)).await;
}
