//! One visit's recorder, sans-IO: RTP in, sealed bytes out. Video and audio packets become frames, frames
//! become WebM blocks on the visit's wall-clock timeline, and the blocks are sealed as they are produced, so
//! nothing in plaintext outlives a chunk in memory. During a secure pause packets are dropped (no media
//! bytes), and after it the recorder waits for a keyframe, which it asks the SFU to request. The clusters go
//! to a sealed spool, one per segment: [`Recorder::cut`] closes a segment and opens the next, and [`finalize`]
//! reseals a closed spool under the recording's key as the segment's object. The WebM header is not in any
//! segment: a reader writes it in front of them ([`webm_header`]), so the segments of every node a visit
//! moved through play as one file.

use super::depacketize::Vp8Depacketizer;
use super::sealed::{self, Header, SealError, Sealer};
use super::timeline::{RecordingState, Timeline};
use super::webm::{self, Muxer, TrackSpec};
use crate::crypto::DataKey;

/// What the caller does after feeding a packet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Sealed bytes to append to the spool.
    pub sealed: Vec<u8>,
    /// Ask this source's sender for a keyframe (after a pause or a loss).
    pub request_keyframe: bool,
}

/// Whose media: the patient's tracks are 1 (video) and 2 (audio), the nurse's 3 and 4, and the nurse's screen,
/// when the policy records it, 5 ([`SCREEN_TRACK`]). A player shows the first video and audio track (the
/// patient); the others are in the file for review tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Patient,
    Nurse,
}

impl Source {
    fn index(self) -> usize {
        self as usize
    }
    fn video_track(self) -> u64 {
        1 + 2 * self as u64
    }
    fn audio_track(self) -> u64 {
        2 + 2 * self as u64
    }
}

/// The nurse's screen capture's track in the file.
pub const SCREEN_TRACK: u64 = 5;
/// The size a screen track is declared at when no keyframe told it.
pub const SCREEN_DEFAULT_DIMS: (u32, u32) = (1280, 720);
/// Where the screen's depacketizer and sizes are kept, after the patient's (0) and the nurse's (1) camera.
const SCREEN: usize = 2;

/// The video sizes seen: the patient's camera, the nurse's camera, the nurse's screen.
pub type Dims = [Option<(u32, u32)>; 3];

#[derive(Default)]
struct SourceState {
    vp8: Vp8Depacketizer,
    /// (first RTP timestamp, its wall-clock ms after the start).
    video_base: Option<(u32, i64)>,
    audio_base: Option<(u32, i64)>,
    dims: Option<(u32, u32)>,
}

pub struct Recorder {
    timeline: Timeline,
    /// Where block times count from: the visit's first recorded moment, on whichever node that was.
    origin_ms: i64,
    muxer: Muxer,
    sealer: Sealer,
    sources: [SourceState; 3],
    media_bytes: u64,
}

/// RTP timestamp to milliseconds after the recording start.
fn to_ms(base: (u32, i64), ts: u32, clock_khz: i64) -> i64 {
    base.1 + (ts.wrapping_sub(base.0) as i32 as i64) / clock_khz
}

impl Recorder {
    /// A recorder and the spool's first bytes (its sealed-stream header).
    pub fn start(spool_key: &DataKey, spool_id: &str, now_ms: i64) -> (Recorder, Vec<u8>) {
        let (sealer, head) = Sealer::new(spool_key, spool_id, sealed::DEFAULT_CHUNK);
        let mut sources: [SourceState; 3] = Default::default();
        for s in &mut sources {
            s.vp8.reset();
        }
        (
            Recorder {
                timeline: Timeline::start(now_ms),
                origin_ms: now_ms,
                muxer: Muxer::new(vec![
                    Source::Patient.video_track(),
                    Source::Nurse.video_track(),
                    SCREEN_TRACK,
                ]),
                sealer,
                sources,
                media_bytes: 0,
            },
            head,
        )
    }

    fn paused(&self) -> bool {
        self.timeline.state() == RecordingState::Paused || self.timeline.ended_ms.is_some()
    }

    pub fn video(
        &mut self,
        source: Source,
        seq: u16,
        ts: u32,
        marker: bool,
        payload: &[u8],
        now_ms: i64,
    ) -> Output {
        let packet = (seq, ts, marker, payload);
        self.video_frame(source.index(), source.video_track(), packet, now_ms)
            .0
    }

    /// A packet of the nurse's screen capture (track 5); its first frame after a start or a pause opens a screen
    /// interval in the timeline.
    pub fn screen(&mut self, seq: u16, ts: u32, marker: bool, payload: &[u8], now_ms: i64) -> Output {
        let (out, framed) = self.video_frame(SCREEN, SCREEN_TRACK, (seq, ts, marker, payload), now_ms);
        if framed {
            self.timeline.screen_recorded(now_ms);
        }
        out
    }

