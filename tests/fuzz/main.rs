//! Fuzz targets for the parsers an attacker reaches: chat frames, SDP and ICE candidates, the RTP path into the
//! recorder (VP8 depacketizing, Opus, WebM muxing, sealing), RTCP as the SFU reads it, and the sealed-format
//! reader. (The JWT header and claims checks are fuzzed beside their private code, in `src/auth/jwt.rs`.)
//!
//! Written with `bolero`: under `cargo test` each target replays its corpus and crash files
//! (`tests/fuzz/__fuzz__/<target>/{corpus,crashes}/`) and then runs random inputs for one second; `scripts/fuzz.sh`
//! runs them for as long as asked. A crash prints its input: save it under the target's `crashes/`, and it is
//! replayed by every later run (a regression test).

use bolero::check;
use examroom::crypto::DataKey;
use examroom::recording::recorder::{Recorder, Source};
use examroom::recording::sealed;

#[test]
fn chat_frames() {
    check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        if let Err(e) = examroom::protocol::ClientFrame::parse(&text) {
            // A refusal names a code a client can act on, never an empty one.
            assert!(!e.code.is_empty());
        }
    });
}

#[test]
fn sdp_offers_and_candidates() {
    check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let _ = examroom::media::sdp::check_offer(&text, 64 * 1024, 8);
        let _ = examroom::media::sdp::check_candidate(&text);
    });
}

/// One RTP packet as the recorder sees it: whose, video or audio, header fields, payload.
type Packet = (bool, bool, u16, u32, bool, Vec<u8>);

#[test]
fn rtp_into_the_recorder() {
    check!().with_type::<Vec<Packet>>().for_each(|packets| {
        let key = DataKey::ephemeral();
        let (mut recorder, head) = Recorder::start(&key, "r-fuzz", 0);
        let mut spool = head;
        for (i, (nurse, video, seq, ts, marker, payload)) in packets.iter().enumerate() {
            let source = if *nurse { Source::Nurse } else { Source::Patient };
            let now = i as i64 * 20;
            let out = if *video {
                recorder.video(source, *seq, *ts, *marker, payload, now)
            } else {
                recorder.audio(source, *ts, payload, now)
            };
            spool.extend(out.sealed);
        }
        let (tail, _, _) = recorder.finish(packets.len() as i64 * 20);
        spool.extend(tail);
        // Whatever came in, the spool is a well-formed sealed object.
        sealed::open_all(&key, &spool).expect("the recorder's spool opens");
    });
}

#[test]
fn rtcp_as_the_sfu_reads_it() {
    check!().for_each(|bytes: &[u8]| {
        let mut buf = bytes;
        if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut buf) {
            let _ = examroom::media::sfu::wants_keyframe(&packets);
        }
    });
}

#[test]
fn sealed_objects_from_anywhere() {
    check!().for_each(|bytes: &[u8]| {
        let key = DataKey::ephemeral();
        let _ = sealed::Header::parse(bytes);
        // Random bytes never open under a key they were not sealed with.
        assert!(sealed::open_all(&key, bytes).is_err());
    });
}

#[test]
fn a_sealed_object_with_one_byte_changed_never_opens() {
    check!()
        .with_type::<(Vec<u8>, u16, u8)>()
        .for_each(|(plain, at, flip)| {
            let key = DataKey::ephemeral();
            let (mut sealer, mut object) = sealed::Sealer::new(&key, "r-fuzz", 64);
            object.extend(sealer.push(plain));
            object.extend(sealer.finish());
            assert_eq!(sealed::open_all(&key, &object).unwrap(), *plain);
            if *flip != 0 {
                let i = *at as usize % object.len();
                object[i] ^= flip;
                assert!(sealed::open_all(&key, &object).is_err(), "byte {i} changed");
            }
        });
}
