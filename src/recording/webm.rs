//! A minimal WebM (Matroska) muxer for VP8 video and Opus audio tracks, written in-process so the
//! default recording path needs no ffmpeg. It produces bytes only (sans-IO): the header (EBML, Segment, Info
//! with the duration, Tracks), then clusters of SimpleBlocks. Clusters start on video keyframes (so a player
//! can seek to them) or every few seconds, and have an unknown size, as live WebM does. Times are milliseconds
//! on the visit's wall clock; a secure pause is simply a stretch with no blocks.

/// Longest cluster: block times are i16 milliseconds relative to their cluster.
const MAX_CLUSTER_MS: i64 = 5_000;
/// Track numbers of the single-participant layout used in tests.
pub const VIDEO_TRACK: u64 = 1;
pub const AUDIO_TRACK: u64 = 2;

/// One track of the file: its number and, for video, its dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSpec {
    pub number: u64,
    pub video: Option<(u32, u32)>,
}

fn vint_size(value: u64) -> Vec<u8> {
    // EBML variable-size integers: the length marker bit, then the value.
    for len in 1..=8u32 {
        if value < (1u64 << (7 * len)) - 1 {
            let marked = value | (1u64 << (7 * len));
            return marked.to_be_bytes()[(8 - len as usize)..].to_vec();
        }
    }
    panic!("EBML size too large");
}

pub(super) fn element(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend(vint_size(body.len() as u64));
    out.extend_from_slice(body);
    out
}

fn id_bytes(id: u32) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

pub(super) fn uint(id: u32, v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(id, &bytes[skip..])
}

/// An unsigned integer always written on 8 bytes (a position filled in after the element's size is fixed).
pub(super) fn fixed_uint(id: u32, v: u64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

fn float(id: u32, v: f64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

fn string(id: u32, s: &str) -> Vec<u8> {
    element(id, s.as_bytes())
}

/// An element of unknown size (Segment, Cluster): everything that follows belongs to it.
fn open_unknown(id: u32) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    out
}

/// Opus identification header (RFC 7845) for CodecPrivate: 2 channels, 48 kHz, 3840 samples pre-skip.
fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(2);
    h.extend(3840u16.to_le_bytes());
    h.extend(48_000u32.to_le_bytes());
    h.extend(0i16.to_le_bytes());
    h.push(0);
    h
}

/// The file's start: EBML header, Segment, Info (duration in ms when known), Tracks.
pub fn header(tracks: &[TrackSpec], duration_ms: Option<f64>) -> Vec<u8> {
    header_with(tracks, duration_ms, &[])
}

/// Where the Segment's data starts in a [`header`]: positions inside the file (SeekHead, Cues) count from here.
pub fn segment_data_start(header: &[u8]) -> usize {
    // The EBML element (a 4-byte id, its size, its body), then the Segment's 4-byte id and 8-byte unknown size.
    let (size, len) = read_size(&header[4..]).expect("our header");
    4 + len + size.unwrap_or(0) as usize + 12
}

/// [`header`] with `seek` (a SeekHead) first in the Segment.
pub fn header_with(tracks: &[TrackSpec], duration_ms: Option<f64>, seek: &[u8]) -> Vec<u8> {
    let ebml = [
        uint(0x4286, 1),        // EBMLVersion
        uint(0x42F7, 1),        // EBMLReadVersion
        uint(0x42F2, 4),        // EBMLMaxIDLength
        uint(0x42F3, 8),        // EBMLMaxSizeLength
        string(0x4282, "webm"), // DocType
        uint(0x4287, 4),        // DocTypeVersion
        uint(0x4285, 2),        // DocTypeReadVersion
    ]
    .concat();
    let mut info = [
        uint(0x2AD7B1, 1_000_000),  // TimestampScale: 1 ms
        string(0x4D80, "examroom"), // MuxingApp
        string(0x5741, "examroom"), // WritingApp
    ]
    .concat();
    if let Some(d) = duration_ms {
        info.extend(float(0x4489, d)); // Duration
    }
    let entries: Vec<u8> = tracks
        .iter()
        .flat_map(|t| {
            let common = [
                uint(0xD7, t.number),   // TrackNumber
                uint(0x73C5, t.number), // TrackUID
                uint(0x9C, 0),          // FlagLacing
            ]
            .concat();
            let body = match t.video {
                Some((w, h)) => [
                    common,
                    uint(0x83, 1), // TrackType: video
                    string(0x86, "V_VP8"),
                    element(0xE0, &[uint(0xB0, w as u64), uint(0xBA, h as u64)].concat()),
                ]
                .concat(),
                None => [
                    common,
                    uint(0x83, 2), // TrackType: audio
                    string(0x86, "A_OPUS"),
                    element(0x63A2, &opus_head()), // CodecPrivate
                    uint(0x56AA, 6_500_000),       // CodecDelay (ns)
                    uint(0x56BB, 80_000_000),      // SeekPreRoll (ns)
                    element(0xE1, &[float(0xB5, 48_000.0), uint(0x9F, 2)].concat()),
                ]
                .concat(),
            };
            element(0xAE, &body)
        })
        .collect();
    [
        element(0x1A45DFA3, &ebml),
        open_unknown(0x18538067), // Segment
        seek.to_vec(),
        element(0x1549A966, &info),
        element(0x1654AE6B, &entries),
    ]
    .concat()
}