    /// The nurse stopped her screen capture: its interval closes, and a new capture starts from a keyframe.
    pub fn screen_stopped(&mut self, now_ms: i64) {
        self.timeline.screen_stopped(now_ms);
        self.sources[SCREEN].vp8.reset();
    }

    /// Depacketizes onto `track`; also says whether a frame went into the file.
    fn video_frame(
        &mut self,
        slot: usize,
        track: u64,
        (seq, ts, marker, payload): (u16, u32, bool, &[u8]),
        now_ms: i64,
    ) -> (Output, bool) {
        if self.paused() {
            return (Output::default(), false);
        }
        let rel = now_ms - self.origin_ms;
        let st = &mut self.sources[slot];
        let (frame, ask) = st.vp8.push(seq, ts, marker, payload);
        let mut out = Output {
            request_keyframe: ask,
            ..Output::default()
        };
        let framed = frame.is_some();
        if let Some(f) = frame {
            let base = *st.video_base.get_or_insert((f.timestamp, rel));
            if f.keyframe && f.data.len() >= 10 && f.data[3..6] == [0x9D, 0x01, 0x2A] {
                st.dims = Some((
                    u16::from_le_bytes([f.data[6], f.data[7]]) as u32 & 0x3FFF,
                    u16::from_le_bytes([f.data[8], f.data[9]]) as u32 & 0x3FFF,
                ));
            }
            let ms = to_ms(base, f.timestamp, 90);
            self.media_bytes += f.data.len() as u64;
            let block = self.muxer.frame(track, ms, f.keyframe, &f.data);
            out.sealed = self.sealer.push(&block);
        }
        (out, framed)
    }

    pub fn audio(&mut self, source: Source, ts: u32, payload: &[u8], now_ms: i64) -> Output {
        if self.paused() || payload.is_empty() {
            return Output::default();
        }
        let rel = now_ms - self.origin_ms;
        let base = *self.sources[source.index()].audio_base.get_or_insert((ts, rel));
        let ms = to_ms(base, ts, 48);
        self.media_bytes += payload.len() as u64;
        let block = self.muxer.frame(source.audio_track(), ms, true, payload);
        Output {
            sealed: self.sealer.push(&block),
            request_keyframe: false,
        }
    }

    /// Secure pause or resume; returns whether the state changed. Resuming waits for keyframes.
    pub fn set_state(
        &mut self,
        state: RecordingState,
        reason: &str,
        by: &str,
        now_ms: i64,
    ) -> (bool, Output) {
        let changed = self.timeline.set(state, reason, by, now_ms);
        let mut out = Output::default();
        if changed && state == RecordingState::Active {
            for s in &mut self.sources {
                s.vp8.reset();
            }
            out.request_keyframe = true;
        }
        (changed, out)
    }

    pub fn state(&self) -> RecordingState {
        self.timeline.state()
    }

    /// This recording continues one another node was writing.
    pub fn set_continuation(&mut self, c: super::timeline::Continuation) {
        self.timeline.continues = Some(c);
    }

    /// Who is in the media room (the timeline keeps the manifest's list).
    pub fn timeline_mut(&mut self) -> &mut Timeline {
        &mut self.timeline
    }

