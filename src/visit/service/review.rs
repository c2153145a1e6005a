//! A visit's recording as a reviewer sees it: one file and one timeline, whichever nodes the visit moved
//! through. The file is a WebM header followed by every stored segment of every part, read by range (only the
//! chunks a range touches are decrypted), then the Cues indexing every video track's keyframes (from the
//! segments' rows; the header's SeekHead points to them); the timeline merges the parts' manifests. Each
//! participant's share is a file of its own too ([`VideoService::feed_bytes`]), remuxed from the same sealed
//! objects as it is read. Only the holder of a policy's proof reads any of them.

use super::VideoService;
use super::recording::RecordingAccessError;
use crate::policy::Authorized;
use crate::recording::assembly::{self, OneTimeline, PartTimeline};
use crate::recording::cues::{self, Cue};
use crate::recording::reader::{ObjectRef, read_range};
use crate::recording::recorder::webm_header_seeking;
use crate::recording::remux::Feed;
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

/// A stored object of a recording and what opens it.
struct Stored<'a> {
    part: &'a RecordingRow,
    sealed_as: String,
    key: &'a str,
    /// Its plaintext length (a segment's, from its row).
    len: u64,
}

/// A piece of the file a reviewer reads.
enum Piece<'a> {
    /// Bytes made here: the header, the Cues.
    Made(Vec<u8>),
    Object(Stored<'a>),
}

impl Piece<'_> {
    fn len(&self) -> u64 {
        match self {
            Piece::Made(h) => h.len() as u64,
            Piece::Object(o) => o.len,
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
        let recording = self.stored_recording(proof).await?;
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
                Piece::Object(o) => out.extend(self.read_object(o, from, Some(to)).await?),
            }
        }
        Ok((out, start.min(total), total))
    }

    /// A recording the proof lets read, when it is stored.
    async fn stored_recording(
        &self,
        proof: &Authorized<RecordingRow>,
    ) -> Result<VisitRecording, RecordingAccessError> {
        proof.require(&["recording.stream", "recording.download"])?;
        let recording = self.visit_recording(proof.resource()).await?;
        match recording.state() {
            RecordingPhase::Stored => Ok(recording),
            RecordingPhase::Deleted => Err(RecordingAccessError::Deleted),
            _ => Err(RecordingAccessError::NotStored),
        }
    }

    /// Plaintext bytes `from..to` of one stored object.
    async fn read_object(
        &self,
        o: &Stored<'_>,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<u8>, RecordingAccessError> {
        let object = ObjectRef {
            recording_id: &o.part.id,
            sealed_as: &o.sealed_as,
            object_key: o.key,
            kek_id: &o.part.kek_id,
            wrapped_key: &o.part.wrapped_key,
        };
        let (bytes, _, _) = read_range(
            self.recording.objects.as_ref(),
            &self.recording.keyring,
            &object,
            from,
            to,
        )
        .await
        .map_err(|e| RecordingAccessError::Unreadable(e.to_string()))?;
        Ok(bytes)
    }

    /// Bytes `start..end` of one participant's file (see `recording::remux`): a header with their tracks, their
    /// media from every stored object, Cues for their video. Where their media lies in each object is found
    /// once per recording and feed (every object remuxed); a range then remuxes only the objects it touches.
    pub async fn feed_bytes(
        &self,
        proof: &Authorized<RecordingRow>,
        feed: Feed,
        start: u64,
        end: Option<u64>,
    ) -> Result<(Vec<u8>, u64, u64), RecordingAccessError> {
        let recording = self.stored_recording(proof).await?;
        let objects = stored_objects(&recording);
        let index = self.feed_index(&recording, &objects, feed).await?;
        let dims = assembly::first_dims(recording.segments.iter().map(|s| s.video_dims.as_str()));
        let duration = duration_ms(&recording);
        let header_len = {
            let h = feed.header(&dims, duration, &cues::seek_head(0));
            (h.len() - webm::segment_data_start(&h)) as u64
        };
        let media: u64 = index.lens.iter().sum();
        let cues: Vec<Cue> = index
            .cues
            .iter()
            .map(|c| Cue {
                cluster: header_len + c.cluster,
                ..*c
            })
            .collect();
        let header = feed.header(&dims, duration, &cues::seek_head(header_len + media));
        let tail = cues::element(&cues);
        let mut lens = vec![header.len() as u64];
        lens.extend(&index.lens);
        lens.push(tail.len() as u64);
        let total: u64 = lens.iter().sum();
        let end = end.unwrap_or(total).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        for (i, from, to) in assembly::plan(&lens, start, end) {
            let (from, to) = (from as usize, to as usize);
            if i == 0 {
                out.extend_from_slice(&header[from..to]);
            } else if i == lens.len() - 1 {
                out.extend_from_slice(&tail[from..to]);
            } else {
                let plain = self.read_object(&objects[i - 1], 0, None).await?;
                out.extend_from_slice(&feed.media(&plain)[from..to]);
            }
        }
        Ok((out, start.min(total), total))
    }

    /// How long each object's share of `feed` is, and its keyframes (offsets from the end of the header).
    async fn feed_index(
        &self,
        recording: &VisitRecording,
        objects: &[Stored<'_>],
        feed: Feed,
    ) -> Result<std::sync::Arc<FeedIndex>, RecordingAccessError> {
        // Keyed by what is stored too: a part recovered late adds segments, and the index must follow.
        let key = FeedKey {
            recording: recording
                .parts
                .first()
                .map_or_else(String::new, |p| p.id.to_string()),
            track: feed.video_track(),
            objects: objects.len(),
            bytes: objects.iter().map(|o| o.len).sum(),
        };
        let cached = self.feeds.lock().expect("feeds lock").get(&key).cloned();
        if let Some(found) = cached {
            return found.present();
        }
        let mut index = FeedIndex::default();
        for o in objects {
            let media = feed.media(&self.read_object(o, 0, None).await?);
            let at: u64 = index.lens.iter().sum();
            index.cues.extend(feed.cues(&media).into_iter().map(|c| Cue {
                cluster: at + c.cluster,
                ..c
            }));
            index.lens.push(media.len() as u64);
        }
        let index = std::sync::Arc::new(index);
        let mut feeds = self.feeds.lock().expect("feeds lock");
        // A bound, not a policy: an index is a length per segment and a cue per keyframe, rebuilt when dropped.
        if feeds.len() >= 256 {
            feeds.clear();
        }
        // Kept when empty too: asking again for someone not in the recording decrypts nothing.
        feeds.insert(key, index.clone());
        drop(feeds);
        index.present()
    }
}

