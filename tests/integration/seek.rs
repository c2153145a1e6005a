//! Seeking in a downloaded recording: every participant's video track has a keyframe every few seconds (the
//! recorder asks for them), keyframes marked as such, and block times that strictly increase; ffmpeg (Debian's,
//! installed by `scripts/test.sh`) decodes each video track whole without an error, and jumps into the file at
//! several points through its Cues and decodes there. ffmpeg's command line (and a browser) seeks a file by its
//! first video track, so the jumps are checked on the patient's in the visit's file, and on every participant's
//! in the file of their own the broker remuxes (`?participant=`), which must hold exactly their blocks.

use std::path::Path;
use std::process::Command;

/// Whether ffmpeg is here (required when `TEST_REQUIRE_BROWSER` is set, as `scripts/test.sh` sets it).
fn ffmpeg_available() -> bool {
    let here = Command::new("ffmpeg").arg("-version").output().is_ok();
    if !here {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "ffmpeg is required"
        );
        eprintln!("ffmpeg missing: skipping the seek checks (scripts/test.sh installs it)");
    }
    here
}

/// Every video track of `file` (track numbers of our layout): keyframes at most `max_gap_ms` apart while it
/// sends, strictly increasing block times, and ffmpeg decoding from three points inside its span.
pub fn every_video_track_seeks(file: &Path, tracks: &[u64], max_gap_ms: i64) {
    let bytes = std::fs::read(file).unwrap();
    let blocks = examroom::recording::webm::scan(&bytes).expect("a WebM file");
    cues_point_at_keyframes(&bytes, tracks);
    for (index, &track) in tracks.iter().enumerate() {
        let mine: Vec<_> = blocks.iter().filter(|b| b.0 == track).collect();
        assert!(mine.len() > 10, "track {track} has video");
        assert!(
            mine.windows(2).all(|w| w[1].1 > w[0].1),
            "track {track}: block times strictly increase"
        );
        // Wherever a reviewer seeks, a keyframe of this track is at most `max_gap_ms` before the point (after a
        // pause, or a sender away, the track starts again with one).
        let mut last_key = None;
        let mut gaps = Vec::new();
        for b in &mine {
            if b.2 {
                last_key = Some(b.1);
            }
            let since = last_key.map(|k| b.1 - k);
            assert!(
                since.is_some_and(|s| s <= max_gap_ms),
                "track {track}: the block at {} ms is {since:?} ms after its keyframe (over {max_gap_ms})",
                b.1
            );
            gaps.extend(since);
        }
        let (first, last) = (mine[0].1, mine[mine.len() - 1].1);
        if !ffmpeg_available() {
            continue;
        }
        // The whole track decodes: keyframes are marked as such and nothing is garbage.
        let whole = decode(file, index, &["-v", "error"], &["-f", "null", "-"]);
        let errors = String::from_utf8_lossy(&whole.stderr);
        assert!(
            whole.status.success() && errors.trim().is_empty(),
            "track {track} (video stream {index}) does not decode whole: {errors}"
        );
        if index > 0 {
            println!(
                "seek: track {track}: every frame at most {:?} ms after a keyframe; decodes whole",
                gaps.iter().max()
            );
            continue;
        }
        for share in [30, 50, 70] {
            let at = (first + (last - first) * share / 100) as f64 / 1000.0;
            // Warnings too: a seek ffmpeg could not make through the index ("could not seek") falls back to
            // decoding from the start, which would pass unseen at the error level.
            // `-seek_timestamp`: the point is the file's own time (a participant who joined late has a file that
            // starts late; by default ffmpeg would add that start to the point).
            let seek = [
                "-v",
                "warning",
                "-seek_timestamp",
                "1",
                "-ss",
                &format!("{at:.3}"),
            ];
            let out = decode(file, index, &seek, &["-frames:v", "5", "-f", "framecrc", "-"]);
            let errors = String::from_utf8_lossy(&out.stderr);
            let frames = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count();
            assert!(
                out.status.success() && errors.trim().is_empty() && frames == 5,
                "track {track} (video stream {index}) from {at:.3} s: {frames} frames decoded, errors: {errors}"
            );
        }
        println!(
            "seek: track {track}: every frame at most {:?} ms after a keyframe; decodes whole, and from 30/50/70%",
            gaps.iter().max()
        );
    }
}