    /// The visit became audio only or went back to video (marked in the timeline; the media decides itself).
    pub fn set_audio_only(&mut self, on: bool, reason: &str, by: &str, now_ms: i64) -> bool {
        self.timeline.set_audio_only(on, reason, by, now_ms)
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Counts block times from `origin_ms` (a part continuing a visit's recording uses its first part's start),
    /// before any media.
    pub fn set_origin(&mut self, origin_ms: i64) {
        self.origin_ms = origin_ms;
    }

    /// The video sizes seen so far: patient, nurse, the nurse's screen.
    pub fn dims(&self) -> Dims {
        [
            self.sources[0].dims,
            self.sources[1].dims,
            self.sources[SCREEN].dims,
        ]
    }

    /// Closes the open segment and starts the next, whose spool is sealed as `next_spool_id`: returns the old
    /// spool's final bytes and the new spool's first. The next block opens a new cluster, so every segment is
    /// whole clusters; the decoder state carries on (segments are played in sequence).
    pub fn cut(&mut self, spool_key: &DataKey, next_spool_id: &str) -> (Vec<u8>, Vec<u8>) {
        let (sealer, head) = Sealer::new(spool_key, next_spool_id, sealed::DEFAULT_CHUNK);
        let old = std::mem::replace(&mut self.sealer, sealer);
        self.muxer.cut();
        (old.finish(), head)
    }

    /// Ends the recording: the spool's final chunk, the timeline, and the number of media bytes recorded.
    pub fn finish(mut self, now_ms: i64) -> (Vec<u8>, Timeline, u64) {
        self.timeline.finish(now_ms);
        (self.sealer.finish(), self.timeline, self.media_bytes)
    }
}

/// The WebM header in front of a recording's segments: patient tracks 1–2, nurse tracks 3–4 and, when any
/// segment holds a frame of it, the nurse's screen as track 5; video dimensions when a keyframe told them
/// (players read them from the keyframes anyway).
pub fn webm_header(dims: Dims, duration_ms: f64) -> Vec<u8> {
    let mut tracks = Vec::new();
    for source in [Source::Patient, Source::Nurse] {
        tracks.push(TrackSpec {
            number: source.video_track(),
            video: Some(dims[source.index()].unwrap_or((640, 480))),
        });
        tracks.push(TrackSpec {
            number: source.audio_track(),
            video: None,
        });
    }
    if let Some(screen) = dims[SCREEN] {
        tracks.push(TrackSpec {
            number: SCREEN_TRACK,
            video: Some(screen),
        });
    }
    webm::header(&tracks, Some(duration_ms))
}

/// A segment's object: `prefix` (empty for a segment; a WebM header for a whole file) followed by the spool's
/// clusters, sealed under the recording's key as `object_id`. A spool cut short by a crash yields the media up
/// to its last whole chunk, trimmed to its last whole block.
pub fn finalize(
    spool_key: &DataKey,
    spool: &[u8],
    prefix: &[u8],
    key: &DataKey,
    object_id: &str,
) -> Result<(Vec<u8>, bool), SealError> {
    finalize_segment(spool_key, spool, prefix, key, object_id, false)
        .map(|(object, complete, _)| (object, complete))
}

/// [`finalize`], and with `find_screen` whether the media holds frames of the nurse's screen (a spool a crash
/// left says nothing about its tracks: the file's header must still declare track 5 if it is there).
pub fn finalize_segment(
    spool_key: &DataKey,
    spool: &[u8],
    prefix: &[u8],
    key: &DataKey,
    object_id: &str,
    find_screen: bool,
) -> Result<(Vec<u8>, bool, bool), SealError> {
    let header = Header::parse(spool)?.ok_or(SealError::Truncated)?;
    let full = header.chunk_size + sealed::TAG_LEN;
    let mut rest = &spool[header.len()..];
    let mut index = 0u32;
    let mut complete = false;
    let mut plain = Vec::with_capacity(rest.len());
    while rest.len() >= sealed::TAG_LEN {
        let take = rest.len().min(full);
        let last = take == rest.len();
        match sealed::open_chunk(spool_key, &header, index, &rest[..take], last) {
            Ok(chunk) => {
                plain.extend(chunk);
                complete = last;
            }
            // Not final: a crash cut the spool; keep what decrypts as a non-final chunk.
            Err(_) if take == full => plain.extend(sealed::open_chunk(
                spool_key,
                &header,
                index,
                &rest[..take],
                false,
            )?),
            Err(_) => break,
        }
        if last {
            break;
        }
        rest = &rest[take..];
        index += 1;
    }
    if !complete {
        // The crash cut a block: the segment ends after the last whole one.
        plain.truncate(webm::whole_prefix(&plain));
    }
    let screen =
        find_screen && webm::scan(&plain).is_some_and(|blocks| blocks.iter().any(|b| b.0 == SCREEN_TRACK));
    let (mut sealer, mut out) = Sealer::new(key, object_id, sealed::DEFAULT_CHUNK);
    out.extend(sealer.push(prefix));
    out.extend(sealer.push(&plain));
    out.extend(sealer.finish());
    Ok((out, complete, screen))
}

#[cfg(test)]
mod tests {
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
        // the capture stopped at 8 s.
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
            if now >= 8_000 {
                continue;
            }
            let keyframe = i % 10 == 0 || i == 60;
            let out = r.screen(i, i as u32 * 9_000, true, &vp8_packet(keyframe), now);
            spool.extend(out.sealed);
        }
        let dims = r.dims();
        assert_eq!(dims, [None, None, Some((320, 240))]);
        let (tail, timeline, _) = r.finish(10_000);
        spool.extend(tail);
        let spans: Vec<_> = timeline.screen.iter().map(|i| (i.start_ms, i.end_ms)).collect();
        assert_eq!(spans, vec![(0, Some(3_000)), (6_000, Some(8_000))]);
        let (object, _) = finalize(&spool_key, &spool, &webm_header(dims, 10_000.0), &key, "rec-s").unwrap();
        let webm = sealed::open_all(&key, &object).unwrap();
        let blocks = webm::scan(&webm).unwrap();
        assert!(blocks.iter().all(|b| b.0 == SCREEN_TRACK));
        assert!(blocks.iter().any(|b| b.1 < 3_000) && blocks.iter().any(|b| b.1 >= 6_000));
        assert!(
            blocks
                .iter()
                .all(|b| b.1 < 3_000 || (6_000..8_000).contains(&b.1)),
            "nothing of the screen from the pause or after the capture stopped"
        );
        // A recording without a screen has no track 5 in its header.
        let without = webm_header([None, None, None], 1.0);
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
        let header = webm_header([None, None, None], 66_000.0);
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
        let mut file = webm_header([Some((320, 240)), None, None], 50_000.0);
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
}
