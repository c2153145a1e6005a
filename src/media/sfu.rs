//! [`MediaEngine`] on the `webrtc` crate. Each participant's peer connection gets, before its answer is made,
//! one outgoing track per kind it offers in Opus, VP8 or H.264 (`negotiate`), carrying another participant's
//! media; from a third participant on, the SFU adds a pair per other participant with offers of its own
//! (`offers`), each track bound to one sender at its first packet and freed when it leaves. Every incoming RTP
//! packet is rewritten (SSRC, payload type, the sender's header extensions dropped) onto those tracks
//! (`forward`), video skipped for a viewer on audio only (`bandwidth`), and stamped
//! for TWCC on its way out. A PLI or FIR a viewer sends on an outgoing track is relayed at once to the sender
//! of the media it carries: no periodic keyframes. Incoming tracks are keyed by what they carry (microphone,
//! camera, or a screen capture the offer named): a screen capture goes to the recorder, and to the others only
//! while shared, on a track the SFU adds to their connections with an offer of its own (`offers`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, SettingEngineBuilder,
};

mod bandwidth;
pub mod codecs;
mod forward;
mod keyframes;
mod negotiate;
mod offers;

use forward::forward;

use keyframes::request_keyframe;
pub use keyframes::{KEYFRAME_REQUEST_SLOT, KeyframeRequests, wants_keyframe};

use super::announce::{self, AnnouncedAddrs};
use super::rewrite::Rewriter;
use super::{
    ConnectionState, EventSink, IceCandidate, MediaEngine, MediaError, MediaEvent, MediaTap, Offer,
    ParticipantId, TrackSource, sdp,
};
use crate::config::MediaConfig;
use crate::telemetry::MediaMetrics;

const MIME_OPUS: &str = "audio/opus";
const MIME_VP8: &str = "video/VP8";
const MIME_H264: &str = "video/H264";

type Downlink = Arc<bandwidth::Downlink>;

pub(super) fn engine_error(e: impl std::fmt::Display) -> MediaError {
    MediaError::Engine(e.to_string())
}

/// An outgoing track on one participant's connection, and how packets must look on it.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    /// Its `a=msid` stream: an audio and a video track share one (a client shows them as one tile).
    stream: String,
    /// Negotiated payload type by lower-case MIME type (renewed by each negotiation).
    payload_types: Mutex<HashMap<String, u8>>,
    /// Keeps numbering continuous when the source behind this track changes.
    rewriter: Mutex<Rewriter>,
}

/// The outgoing track of a shared screen on a viewer's connection, and its sender (to remove it after).
type ScreenOut = (Arc<Outgoing>, Arc<dyn webrtc::rtp_transceiver::RtpSender>);

/// An incoming track: what a relayed keyframe request is addressed to.
struct Incoming {
    track: Arc<dyn TrackRemote>,
    ssrc: u32,
    /// Its `a=msid` track id: a second camera under another id is not taken.
    id: String,
}

struct Peer {
    id: ParticipantId,
    room: String,
    pc: Arc<dyn PeerConnection>,
    outgoing: Mutex<HashMap<RtpCodecKind, Arc<Outgoing>>>,
    incoming: Mutex<HashMap<TrackSource, Incoming>>,
    /// The track id of the screen capture its last offer named (recorded; forwarded only while shared).
    screen_track: Mutex<Option<String>>,
    /// Its screen capture is shared with the others in the room.
    screen_shared: std::sync::atomic::AtomicBool,
    /// The outgoing track carrying someone else's shared screen to it, and its sender (removed after).
    screen_out: Mutex<Option<ScreenOut>>,
    /// The SFU's own offers to it, one at a time (`screen`).
    negotiation: tokio::sync::Mutex<offers::ServerNegotiation>,
    /// Connected at least once: only then does the SFU offer it anything.
    connected: std::sync::atomic::AtomicBool,
    /// Which outgoing track carries which other participant's microphone or camera: bound at their first
    /// packet to a free track of the kind, freed when they leave (`target_for`).
    bound: Mutex<HashMap<(ParticipantId, TrackSource), Arc<Outgoing>>>,
    /// Outgoing tracks beyond the first of each kind, added by the SFU's own offers for a third participant on.
    extra: Mutex<Vec<(RtpCodecKind, Arc<Outgoing>)>>,
    /// More tracks are being added (one request at a time).
    adding: std::sync::atomic::AtomicBool,
    /// Held while its screen track is added or removed.
    screen_change: tokio::sync::Mutex<()>,
    /// How its addresses are announced (the SFU's own offers carry them too).
    announced: Arc<AnnouncedAddrs>,
    events: EventSink,
    /// The video codecs its first offer listed that the SFU forwards.
    video_offered: Vec<codecs::VideoCodec>,
    /// This viewer's downlink estimate (bits per second, `f64` bits), and whether it gets audio only.
    downlink: Downlink,
    link: Mutex<bandwidth::ViewerLink>,
}