/// Turns frames into clusters and blocks.
pub struct Muxer {
    video_tracks: Vec<u64>,
    cluster_ms: Option<i64>,
    last_ms: i64,
    /// Each track's last block time: a track's blocks strictly increase (two frames in one millisecond, or a
    /// sender's clock stepping back, would give a player two blocks at once or a step back to seek into).
    last_of: Vec<(u64, i64)>,
}

impl Muxer {
    /// A muxer that starts clusters on keyframes of these video tracks.
    pub fn new(video_tracks: Vec<u64>) -> Muxer {
        Muxer {
            video_tracks,
            cluster_ms: None,
            last_ms: 0,
            last_of: Vec::new(),
        }
    }

    /// `ms` for the next block of `track`: at least one past its last.
    fn after_last(&mut self, track: u64, ms: i64) -> i64 {
        match self.last_of.iter_mut().find(|(t, _)| *t == track) {
            Some((_, last)) => {
                *last = ms.max(*last + 1);
                *last
            }
            None => {
                self.last_of.push((track, ms));
                ms
            }
        }
    }

    /// The bytes for one frame at `ms`. A video frame whose time is not after its track's last block moves to
    /// just after it (frames come in decoding order); an audio packet that is (a late or repeated one) is left
    /// out rather than played out of order.
    pub fn frame(&mut self, track: u64, ms: i64, keyframe: bool, data: &[u8]) -> Vec<u8> {
        let ms = ms.max(0);
        let audio = !self.video_tracks.contains(&track);
        if audio && self.last_of.iter().any(|(t, last)| *t == track && ms <= *last) {
            return Vec::new();
        }
        let ms = self.after_last(track, ms);
        let mut out = Vec::new();
        let new_cluster = match self.cluster_ms {
            None => true,
            Some(start) => {
                (self.video_tracks.contains(&track) && keyframe && ms > start)
                    || ms - start >= MAX_CLUSTER_MS
                    || ms < start
            }
        };
        if new_cluster {
            out.extend(open_unknown(0x1F43B675)); // Cluster
            out.extend(uint(0xE7, ms as u64)); // Timestamp
            self.cluster_ms = Some(ms);
        }
        let relative = (ms - self.cluster_ms.expect("cluster open")) as i16;
        // The track number as a one-byte vint (tracks 1 and 2).
        let mut block = vec![0x80 | (track as u8 & 0x7F)];
        block.extend(relative.to_be_bytes());
        block.push(if keyframe || track == AUDIO_TRACK {
            0x80
        } else {
            0x00
        });
        block.extend_from_slice(data);
        out.extend(element(0xA3, &block)); // SimpleBlock
        self.last_ms = self.last_ms.max(ms);
        out
    }

    /// The next block opens a new cluster (a segment ends here).
    pub fn cut(&mut self) {
        self.cluster_ms = None;
    }

    pub fn last_ms(&self) -> i64 {
        self.last_ms
    }
}

/// A block as [`scan`] lists it: track, ms, keyframe, length.
pub type ScannedBlock = (u64, i64, bool, usize);

/// Walks our own output and lists its blocks as (track, ms, keyframe, len). A truncated tail (a recording cut
/// by a crash) ends the walk, as it ends playback; `None` only for bytes that are not our WebM at all.
pub fn scan(data: &[u8]) -> Option<Vec<ScannedBlock>> {
    walk(data).map(|(blocks, _)| blocks)
}

/// How many leading bytes of our output are whole elements: a spool cut by a crash ends inside a block, and
/// a segment must end on an element boundary, or the next segment's clusters would be read as that block.
pub fn whole_prefix(data: &[u8]) -> usize {
    walk(data).map_or(0, |(_, end)| end)
}

/// [`scan`], each block with where its cluster starts (its offset in `data`).
pub fn scan_with_clusters(data: &[u8]) -> Vec<(ScannedBlock, usize)> {
    walk_clusters(data).map_or_else(Vec::new, |(blocks, _)| blocks)
}

