//! A recording in progress: the [`Recorder`] fed from the SFU's tap and its sealed spool on disk. When it ends,
//! the sealed object is written to the outbox and uploaded to the object store from there, so an object store
//! outage only delays the upload. Keys: the recording's data key and a separate spool key, both wrapped by the
//! keyring and kept in the recordings row, so a spool left by a crash can be finalized after a restart.

use std::collections::HashMap;
use std::io::Write;
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
}

pub struct RecordingSession {
    pub id: RecordingId,
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

/// A finished recording, ready for its row.
pub struct Stored {
    pub object_key: String,
    pub object_bytes: u64,
    pub media_bytes: u64,
    pub timeline: Timeline,
    /// False when the spool was cut short (the recording ends at the last whole chunk).
    pub complete: bool,
}

fn key_context(id: &str) -> String {
    format!("examroom-recording-v1|{id}")
}

fn spool_context(id: &str) -> String {
    format!("examroom-recording-spool-v1|{id}")
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
        let (recorder, head) = Recorder::start(&spool_key, &id, now_ms);
        let mut spool = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(store.spool_path(&id))?;
        spool.write_all(&head)?;
        Ok((
            RecordingSession {
                id,
                spool_key,
                key,
                inner: Mutex::new(Inner {
                    recorder: Some(recorder),
                    spool,
                    sources: HashMap::new(),
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

    /// Ends the recording and stores the sealed object.
    pub fn finish(&self, store: &LocalStore, now_ms: i64) -> Result<Stored, RecordingError> {
        let mut inner = self.inner.lock().expect("recording lock");
        let recorder = inner
            .recorder
            .take()
            .ok_or_else(|| RecordingError::Io(std::io::Error::other("recording already finished")))?;
        let (tail, timeline, header, media_bytes) = recorder.finish(now_ms);
        inner.spool.write_all(&tail)?;
        inner.spool.sync_all()?;
        let spool = std::fs::read(store.spool_path(&self.id))?;
        let (object, complete) = finalize(&self.spool_key, &spool, &header, &self.key, &self.id)?;
        let object_key = format!("{}.erec", self.id);
        store.put_outbox(&object_key, &object)?;
        std::fs::remove_file(store.spool_path(&self.id))?;
        Ok(Stored {
            object_key,
            object_bytes: object.len() as u64,
            media_bytes,
            timeline,
            complete,
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

/// Finishes a recording a crash left behind: its spool, up to the last whole chunk, becomes the object; the
/// time from the spool's last write to `now` is marked as a gap.
#[allow(clippy::too_many_arguments)]
pub fn recover(
    store: &LocalStore,
    keyring: &Keyring,
    id: &str,
    spool_kek_id: &str,
    spool_wrapped_key: &str,
    kek_id: &str,
    wrapped_key: &str,
    mut timeline: Timeline,
    now_ms: i64,
) -> Result<Stored, RecordingError> {
    let spool_key = keyring.unwrap_data_key(spool_kek_id, spool_wrapped_key, &spool_context(id))?;
    let key = keyring.unwrap_data_key(kek_id, wrapped_key, &key_context(id))?;
    let path = store.spool_path(id);
    let spool = std::fs::read(&path)?;
    let last_write = std::fs::metadata(&path)?
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(now_ms);
    let header = Recorder::recovery_header((last_write - timeline.started_ms).max(0) as f64);
    let (object, complete) = finalize(&spool_key, &spool, &header, &key, id)?;
    timeline.gap(last_write, now_ms);
    timeline.finish(now_ms);
    let object_key = format!("{id}.erec");
    store.put_outbox(&object_key, &object)?;
    std::fs::remove_file(path)?;
    Ok(Stored {
        object_key,
        object_bytes: object.len() as u64,
        media_bytes: 0,
        timeline,
        complete,
    })
}

/// Opens a whole stored recording (downloads, verification).
pub async fn open_object(
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    id: &str,
    object_key: &str,
    kek_id: &str,
    wrapped_key: &str,
) -> Result<Vec<u8>, RecordingError> {
    Ok(
        read_range(objects, keyring, id, object_key, kek_id, wrapped_key, 0, None)
            .await?
            .0,
    )
}

/// Reads plaintext bytes `start..end` (end exclusive) of a stored recording, decrypting only the chunks that
/// hold them (HTTP range requests). Returns the bytes, where they start, and the total plaintext length. A
/// missing or wrong key, or any tampering, fails closed.
#[allow(clippy::too_many_arguments)]
pub async fn read_range(
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    id: &str,
    object_key: &str,
    kek_id: &str,
    wrapped_key: &str,
    start: u64,
    end: Option<u64>,
) -> Result<(Vec<u8>, u64, u64), RecordingError> {
    use super::sealed::{Header, SealError, TAG_LEN, open_chunk};
    let key = keyring.unwrap_data_key(kek_id, wrapped_key, &key_context(id))?;
    let sealed_len = objects.len(object_key).await?;
    let head = objects.read(object_key, 0, sealed_len.min(18 + 255)).await?;
    let header = Header::parse(&head)?.ok_or(SealError::Truncated)?;
    let total = header.plain_len(sealed_len).ok_or(SealError::Truncated)?;
    let end = end.unwrap_or(total).min(total);
    if start >= end {
        return Ok((Vec::new(), start, total));
    }
    let chunk = header.chunk_size as u64;
    let full = chunk + TAG_LEN as u64;
    let last_index = (total / chunk) as u32; // the final chunk (possibly empty)
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
        assert!(!store.spool_path(&session.id).exists(), "the spool is gone");
        let objects = super::super::objects::LocalObjects::new(&store.objects_dir()).unwrap();
        let outbox = store.outbox_path(&stored.object_key);
        objects
            .put_file(&stored.object_key, &outbox, 0, false)
            .await
            .unwrap();

        // Rotated: the new KEK wraps new keys, the old one stays in the ring for old recordings.
        let rotated = Keyring::load(&[new.clone(), old]).unwrap();
        let webm = open_object(
            &objects,
            &rotated,
            &session.id,
            &stored.object_key,
            &keys.kek_id,
            &keys.wrapped_key,
        )
        .await
        .unwrap();
        assert!(webm.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
        let (_, fresh) = RecordingSession::start(&store, &rotated, 0).unwrap();
        assert_ne!(fresh.kek_id, keys.kek_id, "new recordings use the new KEK");

        // Without the old KEK, or with a wrapped key from elsewhere, nothing opens.
        let without = Keyring::load(&[new]).unwrap();
        assert!(matches!(
            open_object(
                &objects,
                &without,
                &session.id,
                &stored.object_key,
                &keys.kek_id,
                &keys.wrapped_key
            )
            .await,
            Err(RecordingError::Crypto(CryptoError::UnknownKek(_)))
        ));
        assert!(
            open_object(
                &objects,
                &rotated,
                &session.id,
                &stored.object_key,
                &keys.kek_id,
                &keys.spool_wrapped_key
            )
            .await
            .is_err()
        );
    }
}
