//! One simulated participant (the shared headless peer, [`examroom::media::client::ClientPeer`]): it sends
//! synthetic VP8 (30 frames a second of 4 or 5 packets, ~1.5 Mbit/s on the wire, a keyframe every two seconds and
//! when asked by PLI/FIR) and Opus (50 packets a second), each payload stamped with stream, sequence number and
//! send time, and feeds what it receives into [`Streams`]. The same peer serves examroom (trickle ICE over the
//! chat socket), Janus (candidates inside the SDP) and the direct baseline pair.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use examroom::media::client::{ClientPeer, OnRtp};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCIceCandidateInit;

use crate::stats::{Path, Stream, Streams, TRAILER_LEN, now_us, stamp};

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

pub struct Peer {
    peer: Arc<ClientPeer>,
    /// The stream id each sender is registered under, and whether a PLI/FIR asked it for a keyframe.
    streams_of: Vec<(u32, Arc<AtomicBool>)>,
    streams: Arc<Streams>,
    tasks: Vec<JoinHandle<()>>,
}

impl Peer {
    /// A peer that receives whatever the other side sends and, with `send`, sends one audio and one video
    /// stream registered under that path.
    pub async fn new(streams: Arc<Streams>, send: Option<Path>) -> anyhow::Result<Peer> {
        let received = streams.clone();
        // RTP header (no extensions counted) plus payload: what the server forwarded.
        let on_rtp: OnRtp =
            Arc::new(move |_, p: &rtp::Packet| received.received(&p.payload, 12 + p.payload.len()));
        let ip = *BIND_IP.get_or_init(|| std::net::Ipv4Addr::LOCALHOST.into());
        let name = format!("load-{}", rand::random::<u32>());
        let peer = ClientPeer::new(ip, &name, send.is_some(), on_rtp).await?;
        let streams_of = send
            .map(|path| {
                peer.senders
                    .iter()
                    .map(|_| (streams.register(path), Arc::new(AtomicBool::new(false))))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Peer {
            peer: Arc::new(peer),
            streams_of,
            streams,
            tasks: Vec::new(),
        })
    }

    /// Local ICE candidates as they are gathered (trickle ICE); taken once.
    pub fn take_candidates(&mut self) -> mpsc::UnboundedReceiver<RTCIceCandidateInit> {
        Arc::get_mut(&mut self.peer)
            .expect("before sending starts")
            .take_candidates()
    }

    pub async fn offer(&self) -> anyhow::Result<String> {
        Ok(self.peer.offer().await?)
    }

    pub async fn offer_gathered(&self) -> anyhow::Result<String> {
        Ok(self.peer.offer_gathered().await?)
    }

    pub async fn answered(&mut self, sdp: &str) -> anyhow::Result<()> {
        Ok(Arc::get_mut(&mut self.peer)
            .expect("before sending starts")
            .answered(sdp)
            .await?)
    }

    /// Answers a remote offer; the answer carries all our candidates.
    pub async fn answer_gathered(&self, offer: &str) -> anyhow::Result<String> {
        Ok(self.peer.answer_gathered(offer).await?)
    }

    pub async fn add_candidate(&self, c: RTCIceCandidateInit) {
        self.peer.add_candidate(c).await;
    }

    pub fn connected(&self) -> bool {
        self.peer.connected()
    }

    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        Ok(self.peer.wait_connected(timeout).await?)
    }

    /// Starts the media: a paced sender per track, and a reader of the RTCP the interceptors hand over.
    pub fn start_sending(&mut self) {
        let wanted: Vec<Arc<AtomicBool>> = self.streams_of.iter().map(|(_, w)| w.clone()).collect();
        self.tasks.extend(
            self.peer
                .on_keyframe_request(Arc::new(move |i| wanted[i].store(true, Ordering::Relaxed))),
        );
        for (i, (stream, keyframe_wanted)) in self.streams_of.iter().enumerate() {
            let (peer, streams) = (self.peer.clone(), self.streams.clone());
            let task = if self.peer.senders[i].kind == RtpCodecKind::Video {
                tokio::spawn(send_video(peer, i, streams, *stream, keyframe_wanted.clone()))
            } else {
                tokio::spawn(send_audio(peer, i, streams, *stream))
            };
            self.tasks.push(task);
        }
    }

    pub async fn close(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.peer.close().await;
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

/// A packet without payload type and SSRC (the peer's sender fills both in).
fn packet(seq: u16, timestamp: u32, marker: bool, payload: Vec<u8>) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            sequence_number: seq,
            timestamp,
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
    peer: Arc<ClientPeer>,
    index: usize,
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
                (&peer, index),
                &streams,
                &stream,
                stream_id,
                seq,
                |payload| packet(rtp_seq, timestamp, i == packets - 1, payload),
                payload,
            )
            .await;
            seq += 1;
            rtp_seq = rtp_seq.wrapping_add(1);
        }
    }
}

/// 50 packets a second of 20 ms Opus (a CELT fullband TOC byte, then filler).
async fn send_audio(peer: Arc<ClientPeer>, index: usize, streams: Arc<Streams>, stream_id: u32) {
    let stream = streams.handle(stream_id);
    let mut tick = staggered(Duration::from_millis(20)).await;
    let (mut rtp_seq, ts0): (u16, u32) = (rand::random(), rand::random());
    for seq in 0u32.. {
        tick.tick().await;
        let mut payload = vec![0xA5; AUDIO_PAYLOAD];
        payload[0] = 0xFC;
        let timestamp = ts0.wrapping_add(seq.wrapping_mul(960));
        send_one(
            (&peer, index),
            &streams,
            &stream,
            stream_id,
            seq,
            |payload| packet(rtp_seq, timestamp, false, payload),
            payload,
        )
        .await;
        rtp_seq = rtp_seq.wrapping_add(1);
    }
}

/// Stamps the payload with the send time at the last moment, counts it, writes it.
async fn send_one(
    (peer, index): (&ClientPeer, usize),
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
    peer.write(index, build(payload)).await;
}
