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

/// Whose media: the patient's tracks are 1 (video) and 2 (audio), the nurse's 3 and 4, the nurse's screen,
/// when the policy records it, 5 ([`SCREEN_TRACK`]), and the visit's guests in the order they arrived 6 and 7,
/// 8 and 9, and so on (up to [`MAX_GUESTS`]). A player shows the first video and audio track (the patient); the
/// others are in the file for review tools, and the manifest names whose they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Patient,
    Nurse,
    /// The guest who arrived `n`-th (from 0).
    Guest(u8),
}

/// Guests whose tracks the file has room for (with the patient and the nurse, a visit's six people).
pub const MAX_GUESTS: usize = 4;
/// Sizes and depacketizers kept: the patient's camera, the nurse's, her screen, then each guest's camera.
const SLOTS: usize = 3 + MAX_GUESTS;

impl Source {
    /// The guest who arrived `n`-th, when the file has tracks for them.
    pub fn guest(n: usize) -> Option<Source> {
        (n < MAX_GUESTS).then_some(Source::Guest(n as u8))
    }
    /// Whose camera `track` is.
    pub fn of_video_track(track: u64) -> Option<Source> {
        Source::all().find(|s| s.video_track() == track)
    }
    /// Where this source's size is kept in [`Dims`].
    pub fn slot(self) -> usize {
        self.index()
    }
    fn index(self) -> usize {
        match self {
            Source::Patient => 0,
            Source::Nurse => 1,
            Source::Guest(n) => 3 + n as usize,
        }
    }
    pub fn video_track(self) -> u64 {
        match self {
            Source::Patient => 1,
            Source::Nurse => 3,
            Source::Guest(n) => 6 + 2 * n as u64,
        }
    }
    pub fn audio_track(self) -> u64 {
        self.video_track() + 1
    }
    fn all() -> impl Iterator<Item = Source> {
        [Source::Patient, Source::Nurse]
            .into_iter()
            .chain((0..MAX_GUESTS).map(|n| Source::Guest(n as u8)))
    }
}

/// The nurse's screen capture's track in the file.
pub const SCREEN_TRACK: u64 = 5;
/// The size a screen track is declared at when no keyframe told it.
pub const SCREEN_DEFAULT_DIMS: (u32, u32) = (1280, 720);
/// The size a guest's camera is declared at when no keyframe told it (their sound alone, so far).
pub const CAMERA_DEFAULT_DIMS: (u32, u32) = (640, 480);
/// Where the screen's depacketizer and sizes are kept, after the patient's (0) and the nurse's (1) camera.
pub const SCREEN: usize = 2;

/// The video sizes seen: the patient's camera, the nurse's camera, the nurse's screen, then each guest's camera.
/// A guest's slot holds a size as soon as any of their media is in the file (the header declares their tracks
/// then), a keyframe's when one came.
pub type Dims = [Option<(u32, u32)>; SLOTS];

#[derive(Default)]
struct SourceState {
    vp8: Vp8Depacketizer,
    /// (first RTP timestamp, its wall-clock ms after the start).
    video_base: Option<(u32, i64)>,
    audio_base: Option<(u32, i64)>,
    dims: Option<(u32, u32)>,
    /// When (ms after the start) the last keyframe went into the file, and when one was last asked for.
    last_keyframe_ms: Option<i64>,
    asked_ms: Option<i64>,
}

/// How often each video source is asked for a keyframe unless told otherwise (`recording.keyframe_interval_seconds`).
const KEYFRAME_EVERY_MS: i64 = 3_000;
/// How often a source whose video is dropped until a keyframe comes is asked again.
const KEYFRAME_RETRY_MS: i64 = 1_000;

pub struct Recorder {
    timeline: Timeline,
    /// Where block times count from: the visit's first recorded moment, on whichever node that was.
    origin_ms: i64,
    muxer: Muxer,
    sealer: Sealer,
    sources: [SourceState; SLOTS],
    media_bytes: u64,
    /// The nurse stopped her capture and has not offered a new one: packets still in flight from the old one
    /// are dropped rather than reopening the screen's interval.
    screen_ended: bool,
    /// Each video source is asked for a keyframe this often: browsers send one only when asked (or after a loss),
    /// and a file with keyframes minutes apart cannot be sought into without decoding all that went before.
    keyframe_every_ms: i64,
}

