//! A recording part in progress: the [`Recorder`] fed from the SFU's tap and its sealed spool on disk, one
//! spool per segment. A segment closes every `recording.segment_seconds`, when the part ends (the visit ended
//! or moved to another node) and, for a part a crash left, when it is recovered: its spool is resealed under
//! the recording's key as the segment's object in the outbox, and uploaded to the object store from there, so
//! an object store outage only delays the upload and a lost node loses at most its open segment. Keys: the
//! recording's data key and a separate spool key, both wrapped by the keyring and kept in the recordings row,
//! so spools left by a crash can be sealed after a restart.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use super::objects::ObjectStore;
use super::recorder::{Recorder, Source, finalize};
use super::timeline::{RecordingState, Timeline};
use super::workdir::LocalStore;
use crate::crypto::{CryptoError, DataKey, Keyring};
use crate::ids::RecordingId;
use crate::media::{MediaKind, MediaTap, ParticipantId, RtpView};

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("recording keys: {0}")]
    Crypto(#[from] CryptoError),
    #[error("sealed recording: {0}")]
    Sealed(#[from] super::sealed::SealError),
    #[error(transparent)]
    Objects(#[from] super::objects::ObjectError),
}

struct Inner {
    recorder: Option<Recorder>,
    spool: std::fs::File,
    sources: HashMap<ParticipantId, Source>,
    /// The open segment's number and when it began.
    seq: i64,
    segment_started_ms: i64,
}

pub struct RecordingSession {
    pub id: RecordingId,
    /// Held while a segment is closed (cut, sealed, recorded, uploaded) and while the part finishes, so a
    /// periodic cut and the end of the part never interleave.
    pub segment_lock: tokio::sync::Mutex<()>,
    spool_key: DataKey,
    key: DataKey,
    inner: Mutex<Inner>,
}

/// The wrapped keys to store with a new recording.
pub struct WrappedKeys {
    pub kek_id: String,
    pub wrapped_key: String,
    pub spool_kek_id: String,
    pub spool_wrapped_key: String,
}

/// A segment whose spool is closed, to be sealed by [`RecordingSession::seal`].
#[derive(Debug, Clone)]
pub struct ClosedSegment {
    pub seq: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub video_dims: [Option<(u32, u32)>; 2],
}

/// A segment sealed in the outbox, ready for its row and its upload.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub seq: i64,
    pub object_key: String,
    pub plain_bytes: u64,
    pub sealed_bytes: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub video_dims: [Option<(u32, u32)>; 2],
    /// False when the spool was cut short (the segment ends at its last whole chunk).
    pub complete: bool,
    /// The spool it was sealed from, removed by [`SealedSegment::discard_spool`] once the segment's row is
    /// written: until then a crash leaves the spool for the recovery to seal again.
    pub spool: std::path::PathBuf,
}

impl SealedSegment {
    pub fn discard_spool(&self) {
        if let Err(e) = std::fs::remove_file(&self.spool) {
            tracing::warn!(error = %e, "a sealed segment's spool could not be removed");
        }
    }
}

/// A finished part, ready for its row: its last segments (one when it ended; every one left on disk when a
/// crash ended it).
pub struct Stored {
    pub media_bytes: u64,
    pub timeline: Timeline,
    pub segments: Vec<SealedSegment>,
}

fn key_context(id: &str) -> String {
    format!("examroom-recording-v1|{id}")
}

fn spool_context(id: &str) -> String {
    format!("examroom-recording-spool-v1|{id}")
}

/// What segment `seq` of recording `id` is sealed as (its position is authenticated: a segment moved to
/// another place, or another recording, does not open).
pub fn segment_object_id(id: &str, seq: i64) -> String {
    format!("{id}/{seq}")
}

/// The object key of segment `seq` of recording `id`.
pub fn segment_key(id: &str, seq: i64) -> String {
    format!("{id}.{seq:05}.erseg")
}

/// Reseals a closed spool as its segment's object in the outbox (the spool stays until the row is written).
fn seal_spool(
    store: &LocalStore,
    spool_key: &DataKey,
    key: &DataKey,
    id: &str,
    spool: &Path,
    c: ClosedSegment,
) -> Result<SealedSegment, RecordingError> {
    let bytes = std::fs::read(spool)?;
    let (object, complete) = finalize(spool_key, &bytes, &[], key, &segment_object_id(id, c.seq))?;
    let object_key = segment_key(id, c.seq);
    store.put_outbox(&object_key, &object)?;
    let header = super::sealed::Header::parse(&object)?.ok_or(super::sealed::SealError::Truncated)?;
    let plain_bytes = header
        .plain_len(object.len() as u64)
        .ok_or(super::sealed::SealError::Truncated)?;
    Ok(SealedSegment {
        seq: c.seq,
        object_key,
        plain_bytes,
        sealed_bytes: object.len() as u64,
        start_ms: c.start_ms,
        end_ms: c.end_ms,
        video_dims: c.video_dims,
        complete,
        spool: spool.to_path_buf(),
    })
}

impl RecordingSession {
    pub fn start(
        store: &LocalStore,
        keyring: &Keyring,
        now_ms: i64,
    ) -> Result<(RecordingSession, WrappedKeys), RecordingError> {
        let id = RecordingId::random();
        let (key, kek_id, wrapped_key) = keyring.new_data_key(&key_context(&id))?;
        let (spool_key, spool_kek_id, spool_wrapped_key) = keyring.new_data_key(&spool_context(&id))?;
        let (recorder, head) = Recorder::start(&spool_key, &segment_object_id(&id, 0), now_ms);
        let mut spool = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(store.spool_path(&id))?;
        spool.write_all(&head)?;
        Ok((
            RecordingSession {
                id,
                segment_lock: tokio::sync::Mutex::new(()),
                spool_key,
                key,
                inner: Mutex::new(Inner {
                    recorder: Some(recorder),
                    spool,
                    sources: HashMap::new(),
                    seq: 0,
                    segment_started_ms: now_ms,
                }),
            },
            WrappedKeys {
                kek_id,
                wrapped_key,
                spool_kek_id,
                spool_wrapped_key,
            },
        ))
    }

    pub fn add_participant(&self, participant: ParticipantId, source: Source) {
        self.inner
            .lock()
            .expect("recording lock")
            .sources
            .insert(participant, source);
    }

    /// Block times count from `origin_ms`: a part continuing a visit's recording shares its first part's.
    pub fn set_origin(&self, origin_ms: i64) {
        if let Some(r) = self.inner.lock().expect("recording lock").recorder.as_mut() {
            r.set_origin(origin_ms);
        }
    }

    /// Secure pause or resume; returns (changed, resume needs keyframes).
    pub fn set_state(&self, state: RecordingState, reason: &str, by: &str, now_ms: i64) -> (bool, bool) {
        let mut inner = self.inner.lock().expect("recording lock");
        match inner.recorder.as_mut() {
            Some(r) => {
                let (changed, out) = r.set_state(state, reason, by, now_ms);
                (changed, out.request_keyframe)
            }
            None => (false, false),
        }
    }

    /// Marks an audio-only interval's start (`on`) or end; returns whether anything changed.
    pub fn set_audio_only(&self, on: bool, reason: &str, by: &str, now_ms: i64) -> bool {
        let mut inner = self.inner.lock().expect("recording lock");
        inner
            .recorder
            .as_mut()
            .is_some_and(|r| r.set_audio_only(on, reason, by, now_ms))
    }

    /// Marks this recording as continuing one another node was writing.
    pub fn set_continuation(&self, c: super::timeline::Continuation) {
        if let Some(r) = self.inner.lock().expect("recording lock").recorder.as_mut() {
            r.set_continuation(c);
        }
    }

    /// The timeline so far (to persist the manifest as it changes).
    pub fn timeline(&self) -> Option<Timeline> {
        let inner = self.inner.lock().expect("recording lock");
        inner.recorder.as_ref().map(|r| r.timeline().clone())
    }

    pub fn state(&self) -> RecordingState {
        let inner = self.inner.lock().expect("recording lock");
        inner
            .recorder
            .as_ref()
            .map(|r| r.state())
            .unwrap_or(RecordingState::Active)
    }

    /// When the open segment began (`None` once the part has ended).
    pub fn segment_started_ms(&self) -> Option<i64> {
        let inner = self.inner.lock().expect("recording lock");
        inner.recorder.as_ref().map(|_| inner.segment_started_ms)
    }

    /// Closes the open segment and starts the next. Cheap (the media path waits for it): the final chunk, a
    /// rename and a new file; the resealing is [`Self::seal`]'s, off the media path.
    pub fn cut(&self, store: &LocalStore, now_ms: i64) -> Result<Option<ClosedSegment>, RecordingError> {
        let mut inner = self.inner.lock().expect("recording lock");
        let seq = inner.seq;
        if inner.recorder.is_none() {
            return Ok(None);
        }
        // The next spool's file first: a failure here changes nothing.
        let next_path = store.next_spool_path(&self.id);
        let mut next = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&next_path)?;
        let recorder = inner.recorder.as_mut().expect("checked above");
        let video_dims = recorder.dims();
        let (tail, head) = recorder.cut(&self.spool_key, &segment_object_id(&self.id, seq + 1));
        next.write_all(&head)?;
        inner.spool.write_all(&tail)?;
        inner.spool.sync_all()?;
        std::fs::rename(store.spool_path(&self.id), store.closed_spool_path(&self.id, seq))?;
        std::fs::rename(&next_path, store.spool_path(&self.id))?;
        inner.spool = next;
        let closed = ClosedSegment {
            seq,
            start_ms: inner.segment_started_ms,
            end_ms: now_ms,
            video_dims,
        };
        inner.seq = seq + 1;
        inner.segment_started_ms = now_ms;
        Ok(Some(closed))
    }

    /// Seals a closed segment as its object in the outbox (blocking work: reads and reseals the spool).
    pub fn seal(&self, store: &LocalStore, closed: ClosedSegment) -> Result<SealedSegment, RecordingError> {
        let spool = store.closed_spool_path(&self.id, closed.seq);
        seal_spool(store, &self.spool_key, &self.key, &self.id, &spool, closed)
    }

    /// Ends the part: its last segment is sealed in the outbox.
    pub fn finish(&self, store: &LocalStore, now_ms: i64) -> Result<Stored, RecordingError> {
        let mut inner = self.inner.lock().expect("recording lock");
        let recorder = inner
            .recorder
            .take()
            .ok_or_else(|| RecordingError::Io(std::io::Error::other("recording already finished")))?;
        let video_dims = recorder.dims();
        let (tail, timeline, media_bytes) = recorder.finish(now_ms);
        inner.spool.write_all(&tail)?;
        inner.spool.sync_all()?;
        let closed = ClosedSegment {
            seq: inner.seq,
            start_ms: inner.segment_started_ms,
            end_ms: now_ms,
            video_dims,
        };
        let mut segments = Vec::new();
        // A closed segment whose sealing or row failed is still on disk: sealed now, before the last one.
        for (seq, path) in store.closed_spools(&self.id) {
            let end = modified_ms(&path, now_ms);
            let leftover = ClosedSegment {
                seq,
                start_ms: end,
                end_ms: end,
                video_dims,
            };
            segments.push(seal_spool(
                store,
                &self.spool_key,
                &self.key,
                &self.id,
                &path,
                leftover,
            )?);
        }
        let spool = store.spool_path(&self.id);
        segments.push(seal_spool(
            store,
            &self.spool_key,
            &self.key,
            &self.id,
            &spool,
            closed,
        )?);
        Ok(Stored {
            media_bytes,
            timeline,
            segments,
        })
    }
}