#[derive(Default)]
struct Rooms {
    rooms: HashMap<String, Vec<Arc<Peer>>>,
    peers: HashMap<ParticipantId, Arc<Peer>>,
    taps: HashMap<String, Arc<dyn MediaTap>>,
}

pub struct WebRtcSfu {
    config: MediaConfig,
    bind_ips: Vec<IpAddr>,
    /// What browsers are told instead of the bind addresses (`media.announced_ips`).
    announced: Arc<AnnouncedAddrs>,
    next_port: AtomicU32,
    state: Arc<Mutex<Rooms>>,
    metrics: MediaMetrics,
    /// Whether the once-a-second bandwidth task runs (started with the first join, inside the runtime).
    bandwidth: std::sync::Once,
}

impl WebRtcSfu {
    /// The configuration was validated at start; an `announced_ips` it would refuse is refused here too.
    pub fn new(config: &MediaConfig, metrics: MediaMetrics) -> Result<Self, MediaError> {
        let announced = config
            .announced()
            .map_err(|(i, e)| MediaError::Engine(format!("media.announced_ips[{i}]: {e}")))?;
        Ok(Self {
            bind_ips: config.bind_ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            announced: Arc::new(announced),
            next_port: AtomicU32::new(0),
            config: config.clone(),
            state: Arc::new(Mutex::new(Rooms::default())),
            metrics,
            bandwidth: std::sync::Once::new(),
        })
    }

    /// A free port of the configured range on every bind address (for UDP, and for TCP too with ICE-TCP).
    /// Ports are probed round-robin so a just-closed connection's port is the last to be reused.
    fn allocate_addrs(&self) -> Result<Vec<SocketAddr>, MediaError> {
        let (min, max) = (self.config.udp_port_min as u32, self.config.udp_port_max as u32);
        let span = max - min + 1;
        for _ in 0..span {
            let port = (min + self.next_port.fetch_add(1, Ordering::Relaxed) % span) as u16;
            let addrs: Vec<SocketAddr> = self
                .bind_ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
            let free = |a: &SocketAddr| {
                UdpSocket::bind(a).is_ok() && (!self.config.ice_tcp || std::net::TcpListener::bind(a).is_ok())
            };
            if addrs.iter().all(free) {
                return Ok(addrs);
            }
        }
        Err(MediaError::NoPort)
    }

    /// A peer connection, and the handle its downlink estimate is read through.
    async fn build_pc(
        &self,
        handler: Arc<Handler>,
    ) -> Result<(Arc<dyn PeerConnection>, Downlink), MediaError> {
        // A few attempts: another process may take a probed port before the engine binds it.
        let mut last = MediaError::NoPort;
        for _ in 0..5 {
            let (estimate, downlink) = bandwidth::Estimate::new();
            let (table, registry) = codecs::table(Some(estimate))?;
            // No mDNS (real addresses; multicast fails without it); `announce` rewrites announced addresses.
            let settings = SettingEngineBuilder::new()
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .with_include_loopback_candidate(self.bind_ips.iter().any(|ip| ip.is_loopback()));
            let addrs = self.allocate_addrs()?;
            // Passive ICE-TCP on the same ports, for browsers whose network drops UDP.
            let tcp = if self.config.ice_tcp {
                addrs.clone()
            } else {
                Vec::new()
            };
            let built = PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(table)
                .with_interceptor_registry(registry)
                .with_setting_engine(settings.build())
                .with_handler(handler.clone())
                .with_udp_addrs(addrs)
                .with_tcp_addrs(tcp)
                .build()
                .await;
            match built {
                Ok(pc) => return Ok((Arc::new(pc), downlink)),
                Err(e) => last = engine_error(e),
            }
        }
        Err(last)
    }

