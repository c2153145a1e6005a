//! The SFU's answers to offers shaped like Firefox's and Safari's (tests/fixtures/sdp, written after the offers
//! those browsers make: their payload type numbers, codec lists, header extensions and feedback): audio as
//! Opus and video as VP8 under the offerer's own payload types, with the feedback the SFU uses (NACK, PLI, FIR)
//! and nothing it cannot forward or record; an offer without VP8 (Safari with VP8 turned off) gets its video
//! section refused, so that browser joins with audio only.

use std::sync::Arc;

use examroom::media::sfu::WebRtcSfu;
use examroom::media::{MediaEngine, ParticipantId};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/sdp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn sfu() -> WebRtcSfu {
    let port = crate::common::free_port();
    let config = examroom::config::MediaConfig {
        bind_ips: vec!["127.0.0.1".into()],
        udp_port_min: port,
        udp_port_max: port,
        ..Default::default()
    };
    WebRtcSfu::new(&config, examroom::telemetry::Metrics::new().media).unwrap()
}

/// The answer's media sections: `(m= line, attribute lines)`.
fn sections(sdp: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            out.push((line.to_string(), Vec::new()));
        } else if let Some((_, attrs)) = out.last_mut() {
            attrs.push(line.to_string());
        }
    }
    out
}

async fn answer(offer: &str) -> String {
    let sfu = sfu();
    let answer = sfu
        .join("room", &ParticipantId::random(), offer, Arc::new(|_| {}))
        .await
        .unwrap_or_else(|e| panic!("refused: {e}"));
    sfu.close_room("room").await;
    answer
}

#[tokio::test]
async fn firefox_and_safari_offers_are_answered_with_opus_and_vp8_under_their_payload_types() {
    for (file, opus, vp8) in [
        ("firefox-128-offer.sdp", 109, 120),
        ("safari-17-offer.sdp", 111, 100),
    ] {
        let answer = answer(&fixture(file)).await;
        assert!(
            answer.contains("a=group:BUNDLE 0 1"),
            "{file}: one transport\n{answer}"
        );
        assert!(
            answer.contains("a=setup:active") || answer.contains("a=setup:passive"),
            "{file}: a DTLS role chosen\n{answer}"
        );
        let media = sections(&answer);
        assert_eq!(media.len(), 2, "{file}\n{answer}");
        let (audio, audio_attrs) = &media[0];
        assert!(
            audio.starts_with("m=audio ") && !audio.starts_with("m=audio 0 "),
            "{file}: {audio}"
        );
        assert_eq!(
            audio.split_whitespace().skip(3).collect::<Vec<_>>(),
            [opus.to_string()],
            "{file}: {audio}"
        );
        assert!(
            audio_attrs.contains(&format!("a=rtpmap:{opus} opus/48000/2")),
            "{file}\n{answer}"
        );
        let (video, video_attrs) = &media[1];
        assert!(
            video.starts_with("m=video ") && !video.starts_with("m=video 0 "),
            "{file}: {video}"
        );
        assert_eq!(
            video.split_whitespace().skip(3).collect::<Vec<_>>(),
            [vp8.to_string()],
            "{file}: {video}"
        );
        assert!(
            video_attrs.contains(&format!("a=rtpmap:{vp8} VP8/90000")),
            "{file}\n{answer}"
        );
        for fb in ["nack", "nack pli", "ccm fir"] {
            assert!(
                video_attrs.contains(&format!("a=rtcp-fb:{vp8} {fb}")),
                "{file}: {fb}\n{answer}"
            );
        }
        for line in audio_attrs.iter().chain(video_attrs) {
            assert!(
                !line.contains("H264") && !line.contains("VP9") && !line.contains("rtx"),
                "{file}: {line}"
            );
        }
        for (mid, attrs) in ["0", "1"].iter().zip([audio_attrs, video_attrs]) {
            assert!(
                attrs.contains(&format!("a=mid:{mid}")),
                "{file}: mid {mid}\n{answer}"
            );
        }
    }
}

#[tokio::test]
async fn an_offer_without_vp8_gets_its_video_refused_and_joins_with_audio() {
    let answer = answer(&fixture("safari-17-h264-only-offer.sdp")).await;
    let media = sections(&answer);
    assert!(
        media[0].0.starts_with("m=audio ") && !media[0].0.starts_with("m=audio 0 "),
        "{answer}"
    );
    let (video, attrs) = &media[1];
    let refused = video.starts_with("m=video 0 ") || attrs.iter().any(|a| a == "a=inactive");
    assert!(refused, "no common video codec: the section is refused\n{answer}");
}
