//! The index a player seeks with (Matroska Cues), sans-IO. When a segment is sealed, [`find`] lists where each
//! video keyframe is: the track, its time and the offset of the cluster holding it within the segment (kept with
//! the segment's row, [`format`]/[`parse`]). When a reviewer opens the recording, the file served is the header,
//! the segments, then one Cues element indexing every video track ([`element`]), which the header's SeekHead
//! points to ([`seek_head`]): a player seeking into any participant's video finds a keyframe at or before the
//! point instead of decoding from the start (or from another track's keyframe, which is garbage for this one).

use super::webm;

/// A keyframe: its track, its time (ms on the visit's timeline), and where its cluster starts (bytes from the
/// start of the segment's data, or, once placed, of the Segment element's data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cue {
    pub track: u64,
    pub ms: i64,
    pub cluster: u64,
}

/// The keyframes of `video` tracks in our own clusters, once per track and cluster.
pub fn find(data: &[u8], video: impl Fn(u64) -> bool) -> Vec<Cue> {
    let mut out: Vec<Cue> = Vec::new();
    for ((track, ms, key, _), cluster) in webm::scan_with_clusters(data) {
        if key
            && video(track)
            && !out
                .iter()
                .any(|c| c.track == track && c.cluster == cluster as u64)
        {
            out.push(Cue {
                track,
                ms,
                cluster: cluster as u64,
            });
        }
    }
    out
}

/// As kept in a segment's row: `track:ms:offset`, comma-separated.
pub fn format(cues: &[Cue]) -> String {
    cues.iter()
        .map(|c| format!("{}:{}:{}", c.track, c.ms, c.cluster))
        .collect::<Vec<_>>()
        .join(",")
}

/// The cues a row holds; rows written before cues hold none (and anything unreadable is skipped).
pub fn parse(text: &str) -> Vec<Cue> {
    text.split(',')
        .filter_map(|c| {
            let mut f = c.split(':');
            Some(Cue {
                track: f.next()?.parse().ok()?,
                ms: f.next()?.parse().ok()?,
                cluster: f.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// The SeekHead naming where the Cues are (bytes from the start of the Segment's data). Its size never depends on
/// the position, so a header can be built once to learn its length and again with the position.
pub fn seek_head(cues_at: u64) -> Vec<u8> {
    let position = webm::fixed_uint(0x53AC, cues_at); // SeekPosition, 8 bytes
    let seek = webm::element(
        0x4DBB,
        &[webm::element(0x53AB, &[0x1C, 0x53, 0xBB, 0x6B]), position].concat(),
    );
    webm::element(0x114D9B74, &seek)
}

/// The Cues element for `cues` placed on the Segment's data (sorted by time, as players expect).
pub fn element(cues: &[Cue]) -> Vec<u8> {
    let mut sorted = cues.to_vec();
    sorted.sort_by_key(|c| (c.ms, c.track));
    let points: Vec<u8> = sorted
        .iter()
        .flat_map(|c| {
            let positions = [webm::uint(0xF7, c.track), webm::uint(0xF1, c.cluster)].concat();
            let point = [
                webm::uint(0xB3, c.ms.max(0) as u64),
                webm::element(0xB7, &positions),
            ]
            .concat();
            webm::element(0xBB, &point)
        })
        .collect();
    webm::element(0x1C53BB6B, &points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::webm::{AUDIO_TRACK, Muxer, VIDEO_TRACK};

    #[test]
    fn every_video_tracks_keyframes_are_indexed_by_their_cluster() {
        let mut m = Muxer::new(vec![VIDEO_TRACK, 3]);
        let mut data = Vec::new();
        let mut at = Vec::new();
        for (track, ms, key) in [
            (VIDEO_TRACK, 0, true),
            (AUDIO_TRACK, 5, true),
            (3, 10, true),
            (VIDEO_TRACK, 40, false),
            (3, 50, false),
            (3, 3000, true),
            (VIDEO_TRACK, 3010, true),
        ] {
            at.push(data.len());
            data.extend(m.frame(track, ms, key, &[0; 50]));
        }
        let cues = find(&data, |t| t == VIDEO_TRACK || t == 3);
        // Track 1's first keyframe opens the first cluster; track 3's keyframe at 10 ms opens its own (a
        // keyframe of any video track starts a cluster), as do the two at 3 s.
        assert_eq!(
            cues.iter().map(|c| (c.track, c.ms)).collect::<Vec<_>>(),
            [(1, 0), (3, 10), (3, 3000), (1, 3010)]
        );
        for c in &cues {
            assert_eq!(
                &data[c.cluster as usize..c.cluster as usize + 4],
                [0x1F, 0x43, 0xB6, 0x75],
                "{c:?}"
            );
        }
        assert_eq!(parse(&format(&cues)), cues);
        assert_eq!(parse(""), []);
    }

    #[test]
    fn the_seek_head_has_one_size_and_the_cues_are_in_time_order() {
        assert_eq!(seek_head(0).len(), seek_head(u64::MAX >> 8).len());
        let e = element(&[
            Cue {
                track: 3,
                ms: 500,
                cluster: 900,
            },
            Cue {
                track: 1,
                ms: 0,
                cluster: 0,
            },
        ]);
        assert!(e.starts_with(&[0x1C, 0x53, 0xBB, 0x6B]));
        // CueTrack: id, a one-byte size, the track number.
        let first = e.windows(3).position(|w| w == [0xF7, 0x81, 1]).unwrap();
        let second = e.windows(3).position(|w| w == [0xF7, 0x81, 3]).unwrap();
        assert!(first < second, "track 1 at 0 ms first");
    }
}