    fn peer(&self, id: &ParticipantId) -> Result<Arc<Peer>, MediaError> {
        self.state
            .lock()
            .expect("rooms lock")
            .peers
            .get(id)
            .cloned()
            .ok_or(MediaError::NoPeerConnection)
    }

    fn offers(&self) -> offers::Offers {
        offers::Offers {
            state: Arc::downgrade(&self.state),
            metrics: self.metrics.clone(),
        }
    }

    /// The answer as browsers may see it: announced addresses in place of bound ones.
    async fn local_description(&self, pc: &Arc<dyn PeerConnection>) -> Result<String, MediaError> {
        pc.local_description()
            .await
            .map(|d| announce::sdp(&self.announced, &d.sdp))
            .ok_or_else(|| MediaError::Engine("no local description".into()))
    }
}

fn state_of(s: RTCPeerConnectionState) -> ConnectionState {
    match s {
        RTCPeerConnectionState::Connecting => ConnectionState::Connecting,
        RTCPeerConnectionState::Connected => ConnectionState::Connected,
        RTCPeerConnectionState::Disconnected => ConnectionState::Disconnected,
        RTCPeerConnectionState::Failed => ConnectionState::Failed,
        RTCPeerConnectionState::Closed => ConnectionState::Closed,
        _ => ConnectionState::New,
    }
}

/// Peer connection events of one participant. Holds the room state weakly: a closed engine frees everything.
struct Handler {
    participant: ParticipantId,
    announced: Arc<AnnouncedAddrs>,
    state: Weak<Mutex<Rooms>>,
    events: EventSink,
    metrics: MediaMetrics,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            (self.events)(MediaEvent::LocalCandidate(IceCandidate {
                candidate: announce::candidate(&self.announced, &init.candidate),
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
                username_fragment: init.username_fragment,
            }));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Failed {
            self.metrics.ice_failures.inc();
        }
        if state == RTCPeerConnectionState::Connected
            && let Some(rooms) = self.state.upgrade()
        {
            // A viewer that just connected (or reconnected after an ICE restart) missed the keyframe its
            // decoder needs; media forwarded before its SRTP keys existed was dropped. Ask the senders now,
            // and once more when the first packets have had time to flow.
            let room = rooms
                .lock()
                .expect("rooms lock")
                .peers
                .get(&self.participant)
                .map(|p| p.room.clone());
            if let Some(room) = room {
                let offers = offers::Offers {
                    state: self.state.clone(),
                    metrics: self.metrics.clone(),
                };
                if let Some(me) = rooms.lock().expect("rooms lock").peers.get(&self.participant) {
                    me.connected.store(true, Ordering::Relaxed);
                }
                // Someone may be sharing a screen already: now that it is connected, it is offered the screen.
                let shared_room = room.clone();
                tokio::spawn(async move { offers.screen_changed(&shared_room).await });
                let (weak, me, metrics) =
                    (self.state.clone(), self.participant.clone(), self.metrics.clone());
                tokio::spawn(async move {
                    for delay in [0u64, 1000] {
                        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                        request_keyframe(&weak, &room, &me, &[TrackSource::Camera], &metrics).await;
                    }
                });
            }
        }
        (self.events)(MediaEvent::State(state_of(state)));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let Some(me) = state
            .lock()
            .expect("rooms lock")
            .peers
            .get(&self.participant)
            .cloned()
        else {
            return;
        };
        let kind = track.kind().await;
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let mime = track
            .codec(ssrc)
            .await
            .map(|c| c.mime_type.to_ascii_lowercase())
            .unwrap_or_default();
        let track_id = track.track_id().await;
        let source = if kind == RtpCodecKind::Audio {
            TrackSource::Microphone
        } else if me.screen_track.lock().expect("peer lock").as_deref() == Some(track_id.as_str()) {
            TrackSource::Screen
        } else {
            TrackSource::Camera
        };
        tracing::info!(
            participant = self.participant.as_str(),
            ?source,
            ssrc,
            mime,
            "incoming track"
        );
        {
            let mut incoming = me.incoming.lock().expect("peer lock");
            // One camera per connection: another video its offer did not name as a screen (a client sending
            // two) is neither forwarded nor recorded, rather than taken for the camera.
            if let Some(camera) = incoming
                .get(&source)
                .filter(|i| source == TrackSource::Camera && i.id != track_id)
            {
                tracing::warn!(
                    participant = self.participant.as_str(),
                    ssrc,
                    camera = camera.ssrc,
                    "a second video not named as a screen: ignored"
                );
                return;
            }
            incoming.insert(
                source,
                Incoming {
                    track: track.clone(),
                    ssrc,
                    id: track_id,
                },
            );
        }
        let metrics = self.metrics.clone();
        let weak = Arc::downgrade(&state);
        if kind == RtpCodecKind::Video {
            // A new publisher (a rejoin after a reload, say): its first keyframe may have gone out before
            // forwarding started, and viewers cannot decode without one.
            let pli: Vec<Box<dyn rtcp::Packet>> = vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            })];
            if track.write_rtcp(pli).await.is_ok() {
                self.metrics.keyframe_requests.inc();
            }
        }
        tokio::spawn(forward(track, me, source, weak, metrics));
    }
}

