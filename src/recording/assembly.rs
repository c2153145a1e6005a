//! One file and one timeline from a visit's recording parts and their segments, sans-IO. A visit that moved
//! between nodes has one part per node; each part is a run of segments holding WebM clusters on the visit's
//! one timeline. The file a reviewer gets is a WebM header followed by every stored segment in order, and a
//! byte range of it maps onto ranges of the segments ([`plan`]), so it streams and seeks without being built.
//! The timeline merges the parts' manifests: pauses, audio-only intervals, the nurse's screen intervals, the
//! media lost in between (a gap per hand-over or failover) and the hand-overs themselves.

use serde::Serialize;

use super::recorder::Dims;
use super::timeline::{Gap, Interval, Participant, Timeline};

/// The video sizes of a segment (patient, nurse, the nurse's screen, each guest) as stored: `WxH` or empty,
/// comma-separated; rows written before screens have two entries, before guests three.
pub fn format_dims(dims: Dims) -> String {
    dims.iter()
        .map(|d| d.map(|(w, h)| format!("{w}x{h}")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn parse_dims(text: &str) -> Dims {
    let mut out = Dims::default();
    for (slot, part) in out.iter_mut().zip(text.split(',')) {
        *slot = part
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    }
    out
}

/// The first size seen for each video track across the segments.
pub fn first_dims<'a>(all: impl Iterator<Item = &'a str>) -> Dims {
    let mut out = Dims::default();
    for dims in all.map(parse_dims) {
        for (slot, d) in out.iter_mut().zip(dims) {
            if slot.is_none() {
                *slot = d;
            }
        }
    }
    out
}

/// The pieces a byte range `start..end` of the concatenation of pieces of lengths `lens` touches: (piece,
/// from, to) with `from..to` within the piece.
pub fn plan(lens: &[u64], start: u64, end: u64) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    if start >= end {
        return out;
    }
    let mut at = 0u64;
    for (i, &len) in lens.iter().enumerate() {
        let (a, b) = (at, at + len);
        at = b;
        if b <= start || a >= end || len == 0 {
            continue;
        }
        out.push((i, start.max(a) - a, end.min(b) - a));
    }
    out
}

/// One part as the merge needs it.
pub struct PartTimeline {
    pub id: String,
    pub timeline: Timeline,
    /// The end of its last stored segment: where the media of a part that was never finished (its node and
    /// disk lost) stops.
    pub last_segment_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handover {
    pub at_ms: i64,
    /// `drain` or `failover`.
    pub reason: String,
    pub from_part: String,
    pub to_part: String,
}

/// A visit's recording as one timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OneTimeline {
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub pauses: Vec<Interval>,
    pub audio_only: Vec<Interval>,
    /// When the nurse's screen is in the recording (track 5).
    pub screen: Vec<Interval>,
    pub gaps: Vec<Gap>,
    pub handovers: Vec<Handover>,
    /// Who took part, by role, over every part (a rejoin on the next node is the same person).
    pub participants: Vec<Participant>,
}

fn clip(list: &[Interval], until: Option<i64>) -> impl Iterator<Item = Interval> + '_ {
    list.iter().filter_map(move |i| {
        let end = match (i.end_ms, until) {
            (Some(e), Some(u)) => Some(e.min(u)),
            (e, None) => e,
            (None, u) => u,
        };
        if until.is_some_and(|u| i.start_ms >= u) {
            return None;
        }
        Some(Interval {
            end_ms: end,
            ..i.clone()
        })
    })
}

