//! One recording's timeline: when it started and ended, its secure pauses (start, end, reason, who), its
//! audio-only intervals (no video from either side, by choice or for want of a camera), the intervals the nurse's
//! screen is in the recording (from its first frame to a pause or the capture's end) and gaps (intervals lost
//! to a crash), and who took part (by role, each with whether their tracks are in the file and why not), from
//! which the manifest is written. Pausing is idempotent: a second pause
//! while paused changes nothing, as does resuming while active. Sans-IO: times are milliseconds passed in.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Interval {
    pub start_ms: i64,
    /// `None` while the pause is still in effect.
    pub end_ms: Option<i64>,
    pub reason: String,
    /// Who asked (an opaque actor reference, never a name).
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Gap {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Why: `lost` (the node died), `handover` (moved by a drain), `failover` (moved after its host died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a recording continues another: the visit moved to this node (a drain hands it over; a failover takes it
/// from a node that died, whose last heard time starts the outage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Continuation {
    /// The recording the previous host was writing (stored by it, or recovered from its spool when it restarts).
    pub recording_id: Option<String>,
    /// `drain` or `failover`.
    pub reason: String,
    /// Failover: when the previous host was last heard; media between then and `started_ms` is lost.
    pub outage_since_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Timeline {
    /// Set when this recording continues a visit begun on another node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<Continuation>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub pauses: Vec<Interval>,
    /// When the visit was audio only (manifests written before this field have none).
    #[serde(default)]
    pub audio_only: Vec<Interval>,
    /// When the nurse's screen was recorded (never during a pause).
    #[serde(default)]
    pub screen: Vec<Interval>,
    pub gaps: Vec<Gap>,
    /// Everyone who was in the media room while it recorded (manifests written before this field have none).
    #[serde(default)]
    pub participants: Vec<Participant>,
}

/// One person in a recorded visit, by role: no name (the manifest is not sealed), a guest by opaque id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Participant {
    /// `patient`, `nurse`, `guest`, `interpreter` or `physician`.
    pub role: String,
    /// A guest's opaque id, or an interpreter's or physician's staff id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_id: Option<String>,
    /// A nurse's staff id (a visit transferred to a colleague has two nurses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<String>,
    /// First joined while recording, and last left (`None` while still there, or at the end).
    pub joined_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_ms: Option<i64>,
    /// Whether their camera and microphone are in the file, and on which tracks (video, audio).
    pub recorded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracks: Option<[u64; 2]>,
    /// Why not: `declined` (a guest who said no to recording), `no_tracks_left` (a guest who came after four
    /// others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_recorded: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    Active,
    Paused,
}

impl Timeline {
    pub fn start(now_ms: i64) -> Timeline {
        Timeline {
            continues: None,
            started_ms: now_ms,
            ended_ms: None,
            pauses: Vec::new(),
            audio_only: Vec::new(),
            screen: Vec::new(),
            gaps: Vec::new(),
            participants: Vec::new(),
        }
    }

    /// `p` joined (again): their first join time is kept, a rejoin clears their leaving.
    pub fn joined(&mut self, p: Participant) {
        match self
            .participants
            .iter_mut()
            .find(|q| q.role == p.role && q.guest_id == p.guest_id && q.staff_id == p.staff_id)
        {
            Some(q) => {
                q.left_ms = None;
                q.recorded = p.recorded;
                q.tracks = p.tracks;
                q.not_recorded = p.not_recorded;
            }
            None => self.participants.push(p),
        }
    }

    /// The participant of `role` (and `guest_id`, `staff_id`) left the media room.
    pub fn left(&mut self, role: &str, (guest_id, staff_id): (Option<&str>, Option<&str>), now_ms: i64) {
        if let Some(q) = self.participants.iter_mut().find(|q| {
            q.role == role && q.guest_id.as_deref() == guest_id && q.staff_id.as_deref() == staff_id
        }) {
            q.left_ms = Some(now_ms);
        }
    }

    pub fn state(&self) -> RecordingState {
        if self.pauses.last().is_some_and(|p| p.end_ms.is_none()) {
            RecordingState::Paused
        } else {
            RecordingState::Active
        }
    }

    /// Applies a requested state; returns whether anything changed.
    pub fn set(&mut self, state: RecordingState, reason: &str, by: &str, now_ms: i64) -> bool {
        if self.ended_ms.is_some() || self.state() == state {
            return false;
        }
        match state {
            RecordingState::Paused => {
                // The screen is out of the recording while paused; its next frame after the pause reopens it.
                self.screen_stopped(now_ms);
                self.pauses.push(Interval {
                    start_ms: now_ms,
                    end_ms: None,
                    reason: reason.to_string(),
                    by: by.to_string(),
                })
            }
            RecordingState::Active => {
                if let Some(p) = self.pauses.last_mut() {
                    p.end_ms = Some(now_ms);
                }
            }
        }
        true
    }

    /// The visit became audio only (`on`) or went back to video; returns whether anything changed. Unlike a
    /// pause this keeps recording: the audio goes on.
    pub fn set_audio_only(&mut self, on: bool, reason: &str, by: &str, now_ms: i64) -> bool {
        let open = self.audio_only.last().is_some_and(|i| i.end_ms.is_none());
        if self.ended_ms.is_some() || open == on {
            return false;
        }
        if on {
            self.audio_only.push(Interval {
                start_ms: now_ms,
                end_ms: None,
                reason: reason.to_string(),
                by: by.to_string(),
            });
        } else if let Some(i) = self.audio_only.last_mut() {
            i.end_ms = Some(now_ms);
        }
        true
    }

    /// A frame of the nurse's screen went into the recording: opens a screen interval unless one is open.
    pub fn screen_recorded(&mut self, now_ms: i64) {
        let open = self.screen.last().is_some_and(|i| i.end_ms.is_none());
        if !open && self.ended_ms.is_none() {
            self.screen.push(Interval {
                start_ms: now_ms,
                end_ms: None,
                reason: "nurse_screen".into(),
                by: "nurse".into(),
            });
        }
    }

    /// The nurse's screen left the recording (a pause, or she stopped the capture): the open interval closes.
    pub fn screen_stopped(&mut self, now_ms: i64) {
        if let Some(i) = self.screen.last_mut().filter(|i| i.end_ms.is_none()) {
            i.end_ms = Some(now_ms);
        }
    }

    /// An interval whose media was lost (the broker died); recording resumes after it.
    pub fn gap(&mut self, start_ms: i64, end_ms: i64) {
        if end_ms > start_ms {
            self.gaps.push(Gap {
                start_ms,
                end_ms,
                reason: Some("lost".into()),
            });
        }
    }

    /// Ends the recording; an open pause ends with it.
    pub fn finish(&mut self, now_ms: i64) {
        if self.ended_ms.is_none() {
            for open in [
                self.pauses.last_mut(),
                self.audio_only.last_mut(),
                self.screen.last_mut(),
            ] {
                if let Some(p) = open.filter(|p| p.end_ms.is_none()) {
                    p.end_ms = Some(now_ms);
                }
            }
            self.ended_ms = Some(now_ms);
        }
    }

    /// Milliseconds of media the recording holds: wall-clock length minus pauses and gaps.
    pub fn recorded_ms(&self, now_ms: i64) -> i64 {
        let end = self.ended_ms.unwrap_or(now_ms);
        let paused: i64 = self
            .pauses
            .iter()
            .map(|p| p.end_ms.unwrap_or(end) - p.start_ms)
            .sum();
        let lost: i64 = self.gaps.iter().map(|g| g.end_ms - g.start_ms).sum();
        (end - self.started_ms - paused - lost).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_idempotent_and_listed() {
        let mut t = Timeline::start(1_000);
        assert!(t.set(RecordingState::Paused, "ssn on screen", "nurse-a", 5_000));
        assert!(
            !t.set(RecordingState::Paused, "again", "emr", 6_000),
            "already paused"
        );
        assert_eq!(t.state(), RecordingState::Paused);
        assert!(t.set(RecordingState::Active, "closed", "nurse-a", 9_000));
        assert!(
            !t.set(RecordingState::Active, "closed", "nurse-a", 9_500),
            "already active"
        );
        t.finish(20_000);
        assert_eq!(
            t.pauses,
            vec![Interval {
                start_ms: 5_000,
                end_ms: Some(9_000),
                reason: "ssn on screen".into(),
                by: "nurse-a".into()
            }]
        );
        assert_eq!(t.recorded_ms(99_999), 19_000 - 4_000);
        assert!(
            !t.set(RecordingState::Paused, "late", "x", 21_000),
            "nothing after the end"
        );
    }

    #[test]
    fn an_open_pause_ends_with_the_recording_and_gaps_count_as_lost() {
        let mut t = Timeline::start(0);
        t.set(RecordingState::Paused, "emr", "svc", 10_000);
        t.gap(12_000, 15_000);
        t.finish(30_000);
        assert_eq!(t.pauses[0].end_ms, Some(30_000));
        assert_eq!(t.recorded_ms(0), 30_000 - 20_000 - 3_000);
    }

    #[test]
    fn audio_only_intervals_are_listed_keep_recording_and_close_at_the_end() {
        let mut t = Timeline::start(0);
        assert!(t.set_audio_only(true, "camera_unavailable", "p", 0));
        assert!(
            !t.set_audio_only(true, "requested", "n", 1_000),
            "already audio only"
        );
        assert!(t.set_audio_only(false, "requested", "n", 4_000));
        assert!(!t.set_audio_only(false, "requested", "n", 5_000), "already video");
        assert!(t.set_audio_only(true, "requested", "n", 8_000));
        t.finish(10_000);
        let spans: Vec<_> = t.audio_only.iter().map(|i| (i.start_ms, i.end_ms)).collect();
        assert_eq!(spans, vec![(0, Some(4_000)), (8_000, Some(10_000))]);
        assert_eq!(t.audio_only[0].reason, "camera_unavailable");
        assert_eq!(t.recorded_ms(0), 10_000, "audio only is still recorded");
        let old: Timeline =
            serde_json::from_str(r#"{"started_ms":0,"ended_ms":5,"pauses":[],"gaps":[]}"#).unwrap();
        assert!(old.audio_only.is_empty(), "manifests from before read as none");
        assert!(old.screen.is_empty());
    }

    #[test]
    fn the_screen_is_in_the_recording_from_its_frames_to_a_pause_a_stop_or_the_end() {
        let mut t = Timeline::start(0);
        t.screen_recorded(1_000);
        t.screen_recorded(1_040);
        t.set(RecordingState::Paused, "emr", "svc", 3_000);
        t.set(RecordingState::Active, "emr", "svc", 5_000);
        t.screen_recorded(5_200);
        t.screen_stopped(7_000);
        t.screen_stopped(7_500);
        t.screen_recorded(8_000);
        t.finish(9_000);
        t.screen_recorded(9_500);
        let spans: Vec<_> = t.screen.iter().map(|i| (i.start_ms, i.end_ms)).collect();
        assert_eq!(
            spans,
            vec![(1_000, Some(3_000)), (5_200, Some(7_000)), (8_000, Some(9_000))]
        );
    }
}
