//! A headless WebRTC participant (the `webrtc` crate, no browser): the one peer the integration tests and the
//! media load tool drive against our SFU (and Janus). It sends on one Opus and one video track (VP8, or H.264
//! when told to stand in for a browser without VP8) negotiated from the SFU's own codec table, hands out what
//! it gathers and receives through channels, and reports each received RTP packet and each keyframe request to
//! its caller; what to send and what to count stays with the caller.
//! The broker itself never uses it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
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

use super::MediaError;
use super::sfu::codecs::{self, VideoCodec};
use super::sfu::{engine_error, wants_keyframe};

/// Called for every RTP packet received, with the kind of the track it came on.
pub type OnRtp = Arc<dyn Fn(RtpCodecKind, &rtp::Packet) + Send + Sync>;

/// One track this peer sends on. `payload_type` is the codec table's number until an answer says otherwise.
#[derive(Clone)]
pub struct LocalTrack {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub kind: RtpCodecKind,
    pub payload_type: u8,
}

struct Handler {
    on_rtp: OnRtp,
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: watch::Sender<bool>,
    remote_video: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
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
        let kind = track.kind().await;
        if kind == RtpCodecKind::Video {
            let _ = self.remote_video.send(track.clone());
        }
        let on_rtp = self.on_rtp.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    on_rtp(kind, &p);
                }
            }
        });
    }
}

pub struct ClientPeer {
    pub pc: Arc<dyn PeerConnection>,
    /// Audio then video; empty for a peer that only receives.
    pub senders: Vec<LocalTrack>,
    candidates: Option<mpsc::UnboundedReceiver<RTCIceCandidateInit>>,
    remote_video: Option<mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: watch::Receiver<bool>,
}

impl ClientPeer {
    /// A peer on `bind` (one host candidate, no mDNS: tests and benchmarks run where nothing else is reachable);
    /// with `send`, it adds an audio and a video track labelled `name`.
    pub async fn new(bind: IpAddr, name: &str, send: bool, on_rtp: OnRtp) -> Result<ClientPeer, MediaError> {
        Self::with_video_codecs(bind, name, send, on_rtp, &VideoCodec::ALL).await
    }

