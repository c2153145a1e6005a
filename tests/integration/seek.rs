//! Seeking in a downloaded recording: every participant's video track has a keyframe every few seconds (the
//! recorder asks for them), keyframes marked as such, and block times that strictly increase; ffmpeg (Debian's,
//! installed by `scripts/test.sh`) decodes each video track whole without an error, and jumps into the file at
//! several points through its Cues and decodes there. ffmpeg's command line seeks a file by its first video
//! track (the patient's), so the jumps are checked on that one; a player seeking another participant's video
//! needs that participant's own stream (issue 23, item 2: not built yet).

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
        let whole = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(file)
            // Frames keep the file's own times (a guessed frame rate would merge close ones and complain).
            .args([
                "-map",
                &format!("0:v:{index}"),
                "-fps_mode",
                "passthrough",
                "-enc_time_base",
                "-1",
            ])
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
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
            let out = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-ss", &format!("{at:.3}"), "-i"])
                .arg(file)
                .args([
                    "-map",
                    &format!("0:v:{index}"),
                    "-fps_mode",
                    "passthrough",
                    "-enc_time_base",
                    "-1",
                    "-frames:v",
                    "5",
                    "-f",
                    "framecrc",
                    "-",
                ])
                .output()
                .unwrap();
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
