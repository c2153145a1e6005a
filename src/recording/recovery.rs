//! Recovery of a recording part a crash left behind: every spool it left on this disk (closed segments not
//! yet sealed, then the open one, its number read from its authenticated header) becomes a segment, those
//! that already have rows are only removed, and the time from the last write to the recovery is a gap.

use super::session::{
    ClosedSegment, RecordingError, Stored, key_context, modified_ms, seal_spool, spool_context,
};
use super::timeline::Timeline;
use super::workdir::LocalStore;
use crate::crypto::Keyring;

/// A part a crash left behind, as its row describes it.
pub struct Leftover<'a> {
    pub id: &'a str,
    pub spool_kek_id: &'a str,
    pub spool_wrapped_key: &'a str,
    pub kek_id: &'a str,
    pub wrapped_key: &'a str,
    /// The segments that have rows (sealed before the crash; their spools only need removing).
    pub recorded: Vec<i64>,
    /// Where the first segment left on disk begins (the last stored segment's end, or the part's start).
    pub known_end_ms: i64,
}

/// Finishes a part a crash left behind: every spool it left on this disk (closed segments not yet sealed, then
/// the open one, up to its last whole chunk) becomes a segment; the time from the last write to `now` is
/// marked as a gap.
pub fn recover(
    store: &LocalStore,
    keyring: &Keyring,
    part: &Leftover<'_>,
    mut timeline: Timeline,
    now_ms: i64,
) -> Result<Stored, RecordingError> {
    let id = part.id;
    let spool_key = keyring.unwrap_data_key(part.spool_kek_id, part.spool_wrapped_key, &spool_context(id))?;
    let key = keyring.unwrap_data_key(part.kek_id, part.wrapped_key, &key_context(id))?;
    let mut spools = store.closed_spools(id);
    let open = store.spool_path(id);
    if open.exists() {
        // Its number is in its (authenticated) header: `id/seq`.
        let head = std::fs::read(&open)?;
        let named = super::sealed::Header::parse(&head)?
            .and_then(|h| h.recording_id.strip_prefix(&format!("{id}/"))?.parse().ok());
        let next = spools.last().map_or(0, |(seq, _)| seq + 1);
        spools.push((named.unwrap_or(next), open));
    }
    // A cut interrupted between its two renames leaves the next spool's file: it holds no media.
    let _ = std::fs::remove_file(store.next_spool_path(id));
    let (mut segments, mut start) = (Vec::new(), part.known_end_ms);
    for (seq, path) in spools {
        if part.recorded.contains(&seq) {
            std::fs::remove_file(&path)?;
            continue;
        }
        let end = modified_ms(&path, start).max(start);
        let closed = ClosedSegment {
            seq,
            start_ms: start,
            end_ms: end,
            video_dims: Default::default(),
        };
        segments.push(seal_spool(store, &spool_key, &key, id, &path, closed)?);
        start = end;
    }
    timeline.gap(start, now_ms);
    timeline.finish(now_ms);
    Ok(Stored {
        media_bytes: 0,
        timeline,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::recorder::Source;
    use crate::recording::session::{RecordingSession, SealedSegment, segment_key};

    fn kek(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        Keyring::create_key_file(&p).unwrap();
        p
    }

    #[test]
    fn a_crash_leaves_closed_and_open_spools_that_recovery_seals_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("recordings")).unwrap();
        let ring = Keyring::load(&[kek(dir.path(), "k.hex")]).unwrap();
        let (session, keys) = RecordingSession::start(&store, &ring, 1_000).unwrap();
        let first = session.cut(&store, 5_000).unwrap().unwrap();
        assert_eq!((first.seq, first.start_ms, first.end_ms), (0, 1_000, 5_000));
        let sealed = session.seal(&store, first).unwrap();
        assert_eq!(sealed.object_key, segment_key(&session.id, 0));
        sealed.discard_spool();
        // Segment 1 closed but not sealed, segment 2 open with media past a chunk: then the process dies.
        let second = session.cut(&store, 9_000).unwrap().unwrap();
        assert_eq!(second.seq, 1);
        // The nurse's screen too, in the open segment only.
        session.record_screen();
        let nurse = crate::media::ParticipantId::random();
        session.add_participant(nurse.clone(), Source::Nurse);
        for i in 0..300u16 {
            if i < 20 {
                let mut screen = vec![0x10, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00];
                screen[1] = if i == 0 { 0x10 } else { 0x11 };
                screen.extend([0xCD; 300]);
                let packet = crate::media::RtpView {
                    sequence_number: i,
                    timestamp: i as u32 * 9000,
                    marker: true,
                    payload: &screen,
                };
                crate::media::MediaTap::rtp(&session, &nurse, crate::media::TrackSource::Screen, &packet);
            }
            let mut frame = if i % 100 == 0 {
                vec![0x10, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]
            } else {
                vec![0x10, 0x11, 0x02, 0x00]
            };
            frame.extend([0xAB; 400]);
            session.record_video_for_tests(
                Source::Patient,
                i,
                i as u32 * 3000,
                &frame,
                9_000 + i as i64 * 33,
            );
        }
        let id = session.id.to_string();
        drop(session);
        let part = Leftover {
            id: &id,
            spool_kek_id: &keys.spool_kek_id,
            spool_wrapped_key: &keys.spool_wrapped_key,
            kek_id: &keys.kek_id,
            wrapped_key: &keys.wrapped_key,
            recorded: vec![0],
            known_end_ms: 5_000,
        };
        // The spools' last writes are on the real clock; the recovery comes later.
        let later = crate::clock::now_ms() + 10_000;
        let stored = recover(&store, &ring, &part, Timeline::start(1_000), later).unwrap();
        let seqs: Vec<i64> = stored.segments.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![1, 2], "the closed one, then the open one");
        // A recovered spool says nothing of its sizes: the screen's track is declared because its frames are there.
        let screens: Vec<_> = stored.segments.iter().map(|s| s.video_dims[2]).collect();
        assert_eq!(
            screens,
            vec![None, Some(crate::recording::recorder::SCREEN_DEFAULT_DIMS)]
        );
        // The open spool's whole chunk, trimmed to its last whole block.
        let open = &stored.segments[1];
        assert!(
            open.plain_bytes > 60 * 1024 && open.plain_bytes < 64 * 1024,
            "{}",
            open.plain_bytes
        );
        assert!(
            stored
                .segments
                .iter()
                .all(|s| store.outbox_path(&s.object_key).exists())
        );
        stored.segments.iter().for_each(SealedSegment::discard_spool);
        assert!(store.closed_spools(part.id).is_empty() && !store.spool_path(part.id).exists());
        assert_eq!(stored.timeline.ended_ms, Some(later));
        assert_eq!(
            stored.timeline.gaps.len(),
            1,
            "from the last write to the recovery"
        );
    }
}