impl MediaTap for RecordingSession {
    fn rtp(&self, participant: &ParticipantId, kind: MediaKind, p: &RtpView<'_>) -> bool {
        let now = crate::clock::now_ms();
        let mut inner = self.inner.lock().expect("recording lock");
        let Some(source) = inner.sources.get(participant).copied() else {
            return false;
        };
        let Some(recorder) = inner.recorder.as_mut() else {
            return false;
        };
        let out = match kind {
            MediaKind::Video => {
                recorder.video(source, p.sequence_number, p.timestamp, p.marker, p.payload, now)
            }
            MediaKind::Audio => recorder.audio(source, p.timestamp, p.payload, now),
        };
        if !out.sealed.is_empty()
            && let Err(e) = inner.spool.write_all(&out.sealed)
        {
            tracing::error!(error = %e, "recording spool write failed");
        }
        out.request_keyframe
    }
}

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

fn modified_ms(path: &Path, or: i64) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(or, |d| d.as_millis() as i64)
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
            video_dims: [None, None],
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

/// One sealed object of a recording and what opens it: the recording's wrapped key, and the name the object
/// was sealed as (the recording's id for a whole-file object, [`segment_object_id`] for a segment).
pub struct ObjectRef<'a> {
    pub recording_id: &'a str,
    pub sealed_as: &'a str,
    pub object_key: &'a str,
    pub kek_id: &'a str,
    pub wrapped_key: &'a str,
}

