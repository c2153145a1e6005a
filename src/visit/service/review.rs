//! A visit's recording as a reviewer sees it: one file and one timeline, whichever nodes the visit moved
//! through. The file is a WebM header followed by every stored segment of every part, read by range (only the
//! chunks a range touches are decrypted), then the Cues indexing every video track's keyframes (from the
//! segments' rows; the header's SeekHead points to them); the timeline merges the parts' manifests. Only the
//! holder of a policy's proof reads either.

use super::VideoService;
use super::recording::RecordingAccessError;
use crate::policy::Authorized;
use crate::recording::assembly::{self, OneTimeline, PartTimeline};
use crate::recording::cues::{self, Cue};
use crate::recording::reader::{ObjectRef, read_range};
use crate::recording::recorder::webm_header_seeking;
use crate::recording::session::segment_object_id;
use crate::recording::timeline::Timeline;
use crate::recording::webm;
use crate::store::{RecordingPhase, RecordingRow, SegmentRow};

/// A visit's recording: its parts (first to last) and their segments.
pub struct VisitRecording {
    pub parts: Vec<RecordingRow>,
    pub segments: Vec<SegmentRow>,
}

impl VisitRecording {
    /// Recording rows (newest first, as `Db::recordings` lists them) as one recording per visit, newest first,
    /// each with its parts first to last; segments are not read (the list does without them).
    pub fn group(newest_first: Vec<RecordingRow>) -> Vec<VisitRecording> {
        let mut visits: Vec<VisitRecording> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for r in newest_first.into_iter().rev() {
            match index.get(&r.visit_id) {
                Some(&i) => visits[i].parts.push(r),
                None => {
                    index.insert(r.visit_id.clone(), visits.len());
                    visits.push(VisitRecording {
                        parts: vec![r],
                        segments: Vec::new(),
                    });
                }
            }
        }
        visits.reverse();
        visits
    }

    /// Where the whole recording is: the last part's phase (earlier parts finish before the visit moves on; one
    /// whose node never came back contributes the segments it stored).
    pub fn state(&self) -> RecordingPhase {
        self.parts.last().map_or(RecordingPhase::Deleted, |p| p.state)
    }

    /// Sealed bytes in the object store.
    pub fn bytes(&self) -> i64 {
        self.parts.iter().map(|p| p.object_bytes.unwrap_or(0)).sum()
    }

    pub fn timeline(&self) -> Option<OneTimeline> {
        let parts: Vec<PartTimeline> = self
            .parts
            .iter()
            .map(|p| PartTimeline {
                id: p.id.to_string(),
                timeline: p
                    .manifest
                    .as_deref()
                    .and_then(|m| serde_json::from_str(m).ok())
                    .unwrap_or_else(|| Timeline::start(p.started_at)),
                last_segment_end: self
                    .segments
                    .iter()
                    .filter(|s| s.recording_id == p.id.as_str() && s.stored)
                    .map(|s| s.end_ms)
                    .max(),
            })
            .collect();
        assembly::one_timeline(&parts)
    }
}

/// A piece of the file a reviewer reads.
enum Piece<'a> {
    /// Bytes made here: the header, the Cues.
    Made(Vec<u8>),
    Object {
        part: &'a RecordingRow,
        sealed_as: String,
        key: &'a str,
        len: u64,
    },
}

impl Piece<'_> {
    fn len(&self) -> u64 {
        match self {
            Piece::Made(h) => h.len() as u64,
            Piece::Object { len, .. } => *len,
        }
    }
}

impl VideoService {
    /// The parts and segments of the recording `row` belongs to.
    pub async fn visit_recording(&self, row: &RecordingRow) -> Result<VisitRecording, RecordingAccessError> {
        let unreadable = |e: crate::store::StoreError| RecordingAccessError::Unreadable(e.to_string());
        let db = &self.recording.db;
        let parts = db.recordings_of_visit(&row.visit_id).await.map_err(unreadable)?;
        let ids: Vec<&str> = parts.iter().map(|p| p.id.as_str()).collect();
        let segments = db.segments_of(&ids).await.map_err(unreadable)?;
        Ok(VisitRecording { parts, segments })
    }

