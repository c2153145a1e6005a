//! The SFU's answers to offers shaped like Firefox's and Safari's (tests/fixtures/sdp, written after the offers
//! those browsers make: their payload type numbers, codec lists, header extensions and feedback): audio as
//! Opus and video as VP8 under the offerer's own payload types, with the feedback the SFU uses (NACK, PLI, FIR)
//! and nothing it cannot forward or record (H.264 after VP8, so that a later answer can switch to it; no RTX);
//! an offer without VP8 (Safari with VP8 turned off) is answered with H.264, and when such a browser joins,
//! the others are asked to negotiate again and send H.264 (in-process peers standing in for both browsers).

use std::sync::Arc;

use examroom::media::sfu::WebRtcSfu;
use examroom::media::{MediaEngine, Offer, ParticipantId};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/sdp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn sfu() -> WebRtcSfu {
    // A few ports above a free one: the SFU probes for one per participant.
    let port = crate::common::free_port().min(65_000);
    let config = examroom::config::MediaConfig {
        bind_ips: vec!["127.0.0.1".into()],
        udp_port_min: port,
        udp_port_max: port + 20,
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
        .join(
            "room",
            &ParticipantId::random(),
            Offer::sdp(offer),
            Arc::new(|_| {}),
        )
        .await
        .unwrap_or_else(|e| panic!("refused: {e}"));
    sfu.close_room("room").await;
    answer
}

#[tokio::test]
async fn firefox_and_safari_offers_are_answered_with_opus_and_vp8_under_their_payload_types() {
    for (file, opus, vp8, h264, twcc) in [
        ("firefox-128-offer.sdp", 109, 120, 126, 7),
        ("safari-17-offer.sdp", 111, 100, 98, 3),
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
        // VP8 first (the browser sends it), then Constrained Baseline H.264 (negotiated so that a later answer
        // can ask for H.264; see below).
        assert_eq!(
            video.split_whitespace().skip(3).collect::<Vec<_>>(),
            [vp8, h264].map(|pt| pt.to_string()),
            "{file}: {video}"
        );
        assert!(
            video_attrs.contains(&format!("a=rtpmap:{h264} H264/90000"))
                && video_attrs
                    .iter()
                    .any(|a| a.starts_with(&format!("a=fmtp:{h264} "))
                        && a.contains("packetization-mode=1")
                        && a.contains("42e01f")),
            "{file}: Constrained Baseline H.264\n{answer}"
        );
        // Loss repair and keyframes (nack, pli, fir); the downlink estimate (transport-cc with the offer's
        // transport-wide sequence number extension, under the browser's own id) and the cap the SFU asks of a
        // publisher (goog-remb): without them Firefox and Safari would neither be estimated nor slowed.
        for fb in ["nack", "nack pli", "ccm fir", "transport-cc", "goog-remb"] {
            assert!(
                video_attrs.contains(&format!("a=rtcp-fb:{vp8} {fb}")),
                "{file}: {fb}\n{answer}"
            );
        }
        assert!(
            video_attrs.contains(&format!(
                "a=extmap:{twcc} http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
            )),
            "{file}: transport-wide sequence numbers under id {twcc}\n{answer}"
        );
        for line in audio_attrs.iter().chain(video_attrs) {
            assert!(
                !line.contains("VP9")
                    && !line.contains("rtx")
                    && !line.contains("ulpfec")
                    && !line.contains("red/"),
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
async fn an_offer_without_vp8_is_answered_with_h264() {
    let answer = answer(&fixture("safari-17-h264-only-offer.sdp")).await;
    let media = sections(&answer);
    assert!(
        media[0].0.starts_with("m=audio ") && !media[0].0.starts_with("m=audio 0 "),
        "{answer}"
    );
    let (video, attrs) = &media[1];
    assert!(
        video.starts_with("m=video ") && !video.starts_with("m=video 0 "),
        "{answer}"
    );
    // Safari's Constrained Baseline H.264 (98, packetization mode 1), not its High profile (96).
    assert_eq!(
        video.split_whitespace().skip(3).collect::<Vec<_>>(),
        ["98"],
        "{answer}"
    );
    assert!(attrs.contains(&"a=rtpmap:98 H264/90000".to_string()), "{answer}");
    assert!(
        attrs
            .iter()
            .any(|a| a.starts_with("a=fmtp:98 ") && a.contains("packetization-mode=1")),
        "{answer}"
    );
    assert!(
        !attrs.iter().any(|a| a == "a=inactive" || a == "a=recvonly"),
        "{answer}"
    );
}

/// What one participant of [`an_h264_only_peer_and_a_vp8_peer_see_each_other`] hears from the SFU.
enum Heard {
    Candidate(examroom::media::IceCandidate),
    Renegotiate,
}

fn sink(tx: tokio::sync::mpsc::UnboundedSender<Heard>) -> examroom::media::EventSink {
    Arc::new(move |event| {
        let heard = match event {
            examroom::media::MediaEvent::LocalCandidate(c) => Heard::Candidate(c),
            examroom::media::MediaEvent::Renegotiate => Heard::Renegotiate,
            _ => return,
        };
        let _ = tx.send(heard);
    })
}

/// A browser that offers VP8 and H.264 joins first and sends VP8; a browser without VP8 joins: the first is
/// asked to negotiate again, is answered H.264 first and sends H.264, and each receives the other's video
/// (and audio) under the payload type it negotiated for H.264. When the browser without VP8 leaves, the first
/// is asked again and goes back to VP8.
#[tokio::test]
async fn an_h264_only_peer_and_a_vp8_peer_see_each_other() {
    use crate::peer::ClientPeer;
    use examroom::media::sfu::codecs::VideoCodec;
    use std::time::Duration;

    let sfu = Arc::new(sfu());
    let (both_id, h264_id) = (ParticipantId::random(), ParticipantId::random());
    let (both_tx, mut both_rx) = tokio::sync::mpsc::unbounded_channel();
    let (h264_tx, mut h264_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut both = ClientPeer::new("both", "h264").await;
    let mut h264 = ClientPeer::with_video("h264", "both", &[VideoCodec::H264]).await;

    let answer = sfu
        .join("room", &both_id, Offer::sdp(&both.offer().await), sink(both_tx))
        .await
        .unwrap();
    both.answered(&answer).await;
    assert_eq!(
        both.sending_video().await.to_ascii_lowercase(),
        "video/vp8",
        "{answer}"
    );
    let answer = sfu
        .join("room", &h264_id, Offer::sdp(&h264.offer().await), sink(h264_tx))
        .await
        .unwrap();
    h264.answered(&answer).await;
    assert_eq!(
        h264.sending_video().await.to_ascii_lowercase(),
        "video/h264",
        "{answer}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut renegotiated = false;
    let mut seq = 0u16;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "renegotiated {renegotiated}, connected {} {}, both got {} video, h264 got {} video (pt {})",
            both.connected(),
            h264.connected(),
            both.count(|c| &c.video_received),
            h264.count(|c| &c.video_received),
            h264.count(|c| &c.video_payload_type),
        );
        // Candidates both ways, and the SFU's request to negotiate again.
        while let Ok(heard) = both_rx.try_recv() {
            match heard {
                Heard::Candidate(c) => both.add_candidate(init(c)).await,
                Heard::Renegotiate => {
                    let answer = sfu
                        .renegotiate(&both_id, Offer::sdp(&both.offer().await))
                        .await
                        .unwrap();
                    both.reanswered(&answer).await;
                    assert_eq!(
                        both.sending_video().await.to_ascii_lowercase(),
                        "video/h264",
                        "answered H.264 first\n{answer}"
                    );
                    renegotiated = true;
                }
            }
        }
        while let Ok(Heard::Candidate(c)) = h264_rx.try_recv() {
            h264.add_candidate(init(c)).await;
        }
        while let Ok(c) = both.candidates.try_recv() {
            let _ = sfu.add_candidate(&both_id, candidate(c)).await;
        }
        while let Ok(c) = h264.candidates.try_recv() {
            let _ = sfu.add_candidate(&h264_id, candidate(c)).await;
        }
        if both.connected() && h264.connected() {
            seq = seq.wrapping_add(1);
            both.send(seq).await;
            h264.send(seq).await;
        }
        let h264_pt = 102;
        if renegotiated
            && both.count(|c| &c.video_received) > 20
            && h264.count(|c| &c.video_received) > 20
            && h264.count(|c| &c.video_payload_type) == h264_pt
            && both.count(|c| &c.video_payload_type) == h264_pt
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(both.count(|c| &c.foreign), 0, "only the other's media");
    assert_eq!(h264.count(|c| &c.foreign), 0, "only the other's media");
    assert!(both.count(|c| &c.audio_received) > 0 && h264.count(|c| &c.audio_received) > 0);

    // The browser without VP8 leaves: the other is asked once more and answered VP8 first again (what the
    // recorder writes).
    sfu.leave(&h264_id).await;
    let asked = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Heard::Renegotiate) = both_rx.recv().await {
                break;
            }
        }
    })
    .await;
    assert!(
        asked.is_ok(),
        "asked to negotiate again after the H.264 browser left"
    );
    let answer = sfu
        .renegotiate(&both_id, Offer::sdp(&both.offer().await))
        .await
        .unwrap();
    both.reanswered(&answer).await;
    assert_eq!(
        both.sending_video().await.to_ascii_lowercase(),
        "video/vp8",
        "answered VP8 first again\n{answer}"
    );
    sfu.close_room("room").await;
}

pub fn init(c: examroom::media::IceCandidate) -> webrtc::peer_connection::RTCIceCandidateInit {
    webrtc::peer_connection::RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    }
}

pub fn candidate(c: webrtc::peer_connection::RTCIceCandidateInit) -> examroom::media::IceCandidate {
    examroom::media::IceCandidate {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}
