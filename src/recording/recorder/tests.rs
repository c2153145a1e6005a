//! The recorder without a server: pauses, the screen, guests, cut spools, segments.

use super::*;
use crate::recording::webm::{AUDIO_TRACK, VIDEO_TRACK};

fn vp8_packet(keyframe: bool) -> Vec<u8> {
    let mut p = vec![0x10]; // S=1, PID=0, no extensions
    if keyframe {
        // Frame tag (key), start code, 320x240.
        p.extend([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]);
    } else {
        p.extend([0x11, 0x02, 0x00]);
    }
    p.extend([0xAB; 200]);
    p
}

#[test]
fn a_recording_with_a_pause_has_no_media_from_the_pause() {
    let spool_key = DataKey::random_for_tests();
    let key = DataKey::random_for_tests();
    let (mut r, mut spool) = Recorder::start(&spool_key, "spool-1", 1_000);
    let mut seq = 0u16;
    let mut requests = 0;
    // 10 s of 10 fps video and 50 packets/s of audio, paused from 3 s to 6 s.
    for tick in 0..500i64 {
        let now = 1_000 + tick * 20;
        if tick == 150 {
            assert!(
                r.set_state(RecordingState::Paused, "ssn on screen", "nurse-x", now)
                    .0
            );
        }
        if tick == 300 {
            let (changed, out) = r.set_state(RecordingState::Active, "closed", "nurse-x", now);
            assert!(changed && out.request_keyframe);
        }
        if tick % 5 == 0 {
            let key_now = tick % 50 == 0 || (300..305).contains(&tick);
            seq = seq.wrapping_add(1);
            let out = r.video(
                Source::Patient,
                seq,
                (tick * 20 * 90) as u32,
                true,
                &vp8_packet(key_now),
                now,
            );
            requests += out.request_keyframe as u32;
            spool.extend(out.sealed);
        }
        spool.extend(
            r.audio(Source::Patient, (tick * 960) as u32, &[0xFC; 40], now)
                .sealed,
        );
        spool.extend(
            r.audio(Source::Nurse, (tick * 960) as u32, &[0xFD; 40], now)
                .sealed,
        );
    }
    let r_dims = r.dims();
    let (tail, timeline, _) = r.finish(11_000);
    let header = webm_header(r_dims, 10_000.0);
    spool.extend(tail);
    assert_eq!(timeline.pauses.len(), 1);
    assert_eq!(requests, 0, "no loss on this path");

    let (object, complete) = finalize(&spool_key, &spool, &header, &key, "rec-1").unwrap();
    assert!(complete);
    assert!(
        !object.windows(4).any(|w| w == [0x1A, 0x45, 0xDF, 0xA3]),
        "sealed"
    );
    let webm = sealed::open_all(&key, &object).unwrap();
    assert!(webm.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
    let blocks = webm::scan(&webm).unwrap();
    let in_pause = blocks.iter().filter(|b| b.1 >= 3_000 && b.1 < 6_000).count();
    assert_eq!(in_pause, 0, "no media from the paused interval");
    assert!(
        blocks.iter().any(|b| b.0 == VIDEO_TRACK && b.1 >= 6_000 && b.2),
        "keyframe after the pause"
    );
    assert!(blocks.iter().any(|b| b.0 == AUDIO_TRACK && b.1 < 3_000));
    assert!(
        blocks.iter().any(|b| b.0 == 4 && b.1 < 3_000),
        "the nurse's audio is track 4"
    );
    assert!(
        blocks
            .iter()
            .filter(|b| b.0 == AUDIO_TRACK)
            .all(|b| b.1 < 3_000 || b.1 >= 6_000)
    );
}

#[test]
fn the_nurses_screen_is_track_5_paused_like_the_camera_and_in_the_timeline() {
    let spool_key = DataKey::random_for_tests();
    let key = DataKey::random_for_tests();
    let (mut r, mut spool) = Recorder::start(&spool_key, "spool-s", 0);
    // 10 s of screen at 10 fps (a keyframe every second and after the pause), paused from 3 s to 6 s,
    // the capture stopped at 8 s and a new one offered at 9 s.
    for i in 0..100u16 {
        let now = i as i64 * 100;
        if now == 3_000 {
            r.set_state(RecordingState::Paused, "emr open", "emr", now);
        }
        if now == 6_000 {
            r.set_state(RecordingState::Active, "emr closed", "emr", now);
        }
        if now == 8_000 {
            r.screen_stopped(now);
        }
        if now == 9_000 {
            r.screen_started();
        }
        // Packets of the stopped capture still in flight for 300 ms (a keyframe among them) reopen nothing.
        if (8_300..9_000).contains(&now) {
            continue;
        }
        let keyframe = i % 10 == 0 || i == 60 || i == 81;
        // The new capture from 9 s has an RTP clock of its own.
        let ts = if now >= 9_000 {
            3_000_000_000u32.wrapping_add(i as u32 * 9_000)
        } else {
            i as u32 * 9_000
        };
        let out = r.screen(i, ts, true, &vp8_packet(keyframe), now);
        spool.extend(out.sealed);
    }
    let dims = r.dims();
    let mut expected = Dims::default();
    expected[2] = Some((320, 240));
    assert_eq!(dims, expected);
    let (tail, timeline, _) = r.finish(10_000);
    spool.extend(tail);
    let spans: Vec<_> = timeline.screen.iter().map(|i| (i.start_ms, i.end_ms)).collect();
    assert_eq!(
        spans,
        vec![(0, Some(3_000)), (6_000, Some(8_000)), (9_000, Some(10_000))]
    );
    let (object, _) = finalize(&spool_key, &spool, &webm_header(dims, 10_000.0), &key, "rec-s").unwrap();
    let webm = sealed::open_all(&key, &object).unwrap();
    let blocks = webm::scan(&webm).unwrap();
    assert!(blocks.iter().all(|b| b.0 == SCREEN_TRACK));
    assert!(blocks.iter().any(|b| b.1 < 3_000) && blocks.iter().any(|b| b.1 >= 6_000));
    assert!(
        blocks
            .iter()
            .all(|b| b.1 < 3_000 || (6_000..8_000).contains(&b.1) || (9_000..10_000).contains(&b.1)),
        "nothing of the screen from the pause or after the capture stopped until a new one"
    );
    // A recording without a screen has no track 5 in its header.
    let without = webm_header(Dims::default(), 1.0);
    assert!(webm_header(dims, 1.0).len() > without.len());
}

#[test]
fn a_spool_cut_by_a_crash_still_yields_its_whole_chunks() {
    let spool_key = DataKey::random_for_tests();
    let key = DataKey::random_for_tests();
    let (mut r, mut spool) = Recorder::start(&spool_key, "spool-2", 0);
    for i in 0..2000u16 {
        spool.extend(
            r.video(
                Source::Patient,
                i,
                i as u32 * 3000,
                true,
                &vp8_packet(i % 30 == 0),
                i as i64 * 33,
            )
            .sealed,
        );
    }
    // The process died: no final chunk, and a partial chunk at the end.
    let cut = &spool[..spool.len() - 100];
    let header = webm_header(Dims::default(), 66_000.0);
    let (object, complete) = finalize(&spool_key, cut, &header, &key, "rec-2").unwrap();
    assert!(!complete);
    let webm = sealed::open_all(&key, &object).unwrap();
    // Whole blocks up to the crash survive (a block cut by the chunk boundary is dropped by players).
    assert!(webm.len() > 64 * 1024);
}

#[test]
fn segments_cut_while_recording_play_as_one_file_behind_one_header() {
    let spool_key = DataKey::random_for_tests();
    let key = DataKey::random_for_tests();
    let (mut r, mut spool) = Recorder::start(&spool_key, "rec-3/0", 50_000);
    // A part that continues a visit begun 40 s earlier counts from the visit's start.
    r.set_origin(10_000);
    let mut objects = Vec::new();
    for i in 0..300u16 {
        let now = 50_000 + i as i64 * 33;
        if i > 0 && i % 100 == 0 {
            let (tail, head) = r.cut(&spool_key, &format!("rec-3/{}", i / 100));
            spool.extend(tail);
            let id = format!("rec-3/{}", i / 100 - 1);
            objects.push(finalize(&spool_key, &spool, &[], &key, &id).unwrap());
            spool = head;
        }
        spool.extend(
            r.video(
                Source::Patient,
                i,
                i as u32 * 3000,
                true,
                &vp8_packet(i % 90 == 0),
                now,
            )
            .sealed,
        );
    }
    let (tail, _, _) = r.finish(60_000);
    spool.extend(tail);
    objects.push(finalize(&spool_key, &spool, &[], &key, "rec-3/2").unwrap());
    assert!(objects.iter().all(|(_, complete)| *complete));
    let mut file = webm_header(first_camera(), 50_000.0);
    for (i, (object, _)) in objects.iter().enumerate() {
        let plain = sealed::open_all(&key, object).unwrap();
        assert!(
            plain.starts_with(&[0x1F, 0x43, 0xB6, 0x75]),
            "segment {i} starts with a cluster"
        );
        file.extend(plain);
    }
    let blocks = webm::scan(&file).unwrap();
    assert_eq!(blocks.len(), 300, "every frame, once");
    assert_eq!(blocks[0].1, 40_000, "times count from the visit's first part");
    assert!(
        blocks.windows(2).all(|w| w[1].1 > w[0].1),
        "strictly increasing across segments"
    );
}

#[test]
fn a_guests_media_goes_to_tracks_of_their_own_declared_in_the_header() {
    let spool_key = DataKey::random_for_tests();
    let key = DataKey::random_for_tests();
    let (mut r, mut spool) = Recorder::start(&spool_key, "spool-g", 0);
    let (first, second) = (Source::guest(0).unwrap(), Source::guest(1).unwrap());
    assert_eq!((first.video_track(), first.audio_track()), (6, 7));
    assert_eq!((second.video_track(), second.audio_track()), (8, 9));
    assert_eq!(Source::guest(MAX_GUESTS), None, "no tracks for a fifth guest");
    for i in 0..20u16 {
        let now = i as i64 * 100;
        spool.extend(
            r.video(
                Source::Patient,
                i,
                i as u32 * 9_000,
                true,
                &vp8_packet(i == 0),
                now,
            )
            .sealed,
        );
        spool.extend(
            r.video(first, i, i as u32 * 9_000, true, &vp8_packet(i == 0), now)
                .sealed,
        );
        spool.extend(r.audio(first, i as u32 * 960, &[0xFC; 40], now).sealed);
        // The second guest joined with their microphone alone.
        spool.extend(r.audio(second, i as u32 * 960, &[0xFD; 40], now).sealed);
    }
    let dims = r.dims();
    assert_eq!(
        dims[3],
        Some((320, 240)),
        "the first guest's keyframe told their size"
    );
    assert_eq!(
        dims[4],
        Some(CAMERA_DEFAULT_DIMS),
        "the second is present, at a usual size"
    );
    assert_eq!(dims[5], None);
    let (tail, _, _) = r.finish(2_000);
    spool.extend(tail);
    let header = webm_header(dims, 2_000.0);
    let (object, _) = finalize(&spool_key, &spool, &header, &key, "rec-g").unwrap();
    let file = sealed::open_all(&key, &object).unwrap();
    let blocks = webm::scan(&file).unwrap();
    let mut tracks: Vec<u64> = blocks.iter().map(|b| b.0).collect();
    tracks.sort_unstable();
    tracks.dedup();
    assert_eq!(tracks, vec![1, 6, 7, 9]);
    // A spool a crash left says nothing about sizes: the tracks its blocks hold are declared all the same.
    let found = finalize_segment(&spool_key, &spool, &[], &key, "rec-g2", true)
        .unwrap()
        .tracks;
    let mut recovered = Dims::default();
    declare_found(&mut recovered, &found);
    let mut both_guests = Dims::default();
    both_guests[3] = Some(CAMERA_DEFAULT_DIMS);
    both_guests[4] = Some(CAMERA_DEFAULT_DIMS);
    assert_eq!(recovered, both_guests, "the two guests, no screen");
}

fn first_camera() -> Dims {
    let mut d = Dims::default();
    d[0] = Some((320, 240));
    d
}

#[test]
fn a_new_connection_on_a_source_is_timed_by_the_wall_clock_not_the_old_rtp_clock() {
    let spool_key = DataKey::random_for_tests();
    let key = DataKey::random_for_tests();
    let (mut r, mut spool) = Recorder::start(&spool_key, "spool-t", 0);
    // The first nurse for 2 s, RTP clock from 1_000_000; the next from 3 s, her clock from 4_000_000_000.
    for i in 0..20u16 {
        let out = r.video(
            Source::Nurse,
            i,
            1_000_000 + i as u32 * 9_000,
            true,
            &vp8_packet(i == 0),
            i as i64 * 100,
        );
        spool.extend(out.sealed);
    }
    r.rebase(Source::Nurse);
    for i in 0..20u16 {
        let (ts, now) = (
            4_000_000_000u32.wrapping_add(i as u32 * 9_000),
            3_000 + i as i64 * 100,
        );
        let out = r.video(Source::Nurse, 500 + i, ts, true, &vp8_packet(i == 0), now);
        spool.extend(out.sealed);
    }
    let dims = r.dims();
    let (tail, _, _) = r.finish(5_000);
    spool.extend(tail);
    let (object, _) = finalize(&spool_key, &spool, &webm_header(dims, 5_000.0), &key, "rec-t").unwrap();
    let blocks = webm::scan(&sealed::open_all(&key, &object).unwrap()).unwrap();
    let times: Vec<i64> = blocks.iter().map(|b| b.1).collect();
    assert_eq!(times.len(), 40, "{times:?}");
    assert!(times[..20].iter().all(|t| (0..2_000).contains(t)), "{times:?}");
    assert!(
        times[20..].iter().all(|t| (3_000..5_000).contains(t)),
        "{times:?}"
    );
}

#[test]
fn each_camera_is_asked_for_a_keyframe_every_interval_so_the_file_seeks() {
    let spool_key = DataKey::random_for_tests();
    let (mut r, _) = Recorder::start(&spool_key, "spool-k", 0);
    r.keyframe_every(2_000);
    // 10 fps for 9 s; the browser sends a keyframe only at the start, and then only when asked.
    let mut asked = Vec::new();
    let mut pending = false;
    for (n, now) in (0..90i64).map(|n| (n, n * 100)) {
        let out = r.video(
            Source::Nurse,
            n as u16,
            (now * 90) as u32,
            true,
            &vp8_packet(n == 0 || pending),
            now,
        );
        pending = out.request_keyframe;
        if out.request_keyframe {
            asked.push(now);
        }
    }
    // Asked 2 s after each keyframe (which the request brings at the next frame): 2.0, 4.1, 6.2, 8.3 s.
    assert_eq!(asked, [2_000, 4_100, 6_200, 8_300]);

    // A sender that does not answer is asked again each second, not at every frame.
    let (mut r, _) = Recorder::start(&spool_key, "spool-k2", 0);
    r.keyframe_every(2_000);
    let asked = (0..90i64)
        .filter(|n| {
            let now = n * 100;
            r.video(
                Source::Patient,
                *n as u16,
                (now * 90) as u32,
                true,
                &vp8_packet(*n == 0),
                now,
            )
            .request_keyframe
        })
        .count();
    assert_eq!(asked, 7, "at 2, 3, 4, 5, 6, 7 and 8 s");
}

#[test]
fn a_source_waiting_for_a_keyframe_is_asked_again_every_second() {
    let spool_key = DataKey::random_for_tests();
    let (mut r, _) = Recorder::start(&spool_key, "spool-w", 0);
    // A keyframe, then a lost packet: everything is dropped until the next keyframe, which the sender does not
    // send (the request was lost): it is asked when the loss is known (three frames came after the gap), then
    // once a second, not at every packet.
    let mut asked = Vec::new();
    for n in 0..34i64 {
        let seq = if n == 0 { 0 } else { n as u16 + 1 };
        let out = r.video(
            Source::Patient,
            seq,
            (n * 100 * 90) as u32,
            true,
            &vp8_packet(n == 0),
            n * 100,
        );
        if out.request_keyframe {
            asked.push(n * 100);
        }
    }
    // Each packet here is a frame: the loss is known at the third after it.
    let known = 300;
    assert_eq!(asked, [known, known + 1_000, known + 2_000, known + 3_000]);
}
