//! The SFU: one peer connection per participant to the broker, media forwarded between the participants of a
//! room (a screen capture to the room's recorder, and to the others only while shared), keyframe requests relayed from viewer to sender when
//! they happen. [`MediaEngine`] is the small
//! interface the rest of the broker sees, so the engine ([`sfu::WebRtcSfu`], built on the `webrtc` crate)
//! could be replaced. Rooms and participants are opaque random ids; the engine never learns who is behind them.

pub mod announce;
pub mod client;
pub mod rewrite;
pub mod sdp;
pub mod sfu;
pub mod turn;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::random_hex;

/// Opaque id of one participant's peer connection (a new one per join).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(transparent)]
pub struct ParticipantId(String);

impl ParticipantId {
    pub fn random() -> Self {
        Self(format!("p{}", random_hex(12)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A trickled ICE candidate as browsers exchange it (`RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, rename = "sdpMid")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    #[serde(default, rename = "usernameFragment")]
    pub username_fragment: Option<String>,
}

/// Peer connection state as the browser names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// What the engine reports about a participant's connection.
#[derive(Debug, Clone)]
pub enum MediaEvent {
    LocalCandidate(IceCandidate),
    State(ConnectionState),
    /// This participant's link is too slow for video (it gets audio only), or fast enough again.
    Downlink {
        audio_only: bool,
    },
    /// The participant should offer again on the same connection (someone who can receive only H.264 joined:
    /// the answer will ask it to send H.264).
    Renegotiate,
    /// The SFU offers a change of this participant's connection (another participant's screen shared with it or
    /// no longer, or tracks for a third participant on): answered through [`MediaEngine::server_answer`].
    ServerOffer(String),
    /// The audio and video tracks of `stream` on this participant's connection now carry `from`'s camera and
    /// microphone (`None`: nobody's, they left), so its client can say whose picture it is.
    Tile {
        stream: String,
        from: Option<ParticipantId>,
    },
}

/// Receives a participant's events (to be sent to its socket).
pub type EventSink = Arc<dyn Fn(MediaEvent) + Send + Sync>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("the session description is not usable: {0}")]
    InvalidSdp(String),
    #[error("the session description is larger than {0} bytes")]
    SdpTooLarge(usize),
    #[error("too many media sections: at most {0}")]
    TooManyTracks(usize),
    #[error("the ICE candidate is not valid")]
    InvalidCandidate,
    #[error("no open peer connection")]
    NoPeerConnection,
    #[error("no free UDP port in media.udp_port_min..=media.udp_port_max")]
    NoPort,
    #[error("media engine failure")]
    Engine(String),
    /// Both sides offered at once: the SFU keeps its own offer (it is the impolite side) and ignores this one; the
    /// client answers the SFU's, then offers again.
    #[error("the server is waiting for the answer to its own offer: answer it, then offer again")]
    Glare,
    #[error("no server offer is waiting for an answer")]
    NoServerOffer,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

/// What an incoming track carries: a participant's microphone, camera, or a capture of their screen (named by
/// the client with the offer that adds it; see [`Offer::screen_track`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackSource {
    Microphone,
    Camera,
    Screen,
}

impl TrackSource {
    pub fn kind(self) -> MediaKind {
        match self {
            TrackSource::Microphone => MediaKind::Audio,
            TrackSource::Camera | TrackSource::Screen => MediaKind::Video,
        }
    }
}

/// A participant's SDP offer, and which of the tracks it sends is a screen capture: its track id, as the
/// offer's `a=msid` names it (`MediaStreamTrack.id`). A screen capture goes to the recorder, and to the other
/// participants only when `screen_shared`.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    pub sdp: &'a str,
    pub screen_track: Option<&'a str>,
    pub screen_shared: bool,
}

impl<'a> Offer<'a> {
    /// An offer of camera and microphone only.
    pub fn sdp(sdp: &'a str) -> Self {
        Offer {
            sdp,
            screen_track: None,
            screen_shared: false,
        }
    }
}

/// One RTP packet as a tap sees it (engine types stay inside the engine).
pub struct RtpView<'a> {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Receives a copy of every RTP packet a room's participants send (the recorder). Called on the forwarding
/// path, so it must be quick.
pub trait MediaTap: Send + Sync {
    /// Returns true to ask this track's sender for a keyframe.
    fn rtp(&self, participant: &ParticipantId, source: TrackSource, packet: &RtpView<'_>) -> bool;
}

/// What the broker needs from a media engine.
#[async_trait::async_trait]
pub trait MediaEngine: Send + Sync {
    /// Connects a participant to a room from its SDP offer and returns the answer. Media the others in the
    /// room send is forwarded to it, and its media to them.
    async fn join(
        &self,
        room: &str,
        participant: &ParticipantId,
        offer: Offer<'_>,
        events: EventSink,
    ) -> Result<String, MediaError>;
    /// A new offer on an existing connection (ICE restart, a screen capture added or stopped); returns the answer.
    async fn renegotiate(&self, participant: &ParticipantId, offer: Offer<'_>) -> Result<String, MediaError>;
    /// The participant's answer to the SFU's own offer (`MediaEvent::ServerOffer`).
    async fn server_answer(&self, participant: &ParticipantId, answer: &str) -> Result<(), MediaError>;
    async fn add_candidate(
        &self,
        participant: &ParticipantId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError>;
    /// Closes one participant's connection.
    async fn leave(&self, participant: &ParticipantId);
    /// Closes every connection of a room.
    async fn close_room(&self, room: &str);
    /// Attaches (or with `None` detaches) a tap to a room.
    fn set_tap(&self, room: &str, tap: Option<Arc<dyn MediaTap>>);
    /// Asks every sender of video in a room for a keyframe (a recording resumed after a pause).
    async fn request_keyframes(&self, room: &str);
    /// Open peer connections.
    fn peer_connections(&self) -> usize;
}