/// RTP timestamp to milliseconds after the recording start.
fn to_ms(base: (u32, i64), ts: u32, clock_khz: i64) -> i64 {
    base.1 + (ts.wrapping_sub(base.0) as i32 as i64) / clock_khz
}

impl Recorder {
    /// A recorder and the spool's first bytes (its sealed-stream header).
    pub fn start(spool_key: &DataKey, spool_id: &str, now_ms: i64) -> (Recorder, Vec<u8>) {
        let (sealer, head) = Sealer::new(spool_key, spool_id, sealed::DEFAULT_CHUNK);
        let mut sources: [SourceState; SLOTS] = Default::default();
        for s in &mut sources {
            s.vp8.reset();
        }
        (
            Recorder {
                timeline: Timeline::start(now_ms),
                origin_ms: now_ms,
                muxer: Muxer::new(
                    Source::all()
                        .map(Source::video_track)
                        .chain([SCREEN_TRACK])
                        .collect(),
                ),
                sealer,
                sources,
                media_bytes: 0,
                screen_ended: false,
                keyframe_every_ms: KEYFRAME_EVERY_MS,
            },
            head,
        )
    }

    /// Asks each video source for a keyframe at least every `ms` while its video is recorded.
    pub fn keyframe_every(&mut self, ms: i64) {
        self.keyframe_every_ms = ms.max(500);
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
        let (out, framed) = self.video_frame(source.index(), source.video_track(), packet, now_ms);
        if framed {
            self.present(source);
        }
        out
    }

    /// A packet of the nurse's screen capture (track 5); its first frame after a start or a pause opens a screen
    /// interval in the timeline.
    pub fn screen(&mut self, seq: u16, ts: u32, marker: bool, payload: &[u8], now_ms: i64) -> Output {
        if self.screen_ended {
            return Output::default();
        }
        let (out, framed) = self.video_frame(SCREEN, SCREEN_TRACK, (seq, ts, marker, payload), now_ms);
        if framed {
            self.timeline.screen_recorded(now_ms);
        }
        out
    }

    /// The nurse stopped her screen capture: its interval closes, and nothing of the screen is recorded until she
    /// offers a new capture (`screen_started`), which starts from a keyframe.
    pub fn screen_stopped(&mut self, now_ms: i64) {
        self.timeline.screen_stopped(now_ms);
        self.sources[SCREEN].vp8.reset();
        self.screen_ended = true;
    }

    /// A new connection carries `source` from now on (a rejoin, or the next nurse after a transfer): its RTP
    /// clocks start anew, so its times are taken afresh from the wall clock, and its video from a keyframe.
    pub fn rebase(&mut self, source: Source) {
        // The nurse's screen comes on her connection too.
        let slots = if source == Source::Nurse {
            vec![source.index(), SCREEN]
        } else {
            vec![source.index()]
        };
        for slot in slots {
            let st = &mut self.sources[slot];
            st.video_base = None;
            st.audio_base = None;
            st.vp8.reset();
        }
    }

    /// The nurse offered a screen capture: its packets are recorded again.
    pub fn screen_started(&mut self) {
        // A new capture has its own RTP clock.
        if self.screen_ended {
            self.sources[SCREEN].video_base = None;
        }
        self.screen_ended = false;
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
        let (frames, ask) = st.vp8.push(seq, ts, marker, payload);
        let mut out = Output {
            request_keyframe: ask,
            ..Output::default()
        };
        let framed = !frames.is_empty();
        for f in frames {
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
            let sealed = self.sealer.push(&block);
            // Usually one frame a packet: take its bytes rather than copy them.
            if out.sealed.is_empty() {
                out.sealed = sealed;
            } else {
                out.sealed.extend(sealed);
            }
            if f.keyframe {
                st.last_keyframe_ms = Some(rel);
            }
        }
        if framed {
            // Due for a keyframe: ask, so the file stays seekable; again each second until one comes (a request
            // can be lost, or come while the sender's encoder will not make one).
            let every = self.keyframe_every_ms;
            let due = st.last_keyframe_ms.is_some_and(|k| rel - k >= every)
                && st
                    .asked_ms
                    .is_none_or(|a| rel - a >= KEYFRAME_RETRY_MS.min(every));
            if due {
                st.asked_ms = Some(rel);
                out.request_keyframe = true;
            }
        } else if st.vp8.waiting_for_keyframe() {
            // Dropping everything until a keyframe (after a loss, a resume, a new connection): a request may have
            // been lost, so it is repeated every second until one comes.
            if out.request_keyframe || st.asked_ms.is_none_or(|a| rel - a >= KEYFRAME_RETRY_MS) {
                st.asked_ms = Some(rel);
                out.request_keyframe = true;
            }
        }
        (out, framed)
    }