/// One SimpleBlock of our output, its frame borrowed.
pub struct Block<'a> {
    pub track: u64,
    pub ms: i64,
    pub keyframe: bool,
    pub frame: &'a [u8],
}

/// Every whole block of our output (a segment's clusters, or a whole file), in file order.
pub fn blocks(data: &[u8]) -> Vec<Block<'_>> {
    walk_blocks(data).map_or_else(Vec::new, |(blocks, _)| {
        blocks
            .into_iter()
            .map(|((track, ms, keyframe, len), _, at)| Block {
                track,
                ms,
                keyframe,
                frame: &data[at..at + len],
            })
            .collect()
    })
}

/// The blocks, and where the last whole element ends.
fn walk(data: &[u8]) -> Option<(Vec<ScannedBlock>, usize)> {
    walk_clusters(data).map(|(blocks, end)| (blocks.into_iter().map(|(b, _)| b).collect(), end))
}

fn walk_clusters(data: &[u8]) -> Option<(Vec<(ScannedBlock, usize)>, usize)> {
    walk_blocks(data).map(|(blocks, end)| (blocks.into_iter().map(|(b, c, _)| (b, c)).collect(), end))
}

/// An element id at the start of `d`: the id and its length in bytes.
pub fn read_id(d: &[u8]) -> Option<(u32, usize)> {
    let first = *d.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 || d.len() < len {
        return None;
    }
    Some((d[..len].iter().fold(0u32, |a, b| (a << 8) | *b as u32), len))
}

/// An element size at the start of `d` (`None` for the unknown size) and its length in bytes.
pub fn read_size(d: &[u8]) -> Option<(Option<u64>, usize)> {
    let first = *d.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || d.len() < len {
        return None;
    }
    let mut v = (first as u64) & ((1u64 << (8 - len)) - 1);
    for b in &d[1..len] {
        v = (v << 8) | *b as u64;
    }
    let unknown = v == (1u64 << (7 * len)) - 1;
    Some((if unknown { None } else { Some(v) }, len))
}

/// Each block with where its cluster starts and where its frame starts.
type Walked = (Vec<(ScannedBlock, usize, usize)>, usize);