/// Merges the parts (first to last) into one timeline. A part's intervals stop where the next part starts
/// (a part recovered long after its node died ends at its recovery, but the visit had moved on); the time
/// between a part's last media and the next part's start is a gap named for the move.
pub fn one_timeline(parts: &[PartTimeline]) -> Option<OneTimeline> {
    let first = parts.first()?;
    let mut out = OneTimeline {
        started_ms: first.timeline.started_ms,
        ended_ms: parts.last().and_then(|p| p.timeline.ended_ms),
        pauses: Vec::new(),
        audio_only: Vec::new(),
        screen: Vec::new(),
        gaps: Vec::new(),
        handovers: Vec::new(),
        participants: Vec::new(),
    };
    let mut gaps = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let next = parts.get(i + 1).map(|n| n.timeline.started_ms);
        // Where this part's media stops: its end, or for one never finished, its last stored segment.
        let media_end = match (p.timeline.ended_ms, next) {
            (Some(e), Some(n)) => Some(e.min(n)),
            (Some(e), None) => Some(e),
            (None, Some(n)) => Some(p.last_segment_end.unwrap_or(p.timeline.started_ms).min(n)),
            (None, None) => None,
        };
        out.pauses.extend(clip(&p.timeline.pauses, media_end));
        out.audio_only.extend(clip(&p.timeline.audio_only, media_end));
        out.screen.extend(clip(&p.timeline.screen, media_end));
        for person in &p.timeline.participants {
            let same = |q: &&mut Participant| {
                q.role == person.role && q.guest_id == person.guest_id && q.staff_id == person.staff_id
            };
            match out.participants.iter_mut().find(same) {
                // Joined in the first part they are in; left as the last part they are in says.
                Some(q) => {
                    q.left_ms = person.left_ms;
                    q.recorded = q.recorded && person.recorded;
                    q.not_recorded = q.not_recorded.take().or(person.not_recorded.clone());
                }
                None => out.participants.push(person.clone()),
            }
        }
        for g in &p.timeline.gaps {
            let end = next.map_or(g.end_ms, |n| g.end_ms.min(n));
            if end > g.start_ms {
                gaps.push(Gap {
                    end_ms: end,
                    ..g.clone()
                });
            }
        }
        if let Some(n) = parts.get(i + 1) {
            let reason = n
                .timeline
                .continues
                .as_ref()
                .map_or("handover".to_string(), |c| c.reason.clone());
            let lost_from = n
                .timeline
                .continues
                .as_ref()
                .and_then(|c| c.outage_since_ms)
                .into_iter()
                .chain(media_end)
                .min()
                .unwrap_or(n.timeline.started_ms);
            let label = if reason == "drain" {
                "handover"
            } else {
                reason.as_str()
            };
            if n.timeline.started_ms > lost_from {
                gaps.push(Gap {
                    start_ms: lost_from,
                    end_ms: n.timeline.started_ms,
                    reason: Some(label.to_string()),
                });
            }
            out.handovers.push(Handover {
                at_ms: n.timeline.started_ms,
                reason,
                from_part: p.id.clone(),
                to_part: n.id.clone(),
            });
        }
    }
    // Overlapping gaps (a dead node's own recovery gap and the failover's) are one.
    gaps.sort_by_key(|g| (g.start_ms, g.end_ms));
    for g in gaps {
        match out.gaps.last_mut() {
            Some(last) if g.start_ms <= last.end_ms => {
                last.end_ms = last.end_ms.max(g.end_ms);
                // A move says more than a node's own "lost".
                if g.reason.as_deref() != Some("lost") {
                    last.reason = g.reason;
                }
            }
            _ => out.gaps.push(g),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::timeline::{Continuation, RecordingState};

    #[test]
    fn byte_ranges_map_onto_the_pieces_they_touch() {
        let lens = [10, 0, 5, 20];
        assert_eq!(plan(&lens, 0, 35), vec![(0, 0, 10), (2, 0, 5), (3, 0, 20)]);
        assert_eq!(plan(&lens, 8, 12), vec![(0, 8, 10), (2, 0, 2)]);
        assert_eq!(plan(&lens, 15, 16), vec![(3, 0, 1)]);
        assert_eq!(plan(&lens, 34, 35), vec![(3, 19, 20)]);
        assert!(plan(&lens, 35, 40).is_empty());
        assert!(plan(&lens, 20, 5).is_empty(), "a reversed range is empty");
    }

    #[test]
    fn video_sizes_round_trip_and_the_first_seen_wins() {
        let dims = |given: &[(usize, (u32, u32))]| {
            let mut d = Dims::default();
            for (i, size) in given {
                d[*i] = Some(*size);
            }
            d
        };
        assert_eq!(format_dims(dims(&[(0, (640, 480))])), "640x480,,,,,,");
        assert_eq!(
            parse_dims("640x480,"),
            dims(&[(0, (640, 480))]),
            "a row from before screens"
        );
        assert_eq!(
            parse_dims(",,1280x720"),
            dims(&[(2, (1280, 720))]),
            "a row from before guests"
        );
        assert_eq!(parse_dims(",,,640x480"), dims(&[(3, (640, 480))]));
        assert_eq!(parse_dims(""), Dims::default());
        let all = [",", "320x240,", "640x480,1280x720"];
        assert_eq!(
            first_dims(all.into_iter()),
            dims(&[(0, (320, 240)), (1, (1280, 720))])
        );
    }

    fn part(id: &str, start: i64, end: Option<i64>, continues: Option<(&str, Option<i64>)>) -> PartTimeline {
        let mut timeline = Timeline::start(start);
        timeline.continues = continues.map(|(reason, outage)| Continuation {
            recording_id: None,
            reason: reason.into(),
            outage_since_ms: outage,
        });
        if let Some(e) = end {
            timeline.finish(e);
        }
        PartTimeline {
            id: id.into(),
            timeline,
            last_segment_end: None,
        }
    }

    #[test]
    fn a_drain_and_a_failover_make_one_timeline_with_their_gaps_and_hand_overs() {
        // Part a: paused at 5 s until the drain at 20 s (the pause is carried over to b).
        let mut a = part("a", 0, None, None);
        a.timeline.set(RecordingState::Paused, "emr", "n", 5_000);
        a.timeline.finish(20_000);
        let mut b = part("b", 20_600, None, Some(("drain", None)));
        b.timeline
            .set(RecordingState::Paused, "carried over", "system", 20_600);
        b.timeline.set(RecordingState::Active, "done", "n", 25_000);
        // b's node died at 40 s; recovered at 90 s (its own gap from its last write), c took over at 43 s.
        b.timeline.gap(40_000, 90_000);
        b.timeline.finish(90_000);
        let c = part("c", 43_000, Some(60_000), Some(("failover", Some(40_000))));
        let t = one_timeline(&[a, b, c]).unwrap();
        assert_eq!((t.started_ms, t.ended_ms), (0, Some(60_000)));
        let pauses: Vec<_> = t.pauses.iter().map(|p| (p.start_ms, p.end_ms)).collect();
        assert_eq!(pauses, vec![(5_000, Some(20_000)), (20_600, Some(25_000))]);
        let gaps: Vec<_> = t
            .gaps
            .iter()
            .map(|g| (g.start_ms, g.end_ms, g.reason.as_deref().unwrap()))
            .collect();
        assert_eq!(
            gaps,
            vec![(20_000, 20_600, "handover"), (40_000, 43_000, "failover")]
        );
        let moves: Vec<_> = t.handovers.iter().map(|h| (h.at_ms, h.reason.as_str())).collect();
        assert_eq!(moves, vec![(20_600, "drain"), (43_000, "failover")]);
    }

    #[test]
    fn a_part_whose_node_never_came_back_ends_at_its_last_stored_segment() {
        let mut lost = part("a", 0, None, None);
        lost.last_segment_end = Some(120_000);
        let next = part("b", 150_000, Some(200_000), Some(("failover", Some(148_000))));
        let t = one_timeline(&[lost, next]).unwrap();
        let gaps: Vec<_> = t.gaps.iter().map(|g| (g.start_ms, g.end_ms)).collect();
        assert_eq!(
            gaps,
            vec![(120_000, 150_000)],
            "the open segment's media is the loss"
        );
        assert!(one_timeline(&[]).is_none());
    }
}