    pub fn audio(&mut self, source: Source, ts: u32, payload: &[u8], now_ms: i64) -> Output {
        if self.paused() || payload.is_empty() {
            return Output::default();
        }
        self.present(source);
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

    /// A guest's media is in the file: the header declares their tracks.
    fn present(&mut self, source: Source) {
        if let Source::Guest(_) = source {
            self.sources[source.index()]
                .dims
                .get_or_insert(CAMERA_DEFAULT_DIMS);
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

    /// The video sizes seen so far: patient, nurse, the nurse's screen, each guest present.
    pub fn dims(&self) -> Dims {
        std::array::from_fn(|i| self.sources[i].dims)
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

/// The WebM header in front of a recording's segments: patient tracks 1–2, nurse tracks 3–4, when any segment
/// holds a frame of it the nurse's screen as track 5, and each guest whose media is in it (6–7, 8–9, …); video
/// dimensions when a keyframe told them (players read them from the keyframes anyway).
pub fn webm_header(dims: Dims, duration_ms: f64) -> Vec<u8> {
    webm_header_seeking(dims, duration_ms, &[])
}

/// Whether `track` is a video track of our layout (a camera or the screen): the ones the Cues index.
pub fn is_video_track(track: u64) -> bool {
    track == SCREEN_TRACK || Source::all().any(|s| s.video_track() == track)
}

/// [`webm_header`] with a SeekHead (`seek`, see `cues::seek_head`) first in the Segment.
pub fn webm_header_seeking(dims: Dims, duration_ms: f64, seek: &[u8]) -> Vec<u8> {
    let mut tracks = Vec::new();
    for source in Source::all() {
        if matches!(source, Source::Guest(_)) && dims[source.index()].is_none() {
            continue;
        }
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
    tracks.sort_by_key(|t| t.number);
    webm::header_with(&tracks, Some(duration_ms), seek)
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
        .map(|sealed| (sealed.object, sealed.complete))
}

/// Fills the sizes of `dims` a segment's blocks prove present but no keyframe told (a spool a crash left says
/// nothing about its tracks: the file's header must still declare the screen's and each guest's).
pub fn declare_found(dims: &mut Dims, tracks: &[u64]) {
    if tracks.contains(&SCREEN_TRACK) {
        dims[SCREEN].get_or_insert(SCREEN_DEFAULT_DIMS);
    }
    for source in Source::all().filter(|s| matches!(s, Source::Guest(_))) {
        if tracks.contains(&source.video_track()) || tracks.contains(&source.audio_track()) {
            dims[source.index()].get_or_insert(CAMERA_DEFAULT_DIMS);
        }
    }
}

/// A spool resealed as its object by [`finalize_segment`].
pub struct Finalized {
    pub object: Vec<u8>,
    /// False when the spool was cut short.
    pub complete: bool,
    /// With `find_tracks`, the track numbers the media holds blocks of (see [`declare_found`]).
    pub tracks: Vec<u64>,
    /// Where the media's video keyframes are (offsets in the media, after `prefix`).
    pub cues: Vec<super::cues::Cue>,
}

/// [`finalize`], with what the media holds: its tracks (with `find_tracks`) and its video keyframes' cues.
pub fn finalize_segment(
    spool_key: &DataKey,
    spool: &[u8],
    prefix: &[u8],
    key: &DataKey,
    object_id: &str,
    find_tracks: bool,
) -> Result<Finalized, SealError> {
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
    let mut tracks: Vec<u64> = if find_tracks {
        webm::scan(&plain).map_or_else(Vec::new, |blocks| blocks.iter().map(|b| b.0).collect())
    } else {
        Vec::new()
    };
    tracks.sort_unstable();
    tracks.dedup();
    let cues = super::cues::find(&plain, is_video_track);
    let (mut sealer, mut out) = Sealer::new(key, object_id, sealed::DEFAULT_CHUNK);
    out.extend(sealer.push(prefix));
    out.extend(sealer.push(&plain));
    out.extend(sealer.finish());
    Ok(Finalized {
        object: out,
        complete,
        tracks,
        cues,
    })
}

#[cfg(test)]
mod tests;