    /// Bytes `start..end` of a visit's whole recording as one WebM file, decrypted for someone the policy let
    /// view it (the objects stay sealed at rest; plaintext exists only in what is returned): the bytes, where
    /// they start, the total.
    pub async fn recording_bytes(
        &self,
        proof: &Authorized<RecordingRow>,
        start: u64,
        end: Option<u64>,
    ) -> Result<(Vec<u8>, u64, u64), RecordingAccessError> {
        proof.require(&["recording.stream", "recording.download"])?;
        let recording = self.visit_recording(proof.resource()).await?;
        match recording.state() {
            RecordingPhase::Stored => {}
            RecordingPhase::Deleted => return Err(RecordingAccessError::Deleted),
            _ => return Err(RecordingAccessError::NotStored),
        }
        if let Some(whole) = whole_file(&recording) {
            let object = ObjectRef {
                recording_id: &whole.id,
                sealed_as: &whole.id,
                object_key: whole.object_key.as_deref().unwrap_or_default(),
                kek_id: &whole.kek_id,
                wrapped_key: &whole.wrapped_key,
            };
            return read_range(
                self.recording.objects.as_ref(),
                &self.recording.keyring,
                &object,
                start,
                end,
            )
            .await
            .map_err(|e| RecordingAccessError::Unreadable(e.to_string()));
        }
        let pieces = pieces(&recording);
        let lens: Vec<u64> = pieces.iter().map(Piece::len).collect();
        let total: u64 = lens.iter().sum();
        let end = end.unwrap_or(total).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        for (i, from, to) in assembly::plan(&lens, start, end) {
            match &pieces[i] {
                Piece::Made(h) => out.extend_from_slice(&h[from as usize..to as usize]),
                Piece::Object {
                    part, sealed_as, key, ..
                } => {
                    let object = ObjectRef {
                        recording_id: &part.id,
                        sealed_as,
                        object_key: key,
                        kek_id: &part.kek_id,
                        wrapped_key: &part.wrapped_key,
                    };
                    let (bytes, _, _) = read_range(
                        self.recording.objects.as_ref(),
                        &self.recording.keyring,
                        &object,
                        from,
                        Some(to),
                    )
                    .await
                    .map_err(|e| RecordingAccessError::Unreadable(e.to_string()))?;
                    out.extend(bytes);
                }
            }
        }
        Ok((out, start.min(total), total))
    }
}

/// A recording made before segments: one part, one whole-file object (header included).
fn whole_file(r: &VisitRecording) -> Option<&RecordingRow> {
    match r.parts.as_slice() {
        [only] if only.object_key.is_some() && r.segments.is_empty() => Some(only),
        _ => None,
    }
}

/// The file's pieces: a header and every stored segment in order.
fn pieces(r: &VisitRecording) -> Vec<Piece<'_>> {
    let stored: Vec<&SegmentRow> = r.segments.iter().filter(|s| s.stored).collect();
    let first = r.parts.first().map_or(0, |p| p.origin_ms);
    // The visit ends with its last part (an earlier part recovered late ends later, but the visit had moved on).
    let last = r.parts.last().and_then(|p| p.ended_at).unwrap_or(first);
    let dims = assembly::first_dims(stored.iter().map(|s| s.video_dims.as_str()));
    let duration = (last - first).max(0) as f64;
    // The header's length does not depend on where the Cues are: build it once to place everything after it.
    let header = webm_header_seeking(dims, duration, &cues::seek_head(0));
    let mut at = (header.len() - webm::segment_data_start(&header)) as u64;
    let mut out = vec![Piece::Made(Vec::new())];
    let mut index: Vec<Cue> = Vec::new();
    for part in &r.parts {
        for s in stored.iter().filter(|s| s.recording_id == part.id.as_str()) {
            index.extend(cues::parse(&s.cues).into_iter().map(|c| Cue {
                cluster: at + c.cluster,
                ..c
            }));
            at += s.plain_bytes as u64;
            out.push(Piece::Object {
                part,
                sealed_as: segment_object_id(&part.id, s.seq),
                key: &s.object_key,
                len: s.plain_bytes as u64,
            });
        }
    }
    // Recordings made before cues keep a header without a SeekHead, and no Cues.
    let header = if index.is_empty() {
        webm_header_seeking(dims, duration, &[])
    } else {
        out.push(Piece::Made(cues::element(&index)));
        webm_header_seeking(dims, duration, &cues::seek_head(at))
    };
    out[0] = Piece::Made(header);
    out
}