/// Which index: a recording's first part, a feed's video track, and how many objects (and bytes) are stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedKey {
    recording: String,
    track: u64,
    objects: usize,
    bytes: u64,
}

/// Where one feed lies in a stored recording: its length in each object, its keyframes.
#[derive(Default)]
pub struct FeedIndex {
    lens: Vec<u64>,
    cues: Vec<Cue>,
}

trait Present {
    fn present(self) -> Result<std::sync::Arc<FeedIndex>, RecordingAccessError>;
}

impl Present for std::sync::Arc<FeedIndex> {
    /// The index, or `NotInRecording` when the feed has no media in any object.
    fn present(self) -> Result<std::sync::Arc<FeedIndex>, RecordingAccessError> {
        if self.lens.iter().all(|l| *l == 0) {
            return Err(RecordingAccessError::NotInRecording);
        }
        Ok(self)
    }
}

/// How long the visit's recording lasts, first part's start to last part's end.
fn duration_ms(r: &VisitRecording) -> f64 {
    let first = r.parts.first().map_or(0, |p| p.origin_ms);
    // The visit ends with its last part (an earlier part recovered late ends later, but the visit had moved on).
    let last = r.parts.last().and_then(|p| p.ended_at).unwrap_or(first);
    (last - first).max(0) as f64
}

/// The stored objects holding the media, in order: every stored segment, or the one whole file.
fn stored_objects(r: &VisitRecording) -> Vec<Stored<'_>> {
    if let Some(whole) = whole_file(r) {
        return vec![Stored {
            part: whole,
            sealed_as: whole.id.to_string(),
            key: whole.object_key.as_deref().unwrap_or_default(),
            len: 0,
        }];
    }
    let mut out = Vec::new();
    for part in &r.parts {
        for s in r
            .segments
            .iter()
            .filter(|s| s.stored && s.recording_id == part.id.as_str())
        {
            out.push(Stored {
                part,
                sealed_as: segment_object_id(&part.id, s.seq),
                key: &s.object_key,
                len: s.plain_bytes as u64,
            });
        }
    }
    out
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
    let dims = assembly::first_dims(stored.iter().map(|s| s.video_dims.as_str()));
    let duration = duration_ms(r);
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
            out.push(Piece::Object(Stored {
                part,
                sealed_as: segment_object_id(&part.id, s.seq),
                key: &s.object_key,
                len: s.plain_bytes as u64,
            }));
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
