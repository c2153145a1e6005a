//! The codecs the SFU offers and the interceptors each peer connection runs: Opus, and VP8 (what the recorder
//! can depacketize) or H.264 for a browser without VP8, with NACK, PLI and FIR feedback on video so viewers can
//! repair and resync (no RTX: see [`table_with`]). The test peers and the media load tool use the same table,
//! so what they negotiate is what a browser gets. The SFU's own connections also number what they send
//! transport-wide and estimate the far end's downlink from its TWCC reports (`bandwidth`), by hand: the
//! engine's `configure_congestion_control` would add a pacer, which forwarded media does not need (its sender
//! paced it).

use rtc::interceptor::Slot;
use std::sync::Arc;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{MediaEngine as CodecTable, Registry, register_default_interceptors};

use rtc::interceptor::{CongestionControlBuilder, TwccSenderBuilder};

use super::bandwidth::Estimate;
use super::keyframes::{KEYFRAME_REQUEST_SLOT, KeyframeRequests};
use super::{MIME_H264, MIME_OPUS, MIME_VP8, engine_error};
use crate::media::MediaError;

/// A fresh codec table and interceptor registry (the engine consumes both per peer connection), every video
/// codec the SFU forwards; with an `estimate`, the chain also numbers outgoing packets (TWCC) and feeds the
/// far end's reports to it.
pub fn table(estimate: Option<Estimate>) -> Result<(CodecTable, Registry), MediaError> {
    table_with(estimate, &VideoCodec::ALL)
}

/// [`table`] with only the `video` codecs (a test peer standing in for a browser without VP8).
pub fn table_with(
    estimate: Option<Estimate>,
    video: &[VideoCodec],
) -> Result<(CodecTable, Registry), MediaError> {
    let mut table = CodecTable::default();
    table
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: payload_type(RtpCodecKind::Audio),
            },
            RtpCodecKind::Audio,
        )
        .map_err(engine_error)?;
    for video in video {
        table
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        rtcp_feedback: video_feedback(),
                        ..video.rtp_codec()
                    },
                    ..video.parameters()
                },
                RtpCodecKind::Video,
            )
            .map_err(engine_error)?;
    }
    // No RTX (RFC 4588): lost packets are asked for (NACK) and resent on the original SSRC both ways, the
    // engine's responder answering a viewer from the outgoing track's buffer (1,024 packets). RTX was wired
    // and measured (tests/integration/loss.rs at 5% loss): the engine unwraps a publisher's RTX repair only
    // after its interceptor chain, so its NACK generator never sees the packet come back and asks again
    // every 100 ms, and the nurse's picture of a lossy patient froze for seconds in some runs; without RTX
    // both pictures stayed at full frame rate. The defaults register the transport-cc feedback and extension
    // (their TWCC receiver needs them).
    let mut registry = register_default_interceptors(Registry::new(), &mut table)
        .map_err(engine_error)?
        .with(Slot::Custom(KEYFRAME_REQUEST_SLOT), KeyframeRequests::default());
    if let Some(estimate) = estimate {
        registry = registry
            .with(Slot::TwccSender, TwccSenderBuilder::new().build())
            .with(
                Slot::CongestionControl,
                CongestionControlBuilder::new(estimate).build(),
            );
    }
    Ok((table, registry))
}

/// The feedback the SFU registers for video (goog-remb: the SFU caps a sender by its slowest viewer,
/// `bandwidth`); the engine adds transport-cc. Codec preferences must carry the same list, transport-cc
/// included: the engine binds NACK, RTX and TWCC by the feedback of the codec a stream uses.
pub fn video_feedback() -> Vec<RTCPFeedback> {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    vec![
        fb("nack", ""),
        fb("nack", "pli"),
        fb("ccm", "fir"),
        fb("goog-remb", ""),
    ]
}

/// A video codec the SFU forwards. VP8 comes first: it is what the recorder writes (WebM) and what every
/// browser sends when asked. H.264 is for a browser without VP8 (Safari with VP8 turned off): the SFU forwards
/// it between browsers that negotiated it, and the recorder keeps only such a participant's audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    /// In the SFU's order of preference.
    pub const ALL: [VideoCodec; 2] = [VideoCodec::Vp8, VideoCodec::H264];

    pub fn mime(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => MIME_VP8,
            VideoCodec::H264 => MIME_H264,
        }
    }

    /// The payload type our table registers.
    pub fn payload_type(self) -> u8 {
        match self {
            VideoCodec::Vp8 => 96,
            VideoCodec::H264 => 102,
        }
    }

    pub fn of_mime(mime: &str) -> Option<VideoCodec> {
        Self::ALL
            .into_iter()
            .find(|c| c.mime().eq_ignore_ascii_case(mime))
    }

    /// The codec under our table's payload type.
    pub fn parameters(self) -> RTCRtpCodecParameters {
        RTCRtpCodecParameters {
            rtp_codec: self.rtp_codec(),
            payload_type: self.payload_type(),
        }
    }

    pub fn rtp_codec(self) -> RTCRtpCodec {
        RTCRtpCodec {
            mime_type: self.mime().into(),
            clock_rate: 90000,
            channels: 0,
            // Constrained Baseline, packetization mode 1: what every browser that sends H.264 offers.
            sdp_fmtp_line: match self {
                VideoCodec::Vp8 => String::new(),
                VideoCodec::H264 => {
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into()
                }
            },
            rtcp_feedback: vec![],
        }
    }
}

/// The payload type the table registers for `kind`'s first codec (an offer from our table uses it; an answer
/// keeps it).
pub fn payload_type(kind: RtpCodecKind) -> u8 {
    if kind == RtpCodecKind::Video {
        VideoCodec::Vp8.payload_type()
    } else {
        111
    }
}

pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_OPUS.into(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

/// The codec of a track of `kind` (what a sender writes its packets as; `video` for a video track).
pub fn codec(kind: RtpCodecKind, video: VideoCodec) -> RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => opus(),
        _ => video.rtp_codec(),
    }
}

/// A local track of `kind` with one encoding on a fresh random SSRC (returned with it), for the SFU's outgoing
/// tracks and the test peer's alike.
pub fn local_track(
    stream: String,
    id: String,
    kind: RtpCodecKind,
    video: VideoCodec,
) -> (Arc<TrackLocalStaticRTP>, u32) {
    let ssrc: u32 = rand::random();
    let track = TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream,
        id,
        format!("{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec(kind, video),
            ..Default::default()
        }],
    ));
    (Arc::new(track), ssrc)
}