#[async_trait::async_trait]
impl MediaEngine for WebRtcSfu {
    async fn join(
        &self,
        room: &str,
        participant: &ParticipantId,
        offer: Offer<'_>,
        events: EventSink,
    ) -> Result<String, MediaError> {
        let (offer, screen_track, shared) = (
            offer.sdp,
            offer.screen_track.map(str::to_string),
            offer.screen_shared,
        );
        sdp::check_offer(
            offer,
            self.config.max_sdp_bytes,
            self.config.max_tracks_per_participant,
        )?;
        let handler = Arc::new(Handler {
            participant: participant.clone(),
            announced: self.announced.clone(),
            state: Arc::downgrade(&self.state),
            events: events.clone(),
            metrics: self.metrics.clone(),
        });
        self.bandwidth.call_once(|| {
            tokio::spawn(bandwidth::run(Arc::downgrade(&self.state), self.metrics.clone()));
        });
        let (pc, downlink) = self.build_pc(handler).await?;
        let peer = Arc::new(Peer {
            id: participant.clone(),
            room: room.to_string(),
            pc: pc.clone(),
            outgoing: Mutex::new(HashMap::new()),
            incoming: Mutex::new(HashMap::new()),
            screen_shared: std::sync::atomic::AtomicBool::new(shared && screen_track.is_some()),
            screen_track: Mutex::new(screen_track),
            screen_out: Mutex::new(None),
            negotiation: tokio::sync::Mutex::default(),
            connected: std::sync::atomic::AtomicBool::new(false),
            bound: Mutex::default(),
            extra: Mutex::default(),
            adding: std::sync::atomic::AtomicBool::new(false),
            screen_change: tokio::sync::Mutex::default(),
            announced: self.announced.clone(),
            events,
            video_offered: negotiate::offered(offer),
            downlink,
            link: Mutex::default(),
        });
        {
            let mut s = self.state.lock().expect("rooms lock");
            s.peers.insert(participant.clone(), peer.clone());
            s.rooms.entry(room.to_string()).or_default().push(peer.clone());
        }
        self.metrics.peer_connections.inc();
        match self.negotiate_first(&peer, offer).await {
            Ok(answer) => Ok(answer),
            Err(e) => {
                self.leave(participant).await;
                Err(e)
            }
        }
    }