/// Opens a whole stored object (tests, verification).
pub async fn open_object(
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    o: &ObjectRef<'_>,
) -> Result<Vec<u8>, RecordingError> {
    Ok(read_range(objects, keyring, o, 0, None).await?.0)
}

/// Reads plaintext bytes `start..end` (end exclusive) of a stored object, decrypting only the chunks that
/// hold them (HTTP range requests). Returns the bytes, where they start, and the object's plaintext length. A
/// missing or wrong key, an object sealed as something else (another segment's place), or any tampering fails
/// closed.
pub async fn read_range(
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    o: &ObjectRef<'_>,
    start: u64,
    end: Option<u64>,
) -> Result<(Vec<u8>, u64, u64), RecordingError> {
    use super::sealed::{Header, SealError, TAG_LEN, open_chunk};
    let key = keyring.unwrap_data_key(o.kek_id, o.wrapped_key, &key_context(o.recording_id))?;
    let object_key = o.object_key;
    let sealed_len = objects.len(object_key).await?;
    let head = objects.read(object_key, 0, sealed_len.min(18 + 255)).await?;
    let header = Header::parse(&head)?.ok_or(SealError::Truncated)?;
    if header.recording_id != o.sealed_as {
        return Err(SealError::Tampered.into());
    }
    let total = header.plain_len(sealed_len).ok_or(SealError::Truncated)?;
    let end = end.unwrap_or(total).min(total);
    if start >= end {
        return Ok((Vec::new(), start, total));
    }
    let chunk = header.chunk_size as u64;
    let full = chunk + TAG_LEN as u64;
    let last_index = header.final_index(total);
    let first = (start / chunk) as u32;
    let last = ((end - 1) / chunk) as u32;
    let offset = header.len() as u64 + first as u64 * full;
    let span = (header.len() as u64 + (last as u64 + 1) * full).min(sealed_len) - offset;
    let sealed = objects.read(object_key, offset, span).await?;
    let mut out = Vec::with_capacity((end - start) as usize);
    for (i, piece) in sealed.chunks(full as usize).enumerate() {
        let index = first + i as u32;
        let plain = open_chunk(&key, &header, index, piece, index == last_index)?;
        let chunk_start = index as u64 * chunk;
        let from = start.saturating_sub(chunk_start) as usize;
        let to = ((end - chunk_start) as usize).min(plain.len());
        out.extend_from_slice(&plain[from.min(to)..to]);
    }
    Ok((out, start, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::timeline::RecordingState;
    use std::path::{Path, PathBuf};

    fn kek(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        Keyring::create_key_file(&p).unwrap();
        p
    }

    #[tokio::test]
    async fn recordings_stay_readable_after_kek_rotation_and_fail_closed_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("recordings")).unwrap();
        let (old, new) = (kek(dir.path(), "old.hex"), kek(dir.path(), "new.hex"));
        let before = Keyring::load(std::slice::from_ref(&old)).unwrap();
        let (session, keys) = RecordingSession::start(&store, &before, 0).unwrap();
        session.add_participant(ParticipantId::random(), Source::Patient);
        session.set_state(RecordingState::Paused, "test", "x", 10);
        let stored = session.finish(&store, 100).unwrap();
        stored.segments.iter().for_each(SealedSegment::discard_spool);
        assert!(!store.spool_path(&session.id).exists(), "the spool is gone");
        let objects = super::super::objects::LocalObjects::new(&store.objects_dir()).unwrap();
        let segment = &stored.segments[0];
        let outbox = store.outbox_path(&segment.object_key);
        objects
            .put_file(&segment.object_key, &outbox, 0, false)
            .await
            .unwrap();
        let sealed_as = segment_object_id(&session.id, 0);
        let object = |wrapped_key| ObjectRef {
            recording_id: &session.id,
            sealed_as: &sealed_as,
            object_key: &segment.object_key,
            kek_id: &keys.kek_id,
            wrapped_key,
        };

        // Rotated: the new KEK wraps new keys, the old one stays in the ring for old recordings.
        let rotated = Keyring::load(&[new.clone(), old]).unwrap();
        let opened = open_object(&objects, &rotated, &object(&keys.wrapped_key))
            .await
            .unwrap();
        assert_eq!(opened.len() as u64, segment.plain_bytes);
        let (_, fresh) = RecordingSession::start(&store, &rotated, 0).unwrap();
        assert_ne!(fresh.kek_id, keys.kek_id, "new recordings use the new KEK");

        // A segment presented in another place does not open.
        let moved = ObjectRef {
            sealed_as: "elsewhere/1",
            ..object(&keys.wrapped_key)
        };
        assert!(open_object(&objects, &rotated, &moved).await.is_err());

        // Without the old KEK, or with a wrapped key from elsewhere, nothing opens.
        let without = Keyring::load(&[new]).unwrap();
        assert!(matches!(
            open_object(&objects, &without, &object(&keys.wrapped_key)).await,
            Err(RecordingError::Crypto(CryptoError::UnknownKek(_)))
        ));
        assert!(
            open_object(&objects, &rotated, &object(&keys.spool_wrapped_key))
                .await
                .is_err()
        );
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
        {
            let mut inner = session.inner.lock().unwrap();
            for i in 0..300u16 {
                let mut frame = if i % 100 == 0 {
                    vec![0x10, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]
                } else {
                    vec![0x10, 0x11, 0x02, 0x00]
                };
                frame.extend([0xAB; 400]);
                let out = inner.recorder.as_mut().unwrap().video(
                    Source::Patient,
                    i,
                    i as u32 * 3000,
                    true,
                    &frame,
                    9_000 + i as i64 * 33,
                );
                inner.spool.write_all(&out.sealed).unwrap();
            }
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
