//! One participant's share of a recording as a WebM file of its own, sans-IO: their camera and microphone (or
//! the nurse's screen) cut out of the visit's multi-track file without transcoding. Players and ffmpeg seek a
//! file by its first video track, so the nurse's or a guest's video can be sought into only in a file where it
//! is the only video; the console plays one such file per participant side by side. Each segment is remuxed
//! on its own with a fresh muxer (every track of the visit's file already has strictly increasing times, so
//! the bytes do not depend on the segments before), which lets a byte range be served by remuxing only the
//! segments it touches.

use super::cues::{self, Cue};
use super::recorder::{CAMERA_DEFAULT_DIMS, Dims, SCREEN, SCREEN_DEFAULT_DIMS, SCREEN_TRACK, Source};
use super::webm::{self, Muxer, TrackSpec};

/// Whose media a participant's file holds: a camera with its microphone, or the nurse's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Camera(Source),
    Screen,
}

impl Feed {
    /// The feed whose video is `track` in the visit's file (the number a client names it by).
    pub fn of_video_track(track: u64) -> Option<Feed> {
        if track == SCREEN_TRACK {
            return Some(Feed::Screen);
        }
        Source::of_video_track(track).map(Feed::Camera)
    }

    pub fn video_track(self) -> u64 {
        match self {
            Feed::Camera(s) => s.video_track(),
            Feed::Screen => SCREEN_TRACK,
        }
    }

    /// A camera's microphone; a screen is recorded without sound.
    pub fn audio_track(self) -> Option<u64> {
        match self {
            Feed::Camera(s) => Some(s.audio_track()),
            Feed::Screen => None,
        }
    }

    fn keeps(self, track: u64) -> bool {
        track == self.video_track() || Some(track) == self.audio_track()
    }

    /// This feed's blocks of a segment (or of a whole file), in clusters that start on its own keyframes (and at
    /// the segment's start, and every few seconds without one).
    pub fn media(self, plain: &[u8]) -> Vec<u8> {
        let mut muxer = Muxer::new(vec![self.video_track()]);
        let mut out = Vec::new();
        for b in webm::blocks(plain).iter().filter(|b| self.keeps(b.track)) {
            out.extend(muxer.frame(b.track, b.ms, b.keyframe, b.frame));
        }
        out
    }

    /// Where the keyframes of [`Feed::media`]'s output are.
    pub fn cues(self, media: &[u8]) -> Vec<Cue> {
        cues::find(media, |t| t == self.video_track())
    }

    /// The file's header: this feed's tracks only, keeping their numbers (the manifest names them).
    pub fn header(self, dims: &Dims, duration_ms: f64, seek: &[u8]) -> Vec<u8> {
        let (slot, default) = match self {
            Feed::Camera(s) => (s.slot(), CAMERA_DEFAULT_DIMS),
            Feed::Screen => (SCREEN, SCREEN_DEFAULT_DIMS),
        };
        let mut tracks = vec![TrackSpec {
            number: self.video_track(),
            video: Some(dims[slot].unwrap_or(default)),
        }];
        tracks.extend(self.audio_track().map(|number| TrackSpec { number, video: None }));
        webm::header_with(&tracks, Some(duration_ms), seek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::webm::scan;

    /// A visit's segment: the patient (1–2), the nurse (3–4) and her screen (5), keyframes at different times.
    fn visit_segment() -> Vec<u8> {
        let mut m = Muxer::new(vec![1, 3, SCREEN_TRACK]);
        let mut data = Vec::new();
        for (track, ms, key) in [
            (1, 0, true),
            (2, 5, true),
            (3, 10, true),
            (4, 12, true),
            (5, 15, true),
            (1, 40, false),
            (3, 50, false),
            (4, 52, true),
            (2, 60, true),
            (3, 3_000, true),
            (1, 3_010, true),
            (4, 3_020, true),
        ] {
            data.extend(m.frame(track, ms, key, &[track as u8; 40]));
        }
        data
    }

    #[test]
    fn a_feed_keeps_its_own_tracks_times_and_frames_in_clusters_of_its_own_keyframes() {
        let nurse = Feed::of_video_track(3).unwrap();
        assert_eq!(nurse, Feed::Camera(Source::Nurse));
        let media = nurse.media(&visit_segment());
        let blocks = scan(&media).unwrap();
        assert_eq!(
            blocks,
            [
                (3, 10, true, 40),
                (4, 12, true, 40),
                (3, 50, false, 40),
                (4, 52, true, 40),
                (3, 3_000, true, 40),
                (4, 3_020, true, 40)
            ]
        );
        assert!(
            webm::blocks(&media)
                .iter()
                .all(|b| b.frame == [b.track as u8; 40])
        );
        // Its cues index its own keyframes only, each at a cluster.
        let cues = nurse.cues(&media);
        assert_eq!(
            cues.iter().map(|c| (c.track, c.ms)).collect::<Vec<_>>(),
            [(3, 10), (3, 3_000)]
        );
        for c in &cues {
            assert_eq!(&media[c.cluster as usize..][..4], [0x1F, 0x43, 0xB6, 0x75]);
        }
        // The screen has no sound; a number that is no one's video names no feed.
        assert_eq!(scan(&Feed::Screen.media(&visit_segment())).unwrap().len(), 1);
        assert_eq!(Feed::of_video_track(2), None);
        assert_eq!(Feed::of_video_track(6), Some(Feed::Camera(Source::Guest(0))));
    }

    #[test]
    fn the_same_segment_remuxes_to_the_same_bytes_and_a_whole_file_to_its_media() {
        let seg = visit_segment();
        let patient = Feed::Camera(Source::Patient);
        assert_eq!(patient.media(&seg), patient.media(&seg));
        // A whole file (header first) remuxes as its clusters do.
        let mut dims = Dims::default();
        dims[0] = Some((320, 240));
        let mut whole = patient.header(&dims, 3_100.0, &[]);
        let header_len = whole.len();
        whole.extend(&seg);
        assert_eq!(patient.media(&whole), patient.media(&seg));
        assert_eq!(
            &whole[header_len..],
            &seg[..],
            "the header is in front of the media"
        );
        // The header declares the feed's two tracks with the size a keyframe told.
        let h = patient.header(&dims, 1.0, &[]);
        assert!(h.windows(2).any(|w| w == 320u16.to_be_bytes()));
        assert_eq!(h.windows(5).filter(|w| *w == b"V_VP8").count(), 1);
        assert_eq!(h.windows(6).filter(|w| *w == b"A_OPUS").count(), 1);
        let screen = Feed::Screen.header(&dims, 1.0, &[]);
        assert_eq!(screen.windows(6).filter(|w| *w == b"A_OPUS").count(), 0);
    }
}