fn walk_blocks(data: &[u8]) -> Option<Walked> {
    let mut blocks = Vec::new();
    let mut pos = 0;
    let mut cluster_ms = 0i64;
    let mut cluster_at = 0usize;
    while pos < data.len() {
        let Some((id, il)) = read_id(&data[pos..]) else {
            break;
        };
        let Some((size, sl)) = read_size(&data[pos + il..]) else {
            break;
        };
        let body = pos + il + sl;
        match (id, size) {
            // Containers we descend into: Segment and Cluster (unknown size).
            (0x18538067 | 0x1F43B675, _) => {
                if id == 0x1F43B675 {
                    cluster_at = pos;
                }
                pos = body
            }
            (0xE7, Some(n)) => {
                let n = n as usize;
                let Some(bytes) = data.get(body..body + n) else {
                    break;
                };
                cluster_ms = bytes.iter().fold(0i64, |a, b| (a << 8) | *b as i64);
                pos = body + n;
            }
            (0xA3, Some(n)) => {
                let n = n as usize;
                let Some(b) = data.get(body..body + n) else {
                    break;
                };
                let track = (b[0] & 0x7F) as u64;
                let rel = i16::from_be_bytes([b[1], b[2]]) as i64;
                blocks.push((
                    (track, cluster_ms + rel, b[3] & 0x80 != 0, n - 4),
                    cluster_at,
                    body + 4,
                ));
                pos = body + n;
            }
            (_, Some(n)) if body + n as usize <= data.len() => pos = body + n as usize,
            (_, Some(_)) => break,
            (_, None) => return None,
        }
    }
    let ours = !blocks.is_empty() || data.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) || data.is_empty();
    ours.then_some((blocks, pos.min(data.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_ebml_vints() {
        assert_eq!(vint_size(0), vec![0x80]);
        assert_eq!(vint_size(126), vec![0xFE]);
        assert_eq!(vint_size(127), vec![0x40, 0x7F]);
        assert_eq!(vint_size(1000), vec![0x43, 0xE8]);
    }

    #[test]
    fn header_declares_webm_vp8_and_opus() {
        let h = header(
            &[
                TrackSpec {
                    number: VIDEO_TRACK,
                    video: Some((640, 480)),
                },
                TrackSpec {
                    number: AUDIO_TRACK,
                    video: None,
                },
            ],
            Some(12_345.0),
        );
        assert!(h.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
        for needle in [&b"webm"[..], b"V_VP8", b"A_OPUS", b"OpusHead"] {
            assert!(h.windows(needle.len()).any(|w| w == needle));
        }
        assert!(h.windows(8).any(|w| w == 12_345.0f64.to_be_bytes()), "duration");
    }

    #[test]
    fn clusters_start_on_keyframes_and_blocks_round_trip() {
        let mut m = Muxer::new(vec![VIDEO_TRACK]);
        let mut file = Vec::new();
        file.extend(m.frame(VIDEO_TRACK, 0, true, &[1; 100]));
        file.extend(m.frame(AUDIO_TRACK, 10, true, &[2; 20]));
        file.extend(m.frame(VIDEO_TRACK, 33, false, &[3; 50]));
        // A pause: nothing from 33 to 9000; the next frame is a keyframe in a new cluster.
        file.extend(m.frame(VIDEO_TRACK, 9_000, true, &[4; 100]));
        file.extend(m.frame(AUDIO_TRACK, 9_010, true, &[5; 20]));
        let blocks = scan(&file).unwrap();
        assert_eq!(
            blocks,
            vec![
                (VIDEO_TRACK, 0, true, 100),
                (AUDIO_TRACK, 10, true, 20),
                (VIDEO_TRACK, 33, false, 50),
                (VIDEO_TRACK, 9_000, true, 100),
                (AUDIO_TRACK, 9_010, true, 20),
            ]
        );
        assert_eq!(m.last_ms(), 9_010);
        let clusters = file.windows(4).filter(|w| *w == [0x1F, 0x43, 0xB6, 0x75]).count();
        assert_eq!(clusters, 2);
    }

    #[test]
    fn each_tracks_block_times_strictly_increase() {
        let mut m = Muxer::new(vec![VIDEO_TRACK]);
        let mut file = Vec::new();
        // Two frames in one millisecond, then a step back; the other track keeps its own times, and a late
        // audio packet is left out.
        for (track, ms) in [
            (VIDEO_TRACK, 100),
            (VIDEO_TRACK, 100),
            (AUDIO_TRACK, 100),
            (VIDEO_TRACK, 90),
            (AUDIO_TRACK, 80),
            (VIDEO_TRACK, 140),
        ] {
            file.extend(m.frame(track, ms, false, &[0; 10]));
        }
        let times: Vec<(u64, i64)> = scan(&file).unwrap().iter().map(|b| (b.0, b.1)).collect();
        assert_eq!(
            times,
            [
                (VIDEO_TRACK, 100),
                (VIDEO_TRACK, 101),
                (AUDIO_TRACK, 100),
                (VIDEO_TRACK, 102),
                (VIDEO_TRACK, 140)
            ]
        );
    }

    #[test]
    fn the_whole_prefix_of_a_cut_stream_ends_on_a_block_boundary() {
        let mut m = Muxer::new(vec![VIDEO_TRACK]);
        let mut data = Vec::new();
        for i in 0..10 {
            data.extend(m.frame(VIDEO_TRACK, i * 33, i % 5 == 0, &[0xAB; 300]));
        }
        assert_eq!(whole_prefix(&data), data.len());
        let cut = &data[..data.len() - 100];
        let whole = whole_prefix(cut);
        assert!(whole < cut.len());
        assert_eq!(scan(&cut[..whole]).unwrap().len(), 9, "the cut block is left out");
        // What follows the prefix is read as it should be.
        let mut joined = cut[..whole].to_vec();
        joined.extend(m.frame(VIDEO_TRACK, 400, true, &[0xCD; 300]));
        assert_eq!(scan(&joined).unwrap().len(), 10);
    }

    #[test]
    fn a_truncated_tail_ends_the_scan_with_the_whole_blocks() {
        let mut m = Muxer::new(vec![VIDEO_TRACK]);
        let mut file = Vec::new();
        for i in 0..10 {
            file.extend(m.frame(VIDEO_TRACK, i * 33, i == 0, &[9; 300]));
        }
        let cut = &file[..file.len() - 100];
        assert_eq!(scan(cut).unwrap().len(), 9);
        assert_eq!(scan(b"plain text, not webm"), None);
    }

    #[test]
    fn long_stretches_without_keyframes_still_get_new_clusters() {
        let mut m = Muxer::new(vec![VIDEO_TRACK]);
        let mut file = Vec::new();
        for i in 0..400 {
            file.extend(m.frame(AUDIO_TRACK, i * 20, true, &[0; 10]));
        }
        let blocks = scan(&file).unwrap();
        assert_eq!(blocks.len(), 400);
        assert_eq!(blocks.last().unwrap().1, 399 * 20);
    }
}
