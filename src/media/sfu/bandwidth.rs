//! How much each viewer's link can take, and what the SFU does about it. Every peer connection stamps what it
//! sends with transport-wide sequence numbers; the viewer's browser reports their arrival (TWCC), the engine's
//! congestion-control interceptor matches reports to what was sent, and [`Estimate`] turns them into the
//! viewer's downlink estimate (no pacer: forwarded media is already paced by its sender). Once a second, per
//! room ([`run`]): each publisher is told the lowest estimate among the viewers of its video by REMB, so its
//! browser encodes for the slowest link instead of
//! losing packets on it; a viewer whose estimate stays below [`VIDEO_FLOOR_BPS`] gets audio only (video is not
//! forwarded to it, and both sides are told) until it recovers, when its senders are asked for a keyframe.
//! The decisions are [`ViewerLink::step`] and [`publisher_cap`], sans-IO.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, PacketReport};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;

use super::{Rooms, request_keyframe};
use crate::media::{MediaEvent, TrackSource};
use crate::telemetry::MediaMetrics;

/// Where a viewer's estimate starts: high enough that a new call is not held back while the estimator learns
/// (it only comes down on evidence: delay growing, or loss).
pub const INITIAL_BPS: f64 = 2_500_000.0;
const MIN_BPS: f64 = 30_000.0;
const MAX_BPS: f64 = 10_000_000.0;
/// Below this for [`PAUSE_AFTER`], a viewer gets audio only: video this thin freezes more than it plays.
pub const VIDEO_FLOOR_BPS: f64 = 100_000.0;
/// Above this for [`RESUME_AFTER`], video comes back (a margin over the floor, so it does not flap).
pub const VIDEO_RESUME_BPS: f64 = 200_000.0;
/// What growth may reach beyond twice what a link carried, while the viewer gets video: a little room to climb.
const GROWTH_ROOM_BPS: f64 = 100_000.0;
/// The same while the viewer is on audio only: over the resume line, so that its voice alone (about 50 kbit/s)
/// can show the link has room for video again — the retry that brings video back, spaced by the back-off in
/// [`ViewerLink`] when the link still cannot hold it. (With the first room only, video never came back.)
const RETURN_ROOM_BPS: f64 = VIDEO_RESUME_BPS + 50_000.0;
const PAUSE_AFTER: Duration = Duration::from_secs(2);
const RESUME_AFTER: Duration = Duration::from_secs(4);
/// What a publisher is told on top of its slowest viewer's estimate is for video: audio and RTCP need room too.
const AUDIO_HEADROOM_BPS: f64 = 60_000.0;
/// The lowest a publisher is asked to go: below it the viewers that cannot take it get audio only instead.
const PUBLISHER_MIN_BPS: f64 = 100_000.0;
const TICK: Duration = Duration::from_secs(1);

/// A viewer's downlink estimate from its TWCC reports, publishing its target where the SFU can read it.
///
/// Why not the engine's `Gcc`: measured on a 300 kbit/s link (scripts/bench-network.sh), its loss half cut the
/// target on every feedback batch (ten or more a second) while the first overshoot drained, down to its floor,
/// and its delay half never saw overuse behind a tail-dropping queue. This one judges half-second windows:
/// over 30% lost (saturated), the target comes down to what the link delivered in the window (a little under
/// it); over 15%, it steps down 15%; under 2%, it grows 6% per window; in between it holds — random loss on a
/// link that is not full (5% is common on Wi-Fi) must not ratchet it down to what was being sent. A queue
/// building up (a packet's one-way delay 150 ms over the least seen) also steps it down, and over 40 ms stops
/// its growth. After a cut, loss and delay do not count for 2.5 s: the senders are still following it.
pub struct Estimate {
    target: f64,
    window: Window,
    /// The last cut: the senders need time to follow it (REMB once a second, then their encoders) before
    /// the loss they still cause may count again.
    cut_at: Option<Instant>,
    /// One-way delays are measured from the first departure (the receiver's clock has another origin: only
    /// their growth over the least one counts).
    epoch: Option<Instant>,
    /// The least one-way delay this period and the last (periods of [`LEAST_PERIOD`]): a path that changed (an
    /// ICE restart onto a relay) or clocks that drift must not read as a queue forever.
    least_owd: f64,
    least_before: f64,
    period_start: Option<Instant>,
    shared: Arc<Downlink>,
}