    /// [`Self::new`] offering only the `video` codecs (the first is the one its track is made for), like a
    /// browser without VP8.
    pub async fn with_video_codecs(
        bind: IpAddr,
        name: &str,
        send: bool,
        on_rtp: OnRtp,
        video: &[VideoCodec],
    ) -> Result<ClientPeer, MediaError> {
        let (media, registry) = codecs::table_with(None, video)?;
        let (ctx, candidates) = mpsc::unbounded_channel();
        let (vtx, remote_video) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (gathered_tx, gathered) = watch::channel(false);
        let handler = Arc::new(Handler {
            on_rtp,
            candidates: ctx,
            state: state_tx,
            gathered: gathered_tx,
            remote_video: vtx,
        });
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(bind.is_loopback())
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(vec![std::net::SocketAddr::new(bind, 0)])
            .build()
            .await
            .map_err(engine_error)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let mut senders = Vec::new();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video]
            .into_iter()
            .filter(|_| send)
        {
            let first = video.first().copied().unwrap_or(VideoCodec::Vp8);
            let (track, ssrc) =
                codecs::local_track(format!("{name}-stream"), format!("{name}-{kind}"), kind, first);
            pc.add_track(track.clone()).await.map_err(engine_error)?;
            let payload_type = match kind {
                RtpCodecKind::Video => first.payload_type(),
                _ => codecs::payload_type(kind),
            };
            senders.push(LocalTrack {
                track,
                ssrc,
                kind,
                payload_type,
            });
        }
        // Like a browser, offer every video codec it has, not just the one its track was made for.
        for transceiver in pc.get_transceivers().await {
            let Ok(Some(sender)) = transceiver.sender().await else {
                continue;
            };
            if sender.track().track().await.kind() == RtpCodecKind::Video {
                let codecs = video.iter().map(|c| c.parameters()).collect();
                transceiver
                    .set_codec_preferences(codecs)
                    .await
                    .map_err(engine_error)?;
            }
        }
        Ok(ClientPeer {
            pc,
            senders,
            candidates: Some(candidates),
            remote_video: Some(remote_video),
            state,
            gathered,
        })
    }

    /// Local ICE candidates as they are gathered (trickle ICE); taken once.
    pub fn take_candidates(&mut self) -> mpsc::UnboundedReceiver<RTCIceCandidateInit> {
        self.candidates.take().expect("candidates taken once")
    }

    /// Remote video tracks as they arrive (to send keyframe requests on); taken once.
    pub fn take_remote_video(&mut self) -> mpsc::UnboundedReceiver<Arc<dyn TrackRemote>> {
        self.remote_video.take().expect("remote video taken once")
    }

    pub async fn offer(&self) -> Result<String, MediaError> {
        let offer = self.pc.create_offer(None).await.map_err(engine_error)?;
        self.pc
            .set_local_description(offer.clone())
            .await
            .map_err(engine_error)?;
        Ok(offer.sdp)
    }

    /// An offer carrying every candidate, for a server that does not trickle (Janus over plain HTTP).
    pub async fn offer_gathered(&self) -> Result<String, MediaError> {
        self.offer().await?;
        self.gathered_description().await
    }

    /// ICE restart (a changed network): a new offer on the same connection.
    pub async fn restart_offer(&self) -> Result<String, MediaError> {
        self.pc.restart_ice().await.map_err(engine_error)?;
        self.offer().await
    }

    /// Applies an answer and learns the payload types it negotiated for our tracks: each sends the first codec
    /// the answer's section of its kind names, as a browser does (the answer keeps our numbers).
    pub async fn answered(&mut self, sdp: &str) -> Result<(), MediaError> {
        let answer = RTCSessionDescription::answer(sdp.to_string()).map_err(engine_error)?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(engine_error)?;
        for local in self.senders.iter_mut() {
            let section = format!("m={} ", local.kind).to_ascii_lowercase();
            let first = sdp
                .lines()
                .find(|l| l.starts_with(&section))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|pt| pt.parse().ok());
            if let Some(pt) = first {
                local.payload_type = pt;
            }
        }
        Ok(())
    }

    /// The MIME type of the codec a sender of `kind` sends (after [`Self::answered`]).
    pub async fn sending(&self, kind: RtpCodecKind) -> Option<String> {
        let local = self.senders.iter().find(|l| l.kind == kind)?;
        for s in self.pc.get_senders().await {
            if let Ok(params) = s.get_parameters().await
                && let Some(c) = params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| c.payload_type == local.payload_type)
            {
                return Some(c.rtp_codec.mime_type.clone());
            }
        }
        None
    }

    /// Answers a remote offer; the answer carries all our candidates.
    pub async fn answer_gathered(&self, offer: &str) -> Result<String, MediaError> {
        let offer = RTCSessionDescription::offer(offer.to_string()).map_err(engine_error)?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(engine_error)?;
        let answer = self.pc.create_answer(None).await.map_err(engine_error)?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(engine_error)?;
        self.gathered_description().await
    }

    async fn gathered_description(&self) -> Result<String, MediaError> {
        let mut gathered = self.gathered.clone();
        tokio::time::timeout(Duration::from_secs(10), gathered.wait_for(|g| *g))
            .await
            .map_err(|_| MediaError::Engine("ICE gathering timed out".into()))?
            .map_err(engine_error)?;
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or(MediaError::Engine("no local description".into()))
    }

    /// A remote candidate; one the engine rejects is ignored, as a browser would.
    pub async fn add_candidate(&self, c: RTCIceCandidateInit) {
        let _ = self.pc.add_ice_candidate(c).await;
    }

    pub fn connected(&self) -> bool {
        *self.state.borrow() == RTCPeerConnectionState::Connected
    }

    /// Waits until connected; an error names the state it ended in instead.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), MediaError> {
        let mut state = self.state.clone();
        let done = |s: &RTCPeerConnectionState| {
            matches!(
                s,
                RTCPeerConnectionState::Connected | RTCPeerConnectionState::Failed
            )
        };
        match tokio::time::timeout(timeout, state.wait_for(done)).await {
            Ok(Ok(s)) if *s == RTCPeerConnectionState::Connected => Ok(()),
            Ok(Ok(s)) => Err(MediaError::Engine(format!("peer connection {}", *s))),
            _ => Err(MediaError::Engine(format!("not connected within {timeout:?}"))),
        }
    }

    /// Watches the RTCP the other side sends about our tracks and calls `on_request` with the track's index in
    /// [`Self::senders`] for every keyframe request (PLI or FIR). The tasks end with the connection.
    pub fn on_keyframe_request(&self, on_request: Arc<dyn Fn(usize) + Send + Sync>) -> Vec<JoinHandle<()>> {
        self.senders
            .iter()
            .enumerate()
            .map(|(i, local)| {
                let (track, on_request) = (local.track.clone(), on_request.clone());
                tokio::spawn(async move {
                    while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
                        if wants_keyframe(&packets) {
                            on_request(i);
                        }
                    }
                })
            })
            .collect()
    }

    /// Writes one packet on a sender (payload type and SSRC are the track's).
    pub async fn write(&self, index: usize, mut packet: rtp::Packet) {
        let local = &self.senders[index];
        packet.header.payload_type = local.payload_type;
        packet.header.ssrc = local.ssrc;
        let _ = local.track.write_rtp(packet).await;
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}