/// Each participant's own file (`(video track, path)`): exactly the blocks of their tracks in the visit's file
/// `whole`, and seekable as [`every_video_track_seeks`] checks (their video is the file's first, so ffmpeg
/// jumps into it).
pub fn each_participants_file_seeks(whole: &Path, files: &[(u64, std::path::PathBuf)], max_gap_ms: i64) {
    let all = examroom::recording::webm::scan(&std::fs::read(whole).unwrap()).expect("a WebM file");
    for (track, path) in files {
        let own = examroom::recording::webm::scan(&std::fs::read(path).unwrap()).expect("a WebM file");
        let audio = if *track == 5 { None } else { Some(track + 1) };
        let expected: Vec<_> = all
            .iter()
            .filter(|b| b.0 == *track || Some(b.0) == audio)
            .copied()
            .collect();
        assert!(expected.len() > 10, "track {track} is in the visit's file");
        assert_eq!(
            own, expected,
            "participant {track}'s file holds their blocks, and only those"
        );
        every_video_track_seeks(path, &[*track], max_gap_ms);
    }
}

/// ffmpeg decoding video stream `index` of `file`: `input` options before the file, `output` ones after the
/// stream's; frames keep the file's own times (a guessed frame rate would merge close ones and complain).
fn decode(file: &Path, index: usize, input: &[&str], output: &[&str]) -> std::process::Output {
    Command::new("ffmpeg")
        .arg("-nostdin")
        .args(input)
        .arg("-i")
        .arg(file)
        .args([
            "-map",
            &format!("0:v:{index}"),
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
        ])
        .args(output)
        .output()
        .unwrap()
}

/// An EBML element at `at` (read with the recorder's own readers): (id, body start, body length); `None` past
/// the end or for an unknown size.
fn element(b: &[u8], at: usize) -> Option<(u32, usize, usize)> {
    use examroom::recording::webm::{read_id, read_size};
    let (id, id_len) = read_id(b.get(at..)?)?;
    let (size, size_len) = read_size(b.get(at + id_len..)?)?;
    Some((id, at + id_len + size_len, size? as usize))
}

/// The children of the element body `b[from..from + len]`.
fn children(b: &[u8], from: usize, len: usize) -> Vec<(u32, usize, usize)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < from + len {
        let Some(e) = element(b, at) else { break };
        out.push(e);
        at = e.1 + e.2;
    }
    out
}

fn number(b: &[u8], (_, from, len): (u32, usize, usize)) -> u64 {
    b[from..from + len].iter().fold(0, |a, x| (a << 8) | *x as u64)
}

/// The file as served: its header's SeekHead names where the Cues are, and each cue of `tracks` lands on a
/// cluster that holds that track's keyframe at the cue's time.
fn cues_point_at_keyframes(b: &[u8], tracks: &[u64]) {
    let data = examroom::recording::webm::segment_data_start(b);
    let seek_head = element(b, data).expect("an element first in the segment");
    assert_eq!(seek_head.0, 0x114D9B74, "a SeekHead first in the segment");
    let seek = children(b, seek_head.1, seek_head.2)[0];
    let fields = children(b, seek.1, seek.2);
    let position = number(b, *fields.iter().find(|f| f.0 == 0x53AC).expect("SeekPosition")) as usize;
    let cues = element(b, data + position).expect("the Cues where the SeekHead says");
    assert_eq!(cues.0, 0x1C53BB6B, "the Cues at the SeekHead's position");
    let keyframes = examroom::recording::webm::scan_with_clusters(b);
    let mut per_track = std::collections::HashMap::new();
    for point in children(b, cues.1, cues.2) {
        let fields = children(b, point.1, point.2);
        let time = number(b, *fields.iter().find(|f| f.0 == 0xB3).expect("CueTime")) as i64;
        let positions = fields.iter().find(|f| f.0 == 0xB7).expect("CueTrackPositions");
        let inner = children(b, positions.1, positions.2);
        let track = number(b, *inner.iter().find(|f| f.0 == 0xF7).expect("CueTrack"));
        let cluster = data
            + number(
                b,
                *inner.iter().find(|f| f.0 == 0xF1).expect("CueClusterPosition"),
            ) as usize;
        assert!(
            keyframes
                .iter()
                .any(|((t, ms, key, _), at)| *t == track && *ms == time && *key && *at == cluster),
            "the cue of track {track} at {time} ms names a cluster ({cluster}) without that keyframe"
        );
        *per_track.entry(track).or_insert(0) += 1;
    }
    for track in tracks {
        assert!(
            per_track.get(track).copied().unwrap_or(0) >= 2,
            "track {track} indexed: {per_track:?}"
        );
    }
}