    async fn renegotiate(&self, participant: &ParticipantId, offer: Offer<'_>) -> Result<String, MediaError> {
        sdp::check_offer(
            offer.sdp,
            self.config.max_sdp_bytes,
            self.config.max_tracks_per_participant,
        )?;
        let peer = self.peer(participant)?;
        let answer = {
            // One negotiation at a time: the SFU's own offer waiting for its answer wins (glare).
            let negotiation = peer.negotiation.lock().await;
            if negotiation.offered {
                return Err(MediaError::Glare);
            }
            // Before the offer is applied: the track it adds is named as it arrives.
            *peer.screen_track.lock().expect("peer lock") = offer.screen_track.map(str::to_string);
            self.negotiate_again(&peer, offer.sdp).await?
        };
        let shared = offer.screen_shared && offer.screen_track.is_some();
        if peer.screen_shared.swap(shared, Ordering::Relaxed) != shared {
            self.offers().screen_changed(&peer.room).await;
        }
        Ok(answer)
    }

    async fn server_answer(&self, participant: &ParticipantId, answer: &str) -> Result<(), MediaError> {
        let peer = self.peer(participant)?;
        self.offers().answered(&peer, answer).await
    }

    async fn add_candidate(
        &self,
        participant: &ParticipantId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        sdp::check_candidate(&candidate.candidate)?;
        let peer = self.peer(participant)?;
        peer.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: candidate.candidate,
                sdp_mid: candidate.sdp_mid,
                sdp_mline_index: candidate.sdp_mline_index,
                username_fragment: candidate.username_fragment,
                ..Default::default()
            })
            .await
            .map_err(|_| MediaError::InvalidCandidate)
    }

    async fn leave(&self, participant: &ParticipantId) {
        let peer = {
            let mut s = self.state.lock().expect("rooms lock");
            let peer = s.peers.remove(participant);
            if let Some(p) = &peer
                && let Some(list) = s.rooms.get_mut(&p.room)
            {
                list.retain(|x| &x.id != participant);
                if list.is_empty() {
                    s.rooms.remove(&p.room);
                }
            }
            peer
        };
        if let Some(peer) = peer {
            self.metrics.peer_connections.dec();
            let _ = peer.pc.close().await;
            (peer.events)(MediaEvent::State(ConnectionState::Closed));
            // Its tracks on the others' connections are free for whoever comes next.
            let others: Vec<Arc<Peer>> = self
                .state
                .lock()
                .expect("rooms lock")
                .rooms
                .get(&peer.room)
                .cloned()
                .unwrap_or_default();
            for other in others {
                let mut freed = Vec::new();
                other.bound.lock().expect("peer lock").retain(|(from, _), out| {
                    let keep = from != participant;
                    if !keep && !freed.contains(&out.stream) {
                        freed.push(out.stream.clone());
                    }
                    keep
                });
                // The viewer's tile for it shows nobody now.
                for stream in freed {
                    (other.events)(MediaEvent::Tile { stream, from: None });
                }
            }
            self.codec_may_change(&peer);
            if peer.screen_shared.load(Ordering::Relaxed) {
                self.offers().screen_changed(&peer.room).await;
            }
        }
    }

    async fn close_room(&self, room: &str) {
        let ids: Vec<ParticipantId> = self
            .state
            .lock()
            .expect("rooms lock")
            .rooms
            .get(room)
            .map(|l| l.iter().map(|p| p.id.clone()).collect())
            .unwrap_or_default();
        for id in ids {
            self.leave(&id).await;
        }
    }

    fn set_tap(&self, room: &str, tap: Option<Arc<dyn MediaTap>>) {
        let mut s = self.state.lock().expect("rooms lock");
        match tap {
            Some(t) => s.taps.insert(room.to_string(), t),
            None => s.taps.remove(room),
        };
    }

    async fn request_keyframes(&self, room: &str) {
        // A viewer that is no participant: every participant's video is asked for.
        let recorder = ParticipantId::random();
        request_keyframe(
            &Arc::downgrade(&self.state),
            room,
            &recorder,
            &[TrackSource::Camera, TrackSource::Screen],
            &self.metrics,
        )
        .await;
    }

    fn peer_connections(&self) -> usize {
        self.state.lock().expect("rooms lock").peers.len()
    }
}
