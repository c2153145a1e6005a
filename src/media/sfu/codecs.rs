//! The codecs the SFU offers and the interceptors each peer connection runs: Opus and VP8 only (what the
//! recorder can depacketize), with NACK, PLI and FIR feedback on video so viewers can repair and resync. The
//! test peers and the media load tool use the same table, so what they negotiate is what a browser gets. The
//! SFU's own connections also number what they send transport-wide and estimate the far end's downlink from
//! its TWCC reports (`bandwidth`), by hand: the engine's `configure_congestion_control` would add a pacer,
//! which forwarded media does not need (its sender paced it).

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
use super::{MIME_OPUS, MIME_VP8, engine_error};
use crate::media::MediaError;

/// A fresh codec table and interceptor registry (the engine consumes both per peer connection); with an
/// `estimate`, the chain also numbers outgoing packets (TWCC) and feeds the far end's reports to it.
pub fn table(estimate: Option<Estimate>) -> Result<(CodecTable, Registry), MediaError> {
    let mut table = CodecTable::default();
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    table
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: payload_type(RtpCodecKind::Audio),
            },
            RtpCodecKind::Audio,
        )
        .map_err(engine_error)?;
    table
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    // goog-remb: the SFU caps a sender by its slowest viewer (`bandwidth`).
                    rtcp_feedback: vec![
                        fb("nack", ""),
                        fb("nack", "pli"),
                        fb("ccm", "fir"),
                        fb("goog-remb", ""),
                    ],
                    ..vp8()
                },
                payload_type: payload_type(RtpCodecKind::Video),
            },
            RtpCodecKind::Video,
        )
        .map_err(engine_error)?;
    // The defaults register the transport-cc feedback and header extension (their TWCC receiver needs them).
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

/// The payload type the table registers for `kind` (an offer from our table uses it; an answer keeps it).
pub fn payload_type(kind: RtpCodecKind) -> u8 {
    if kind == RtpCodecKind::Video { 96 } else { 111 }
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

pub fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_VP8.into(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// The codec of a track of `kind` (what a sender writes its packets as).
pub fn codec(kind: RtpCodecKind) -> RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => opus(),
        _ => vp8(),
    }
}

/// A local track of `kind` with one encoding on a fresh random SSRC (returned with it), for the SFU's outgoing
/// tracks and the test peer's alike.
pub fn local_track(stream: String, id: String, kind: RtpCodecKind) -> (Arc<TrackLocalStaticRTP>, u32) {
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
            codec: codec(kind),
            ..Default::default()
        }],
    ));
    (Arc::new(track), ssrc)
}
