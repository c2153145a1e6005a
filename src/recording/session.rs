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

use super::recorder::{Dims, Recorder, Source, declare_found, finalize_segment};
use super::timeline::{RecordingState, Timeline};
use super::workdir::LocalStore;
use crate::crypto::{CryptoError, DataKey, Keyring};
use crate::ids::RecordingId;
use crate::media::{MediaTap, ParticipantId, RtpView, TrackSource};

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
    /// The recording policy records the nurse's screen (a screen she shares is not recorded otherwise).
    screen: bool,
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
    pub video_dims: Dims,
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
    pub video_dims: Dims,
    /// Its video keyframes (`cues::format`): the index a player seeks with.
    pub cues: String,
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

/// The associated data binding a recording's wrapped key to its row.
pub fn key_context(id: &str) -> String {
    format!("examroom-recording-v1|{id}")
}

/// The associated data binding a recording's wrapped spool key to its row.
pub fn spool_context(id: &str) -> String {
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
pub(super) fn seal_spool(
    store: &LocalStore,
    spool_key: &DataKey,
    key: &DataKey,
    id: &str,
    spool: &Path,
    c: ClosedSegment,
) -> Result<SealedSegment, RecordingError> {
    let bytes = std::fs::read(spool)?;
    let object_id = segment_object_id(id, c.seq);
    // A spool recovered after a crash comes with no sizes: the tracks its blocks hold are declared at a usual
    // size (players take the real one from the keyframes).
    let unknown = c.video_dims.iter().skip(2).any(Option::is_none);
    let sealed = finalize_segment(spool_key, &bytes, &[], key, &object_id, unknown)?;
    let (object, complete) = (sealed.object, sealed.complete);
    let mut video_dims = c.video_dims;
    declare_found(&mut video_dims, &sealed.tracks);
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
        video_dims,
        cues: super::cues::format(&sealed.cues),
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
                    screen: false,
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

    /// Asks each recorded video source for a keyframe at least every `ms` (see [`Recorder::keyframe_every`]).
    pub fn keyframe_every(&self, ms: i64) {
        if let Some(r) = self.inner.lock().expect("recording lock").recorder.as_mut() {
            r.keyframe_every(ms);
        }
    }

    /// Records the nurse's screen from now on (its policy says so).
    pub fn record_screen(&self) {
        self.inner.lock().expect("recording lock").screen = true;
    }

    /// The nurse stopped capturing her screen: its interval in the timeline closes.
    pub fn screen_stopped(&self, now_ms: i64) {
        if let Some(r) = self.inner.lock().expect("recording lock").recorder.as_mut() {
            r.screen_stopped(now_ms);
        }
    }

    /// The nurse offered a screen capture: it is recorded again after a stop.
    pub fn screen_started(&self) {
        if let Some(r) = self.inner.lock().expect("recording lock").recorder.as_mut() {
            r.screen_started();
        }
    }

    /// A participant (`role`, and `id`: a nurse's staff id, a guest's or staff member's id in the party) joined
    /// the media room, recorded from `Source` or not for the reason given, or (`None`) left, at `now_ms`: for
    /// the manifest.
    pub fn participant(
        &self,
        role: &str,
        id: Option<&str>,
        joined: Option<Result<Source, &str>>,
        now_ms: i64,
    ) {
        let (guest_id, staff_id) = if role == "nurse" { (None, id) } else { (id, None) };
        if let Some(r) = self.inner.lock().expect("recording lock").recorder.as_mut() {
            if let Some(Ok(source)) = joined {
                r.rebase(source);
            }
            let timeline = r.timeline_mut();
            match joined {
                Some(recorded) => timeline.joined(super::timeline::Participant {
                    role: role.to_string(),
                    guest_id: guest_id.map(str::to_string),
                    staff_id: staff_id.map(str::to_string),
                    joined_ms: now_ms,
                    left_ms: None,
                    recorded: recorded.is_ok(),
                    tracks: recorded.ok().map(|s| [s.video_track(), s.audio_track()]),
                    not_recorded: recorded.err().map(str::to_string),
                }),
                None => timeline.left(role, (guest_id, staff_id), now_ms),
            }
        }
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

#[cfg(test)]
impl RecordingSession {
    /// Feeds one video frame as the SFU's tap would (recovery's tests).
    pub(super) fn record_video_for_tests(
        &self,
        source: Source,
        seq: u16,
        ts: u32,
        frame: &[u8],
        now_ms: i64,
    ) {
        let mut inner = self.inner.lock().expect("recording lock");
        let out = inner
            .recorder
            .as_mut()
            .expect("recording")
            .video(source, seq, ts, true, frame, now_ms);
        inner.spool.write_all(&out.sealed).expect("spool write");
    }
}

impl MediaTap for RecordingSession {
    fn rtp(&self, participant: &ParticipantId, track: TrackSource, p: &RtpView<'_>) -> bool {
        let now = crate::clock::now_ms();
        let mut inner = self.inner.lock().expect("recording lock");
        let Some(source) = inner.sources.get(participant).copied() else {
            return false;
        };
        let screen = inner.screen;
        let Some(recorder) = inner.recorder.as_mut() else {
            return false;
        };
        let out = match track {
            TrackSource::Camera => {
                recorder.video(source, p.sequence_number, p.timestamp, p.marker, p.payload, now)
            }
            // Only the nurse's screen is recorded (a patient's screen is nobody's record).
            TrackSource::Screen if source == Source::Nurse && screen => {
                recorder.screen(p.sequence_number, p.timestamp, p.marker, p.payload, now)
            }
            TrackSource::Screen => return false,
            TrackSource::Microphone => recorder.audio(source, p.timestamp, p.payload, now),
        };
        if !out.sealed.is_empty()
            && let Err(e) = inner.spool.write_all(&out.sealed)
        {
            tracing::error!(error = %e, "recording spool write failed");
        }
        out.request_keyframe
    }
}

pub(super) fn modified_ms(path: &Path, or: i64) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(or, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::super::objects::ObjectStore;
    use super::super::reader::{ObjectRef, open_object};
    use super::*;
    use crate::recording::timeline::RecordingState;
    use std::path::{Path, PathBuf};

    fn kek(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        Keyring::create_key_file(&p).unwrap();
        p
    }

    #[test]
    fn a_shared_screen_is_recorded_only_where_the_policy_records_screens() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("recordings")).unwrap();
        let keyring = Keyring::load(&[kek(dir.path(), "k.hex")]).unwrap();
        // A VP8 keyframe (320x240) in one packet.
        let mut frame = vec![0x10, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00];
        frame.extend([0xAB; 100]);
        let packet = RtpView {
            sequence_number: 1,
            timestamp: 0,
            marker: true,
            payload: &frame,
        };
        for records in [false, true] {
            let (session, _) = RecordingSession::start(&store, &keyring, 0).unwrap();
            if records {
                session.record_screen();
            }
            let (nurse, patient) = (ParticipantId::random(), ParticipantId::random());
            session.add_participant(nurse.clone(), Source::Nurse);
            session.add_participant(patient.clone(), Source::Patient);
            session.rtp(&nurse, TrackSource::Screen, &packet);
            session.rtp(&patient, TrackSource::Screen, &packet);
            let stored = session.finish(&store, 1_000).unwrap();
            assert_eq!(
                stored.timeline.screen.len(),
                usize::from(records),
                "records: {records}"
            );
            assert_eq!(stored.segments[0].video_dims[2].is_some(), records);
        }
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
}
