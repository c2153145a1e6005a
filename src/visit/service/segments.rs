//! Recording segments on the video service's side: a live part's open segment is closed every
//! `recording.segment_seconds` (and when the part ends), sealed off the media path, recorded in
//! `recording_segments` and uploaded at once, so the object store holds everything but the open segment. A part
//! is `stored` when its last segment is; uploads an outage held back are retried from the outbox.

use std::sync::Arc;

use super::VideoService;
use crate::audit::{AuditEvent, Outcome};
use crate::clock::now_ms;
use crate::recording::assembly::format_dims;
use crate::recording::session::{RecordingSession, SealedSegment, Stored};
use crate::store::{RecordingPhase, SegmentRow};
use crate::visit::VisitId;

impl VideoService {
    /// Closes every open segment that has run its length (the timers' tick).
    pub(super) async fn close_due_segments(&self) {
        let now = now_ms();
        let due: Vec<(VisitId, Arc<RecordingSession>)> = self
            .live()
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.segment_started_ms()
                    .is_some_and(|t| now - t >= self.recording.segment_ms)
            })
            .map(|(v, s)| (v.clone(), s.clone()))
            .collect();
        for (visit, session) in due {
            self.close_segment(&session).await;
            // The next segment starts on a keyframe, so a player can seek to it.
            self.engine.request_keyframes(visit.as_str()).await;
        }
    }

    /// Closes the open segment now and sends it to the object store.
    pub(super) async fn close_segment(&self, session: &Arc<RecordingSession>) {
        let _closing = session.segment_lock.lock().await;
        let (store, s, now) = (self.recording.store.clone(), session.clone(), now_ms());
        // Cutting is quick; sealing reads and reseals the spool: both off the runtime's threads.
        let sealed = tokio::task::spawn_blocking(move || match s.cut(&store, now)? {
            Some(closed) => s.seal(&store, closed).map(Some),
            None => Ok(None),
        })
        .await;
        match sealed {
            Ok(Ok(Some(segment))) => {
                // Its spool goes only once the row is written (a failure leaves it for the part's end).
                if let Some(row) = self.record_segment(&session.id, &segment).await {
                    segment.discard_spool();
                    self.upload_segment(&row).await;
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "recording segment could not be sealed"),
            Err(e) => tracing::error!(error = %e, "recording segment task failed"),
        }
    }

    async fn record_segment(&self, part: &str, s: &SealedSegment) -> Option<SegmentRow> {
        let row = SegmentRow {
            recording_id: part.to_string(),
            seq: s.seq,
            object_key: s.object_key.clone(),
            plain_bytes: s.plain_bytes as i64,
            sealed_bytes: s.sealed_bytes as i64,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            video_dims: format_dims(s.video_dims),
            cues: s.cues.clone(),
            stored: false,
        };
        match self.recording.db.insert_segment(&row).await {
            Ok(()) => Some(row),
            Err(e) => {
                tracing::error!(error = %e, "recording segment row could not be written");
                None
            }
        }
    }

    /// Moves a sealed segment from this node's outbox to the object store; on failure it stays there (sealed)
    /// for the next retry. False when it is not (or no longer) in this node's outbox.
    async fn upload_segment(&self, seg: &SegmentRow) -> bool {
        let outbox = self.recording.store.outbox_path(&seg.object_key);
        if !outbox.exists() {
            return false;
        }
        let part = match self.recording.db.recording(&seg.recording_id).await {
            // A part past retention has no key left: what its node still held is of no use to anyone.
            Ok(Some(part)) if part.state == RecordingPhase::Deleted => {
                let _ = tokio::fs::remove_file(&outbox).await;
                return false;
            }
            Ok(Some(part)) => part,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(error = %e, "recording row could not be read");
                return false;
            }
        };
        let put = self
            .recording
            .objects
            .put_file(&seg.object_key, &outbox, part.retain_until, part.legal_hold)
            .await;
        if let Err(e) = put {
            tracing::warn!(error = %e, "recording segment upload failed; kept in the outbox for retry");
            return false;
        }
        if let Err(e) = self
            .recording
            .db
            .mark_segment_stored(&seg.recording_id, seg.seq)
            .await
        {
            tracing::error!(error = %e, "recording segment row could not be updated");
            return false;
        }
        let _ = tokio::fs::remove_file(&outbox).await;
        true
    }

    /// Records a finished part (its last segments, sizes, manifest) and sends its segments on to the store.
    pub(super) async fn store_finished(&self, id: &str, stored: &Stored, ended_ms: i64) {
        let mut rows = Vec::new();
        for s in &stored.segments {
            if let Some(row) = self.record_segment(id, s).await {
                s.discard_spool();
                rows.push(row);
            }
        }
        let sealed: i64 = match self.recording.db.segments_of(&[id]).await {
            Ok(all) => all.iter().map(|s| s.sealed_bytes).sum(),
            Err(_) => stored.segments.iter().map(|s| s.sealed_bytes as i64).sum(),
        };
        let manifest = serde_json::to_string(&stored.timeline).unwrap_or_default();
        let r = self
            .recording
            .db
            .finish_recording(id, ended_ms, None, sealed, stored.media_bytes as i64, &manifest)
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "recording row could not be updated");
            return;
        }
        for row in &rows {
            self.upload_segment(row).await;
        }
        self.complete_part(id).await;
    }

    /// A finished part whose every segment is in the object store is `stored` (audited once).
    async fn complete_part(&self, id: &str) {
        let Ok(Some(row)) = self.recording.db.recording(id).await else {
            return;
        };
        if row.state != RecordingPhase::Uploading || row.object_key.is_some() {
            return;
        }
        let Ok(segments) = self.recording.db.segments_of(&[id]).await else {
            return;
        };
        // Every segment from the first, stored: a row still to come (a hole) keeps the part uploading.
        let whole = segments
            .iter()
            .enumerate()
            .all(|(i, s)| s.seq == i as i64 && s.stored);
        if !whole {
            return;
        }
        if let Err(e) = self.recording.db.mark_recording_stored(id).await {
            tracing::error!(error = %e, "recording row could not be updated");
            return;
        }
        self.recording
            .audit
            .record_or_log(
                AuditEvent::system(
                    "recorder",
                    "recording.stored",
                    format!("recording:{id}"),
                    Outcome::Success,
                )
                .reason(format!(
                    "{} bytes sealed in {} segment{}",
                    row.object_bytes.unwrap_or(0),
                    segments.len(),
                    if segments.len() == 1 { "" } else { "s" }
                )),
            )
            .await;
    }

    /// Retries what an object store outage left in this node's outbox, and completes the parts it held up.
    pub async fn retry_uploads(&self) {
        if let Ok(segments) = self.recording.db.unstored_segments().await {
            for seg in segments {
                self.upload_segment(&seg).await;
            }
        }
        if let Ok(rows) = self.recording.db.uploading_recordings().await {
            for row in rows {
                if row.object_key.is_some() {
                    // A whole-file recording from before segments.
                    self.upload(&row.id).await;
                } else {
                    self.complete_part(&row.id).await;
                }
            }
        }
    }
}