/// What a viewer's estimator and the SFU share: the estimate it publishes (bits per second, `f64` bits), and
/// whether the SFU has put the viewer on audio only (which gives its growth the room to bring video back).
#[derive(Debug)]
pub struct Downlink {
    target: AtomicU64,
    audio_only: AtomicBool,
}

impl Downlink {
    pub fn estimate(&self) -> f64 {
        f64::from_bits(self.target.load(Ordering::Relaxed))
    }

    pub fn set_audio_only(&self, on: bool) {
        self.audio_only.store(on, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Window {
    start: Option<Instant>,
    packets: u32,
    lost: u32,
    arrived_bytes: u64,
    /// The largest queueing delay a packet of the window met (its one-way delay over the least seen).
    queued_ms: f64,
}

const WINDOW: Duration = Duration::from_millis(500);
const HOLD_AFTER_CUT: Duration = Duration::from_millis(2500);
/// Queueing delay (ms) over which the link is full: a step down; under the second, growth may go on.
const QUEUE_CUT_MS: f64 = 150.0;
const QUEUE_GROW_MS: f64 = 40.0;
const LEAST_PERIOD: Duration = Duration::from_secs(10);

impl Estimate {
    /// The estimator for one peer connection's interceptor chain, and the handle the SFU shares with it.
    pub fn new() -> (Self, Arc<Downlink>) {
        let published = Arc::new(Downlink {
            target: AtomicU64::new(INITIAL_BPS.to_bits()),
            audio_only: AtomicBool::new(false),
        });
        (
            Self {
                target: INITIAL_BPS,
                window: Window::default(),
                cut_at: None,
                epoch: None,
                least_owd: f64::MAX,
                least_before: f64::MAX,
                period_start: None,
                shared: published.clone(),
            },
            published,
        )
    }

    /// Judges a finished window.
    fn settle(&mut self, now: Instant, seconds: f64) {
        let w = std::mem::take(&mut self.window);
        if w.packets < 5 {
            return;
        }
        let loss = w.lost as f64 / w.packets as f64;
        let delivered = w.arrived_bytes as f64 * 8.0 / seconds;
        let may_cut = self
            .cut_at
            .is_none_or(|at| now.saturating_duration_since(at) >= HOLD_AFTER_CUT);
        let queued = w.queued_ms;
        if (loss > 0.15 || queued > QUEUE_CUT_MS) && !may_cut {
            return;
        }
        if loss > 0.30 {
            // Saturated: the link took what it delivered.
            self.target = self.target.min(delivered * 0.95).max(MIN_BPS);
            self.cut_at = Some(now);
        } else if loss > 0.15 || queued > QUEUE_CUT_MS {
            // Congested (loss, or a queue building up before the link drops anything), or a link that loses a
            // lot anyway: a step down, not to what a half-full link carried.
            self.target = (self.target * 0.85).max(MIN_BPS);
            self.cut_at = Some(now);
        } else if loss < 0.02 && queued < QUEUE_GROW_MS {
            // Growth needs evidence: at most to twice what the link carried (and a little room), never toward the
            // ceiling on a link that is barely used; on audio only, room up past the resume line.
            let room = if self.shared.audio_only.load(Ordering::Relaxed) {
                RETURN_ROOM_BPS
            } else {
                GROWTH_ROOM_BPS
            };
            let evidence = 2.0 * delivered + room;
            if self.target < evidence {
                self.target = (self.target * 1.06).min(evidence).min(MAX_BPS);
            }
        }
    }
}

impl BandwidthEstimator for Estimate {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        let start = *self.window.start.get_or_insert(now);
        let period = *self.period_start.get_or_insert(now);
        if now.saturating_duration_since(period) >= LEAST_PERIOD {
            self.least_before = self.least_owd;
            self.least_owd = f64::MAX;
            self.period_start = Some(now);
        }
        for r in reports {
            self.window.packets += 1;
            if r.arrived {
                self.window.arrived_bytes += r.size as u64;
                if let Some(arrival) = r.arrival {
                    let epoch = *self.epoch.get_or_insert(r.departure);
                    let owd =
                        arrival.as_secs_f64() - r.departure.saturating_duration_since(epoch).as_secs_f64();
                    self.least_owd = self.least_owd.min(owd);
                    let least = self.least_owd.min(self.least_before);
                    self.window.queued_ms = self.window.queued_ms.max((owd - least) * 1000.0);
                }
            } else {
                self.window.lost += 1;
            }
        }
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            self.settle(now, elapsed.as_secs_f64());
            self.shared.target.store(self.target.to_bits(), Ordering::Relaxed);
        }
    }
    fn target_bitrate(&self) -> f64 {
        self.target
    }
}

/// Whether one viewer receives video, with the time its estimate has been on the other side of the line.
#[derive(Debug, Default)]
pub struct ViewerLink {
    pub audio_only: bool,
    crossed_at: Option<Instant>,
    /// How often video was taken away: each time, it waits twice as long to come back (up to 8×), so a link
    /// that cannot hold video does not flap.
    pauses: u32,
}

impl ViewerLink {
    /// Folds in an estimate; `Some(audio_only)` when the viewer's mode changes.
    pub fn step(&mut self, estimate_bps: f64, now: Instant) -> Option<bool> {
        let (crossing, wait) = if self.audio_only {
            let backoff = 1 << self.pauses.saturating_sub(1).min(3);
            (estimate_bps >= VIDEO_RESUME_BPS, RESUME_AFTER * backoff)
        } else {
            (estimate_bps < VIDEO_FLOOR_BPS, PAUSE_AFTER)
        };
        if !crossing {
            self.crossed_at = None;
            return None;
        }
        let since = *self.crossed_at.get_or_insert(now);
        if now.saturating_duration_since(since) < wait {
            return None;
        }
        self.audio_only = !self.audio_only;
        self.crossed_at = None;
        if self.audio_only {
            self.pauses += 1;
        }
        Some(self.audio_only)
    }
}

/// The bitrate a publisher is asked to stay under: the lowest estimate among the viewers that receive its
/// video, less room for audio; `None` when nobody receives it (nothing to say).
pub fn publisher_cap(viewers: impl IntoIterator<Item = f64>) -> Option<f64> {
    viewers
        .into_iter()
        .reduce(f64::min)
        .map(|low| (low - AUDIO_HEADROOM_BPS).clamp(PUBLISHER_MIN_BPS, MAX_BPS))
}

/// Once a second until the engine is gone: each viewer's mode, then each publisher's REMB.
pub(super) async fn run(state: Weak<Mutex<Rooms>>, metrics: MediaMetrics) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let Some(rooms) = state.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut changed = Vec::new();
        let mut caps = Vec::new();
        {
            let rooms = rooms.lock().expect("rooms lock");
            for peers in rooms.rooms.values() {
                for viewer in peers {
                    let estimate = viewer.downlink.estimate();
                    tracing::debug!(participant = viewer.id.as_str(), estimate, "downlink estimate");
                    let mut link = viewer.link.lock().expect("link lock");
                    if let Some(audio_only) = link.step(estimate, now) {
                        changed.push((viewer.clone(), audio_only));
                    }
                }
                for publisher in peers {
                    let Some(incoming) = publisher
                        .incoming
                        .lock()
                        .expect("peer lock")
                        .get(&TrackSource::Camera)
                        .map(|i| (i.track.clone(), i.ssrc))
                    else {
                        continue;
                    };
                    let others: Vec<_> = peers.iter().filter(|v| v.id != publisher.id).collect();
                    let watching = others
                        .iter()
                        .filter(|v| !v.link.lock().expect("link lock").audio_only)
                        .map(|v| v.downlink.estimate());
                    // Everyone on audio only: its video reaches nobody, so it may as well be thin.
                    let cap =
                        publisher_cap(watching).or_else(|| (!others.is_empty()).then_some(PUBLISHER_MIN_BPS));
                    if let Some(cap) = cap {
                        caps.push((incoming, cap));
                    }
                }
            }
        }
        for (viewer, audio_only) in changed {
            tracing::info!(
                participant = viewer.id.as_str(),
                audio_only,
                "a viewer's link changed mode"
            );
            viewer.downlink.set_audio_only(audio_only);
            (viewer.events)(MediaEvent::Downlink { audio_only });
            if !audio_only {
                // The video it missed moved the senders' numbers on: every video track it gets (cameras, a
                // shared screen) continues from the last packet it got, from a keyframe.
                for out in viewer.video_tracks() {
                    out.rewriter.lock().expect("rewriter lock").restart();
                }
                let wanted = [TrackSource::Camera, TrackSource::Screen];
                request_keyframe(&state, &viewer.room, &viewer.id, &wanted, &metrics).await;
            }
        }
        for ((track, ssrc), cap) in caps {
            let remb: Vec<Box<dyn rtcp::Packet>> = vec![Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 0,
                bitrate: cap as f32,
                ssrcs: vec![ssrc],
            })];
            let _ = track.write_rtcp(remb).await;
        }
        drop(rooms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_gets_audio_only_after_two_seconds_below_the_floor_and_video_after_four_above_the_resume_line()
    {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut link = ViewerLink::default();
        assert_eq!(link.step(2_000_000.0, at(0.0)), None);
        assert_eq!(link.step(80_000.0, at(1.0)), None, "not yet: one bad second");
        assert_eq!(
            link.step(300_000.0, at(2.0)),
            None,
            "recovered: the clock restarts"
        );
        assert_eq!(link.step(80_000.0, at(3.0)), None);
        assert_eq!(
            link.step(90_000.0, at(5.0)),
            Some(true),
            "two seconds below the floor"
        );
        assert!(link.audio_only);
        // Between the floor and the resume line: stays audio only.
        assert_eq!(link.step(150_000.0, at(6.0)), None);
        assert_eq!(link.step(150_000.0, at(20.0)), None);
        assert_eq!(link.step(300_000.0, at(21.0)), None);
        assert_eq!(
            link.step(300_000.0, at(24.0)),
            None,
            "three seconds above is not enough"
        );
        assert_eq!(link.step(300_000.0, at(25.0)), Some(false));
        assert!(!link.audio_only);
        // Taken away again: now it waits eight seconds, not four, to come back.
        assert_eq!(link.step(50_000.0, at(30.0)), None);
        assert_eq!(link.step(50_000.0, at(32.0)), Some(true));
        assert_eq!(link.step(300_000.0, at(33.0)), None);
        assert_eq!(link.step(300_000.0, at(38.0)), None);
        assert_eq!(link.step(300_000.0, at(41.0)), Some(false));
    }

    fn report(arrived: bool) -> PacketReport {
        PacketReport {
            ssrc: 1,
            id: 0,
            rtp_sequence_number: 0,
            is_twcc: true,
            twcc_sequence_number: 0,
            size: 1200,
            arrived,
            departure: Instant::now(),
            arrival: None,
            ecn: Default::default(),
        }
    }

    /// Half a second of `n` packets of which the first `lost` were lost, from `start`.
    fn window(e: &mut Estimate, start: Instant, n: usize, lost: usize) {
        let reports: Vec<PacketReport> = (0..n).map(|i| report(i >= lost)).collect();
        e.on_reports(start, &reports[..n / 2]);
        e.on_reports(start + WINDOW, &reports[n / 2..]);
    }

    #[test]
    fn a_full_link_brings_the_estimate_down_to_what_it_delivered_and_random_loss_holds_it() {
        let (mut e, published) = Estimate::new();
        let t0 = Instant::now();
        // 2.5 Mbit/s pushed into a 300 kbit/s link: 30 of 250 packets of 1200 bytes arrive in half a second.
        window(&mut e, t0, 250, 220);
        let delivered = 30.0 * 1200.0 * 8.0 / 0.5;
        assert!(
            (published.estimate() - delivered * 0.95).abs() < 1.0,
            "{}",
            published.estimate()
        );
        // 5% random loss: neither up nor down.
        let held = published.estimate();
        window(&mut e, t0 + 2 * WINDOW, 40, 2);
        assert_eq!(published.estimate(), held);
        // 20% lost right after the cut: the senders are still following it.
        window(&mut e, t0 + 3 * WINDOW, 40, 8);
        assert_eq!(published.estimate(), held);
        // 20% lost later: a 15% step down.
        window(&mut e, t0 + 8 * WINDOW, 40, 8);
        assert!((published.estimate() - held * 0.85).abs() < 1.0);
        let held = published.estimate();
        // A clean window: up by 6%.
        window(&mut e, t0 + 10 * WINDOW, 40, 0);
        assert!((published.estimate() - held * 1.06).abs() < 1.0);
    }

    #[test]
    fn on_audio_only_a_clean_link_grows_back_over_the_resume_line() {
        let (mut e, published) = Estimate::new();
        let t0 = Instant::now();
        // Saturated: 5 of 100 packets arrive; the estimate falls to what got through, and the SFU puts the
        // viewer on audio only.
        window(&mut e, t0, 100, 95);
        assert!(published.estimate() < VIDEO_FLOOR_BPS, "{}", published.estimate());
        published.set_audio_only(true);
        // Audio only: voice packets of 120 bytes, 26 per half-second window (reported in two batches), about
        // 50 kbit/s; none lost, no queue.
        let voice: Vec<PacketReport> = (0..13)
            .map(|_| PacketReport {
                size: 120,
                ..report(true)
            })
            .collect();
        let mut at = t0 + 8 * WINDOW;
        for _ in 0..60 {
            e.on_reports(at, &voice);
            at += WINDOW;
        }
        e.on_reports(at, &voice);
        let grown = published.estimate();
        assert!(
            grown >= VIDEO_RESUME_BPS,
            "30 s of clean voice leaves the estimate at {grown}: video would never come back"
        );
        assert!(grown <= 2.0 * 50_000.0 + RETURN_ROOM_BPS, "{grown}");

        // While it gets video, the same voice-only evidence allows only the small room: under the resume line.
        let (mut e, published) = Estimate::new();
        window(&mut e, t0, 100, 95);
        let mut at = t0 + 8 * WINDOW;
        for _ in 0..61 {
            e.on_reports(at, &voice);
            at += WINDOW;
        }
        assert!(
            published.estimate() < VIDEO_RESUME_BPS,
            "{}",
            published.estimate()
        );
    }

    #[test]
    fn a_queue_building_up_steps_the_estimate_down_before_anything_is_lost() {
        let (mut e, published) = Estimate::new();
        let t0 = Instant::now();
        // Packets every 10 ms whose one-way delay is `extra` ms over the base.
        let batch = |from: u32, extra: u64| -> Vec<PacketReport> {
            (from..from + 20)
                .map(|i| {
                    let departure = t0 + Duration::from_millis(10 * i as u64);
                    PacketReport {
                        arrival: Some(Duration::from_millis(5_000 + 10 * i as u64 + extra)),
                        departure,
                        ..report(true)
                    }
                })
                .collect()
        };
        e.on_reports(t0, &batch(0, 0));
        e.on_reports(t0 + WINDOW, &batch(20, 0));
        assert_eq!(
            published.estimate(),
            INITIAL_BPS,
            "no queue, but a link carrying 770 kbit/s is no evidence for more than 2.5 Mbit/s"
        );
        let grown = published.estimate();
        e.on_reports(t0 + 2 * WINDOW, &batch(40, 100));
        e.on_reports(t0 + 3 * WINDOW, &batch(60, 200));
        assert!(
            (published.estimate() - grown * 0.85).abs() < 1.0,
            "200 ms of queue: a step down"
        );
    }

    #[test]
    fn a_publisher_is_capped_by_its_slowest_viewer_with_room_for_audio() {
        assert_eq!(publisher_cap([]), None, "nobody watches: nothing to say");
        assert_eq!(publisher_cap([2_000_000.0, 400_000.0]), Some(340_000.0));
        assert_eq!(
            publisher_cap([120_000.0]),
            Some(PUBLISHER_MIN_BPS),
            "never asked below the minimum (such viewers go audio only)"
        );
        assert_eq!(publisher_cap([50_000_000.0]), Some(MAX_BPS));
    }
}
