//! Sequence number and timestamp continuity on one outgoing track. The SFU rewrites every forwarded packet onto
//! the viewer's track SSRC; when the source behind it changes (the sender reloaded and rejoined with a new
//! stream), its numbers jump to arbitrary new values, and a receiver judges a large backwards sequence jump
//! on the same SSRC to be old packets and drops them. The rewriter shifts each new source so it continues
//! where the previous one stopped. Sans-IO: time is passed in.

use std::time::Instant;

struct Source {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

pub struct Rewriter {
    clock_rate: u32,
    current: Option<Source>,
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
}

/// RFC 3550 serial-number comparison: is `a` after `b`?
fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Rewriter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            current: None,
            last_seq: 0,
            last_ts: 0,
            last_at: None,
        }
    }

    /// The next packet continues one after the last sent, whatever its source's numbers say (the viewer was
    /// sent nothing for a while: its audio-only spell).
    pub fn restart(&mut self) {
        self.current = None;
    }

    /// The (sequence number, timestamp) to send for a packet of source `ssrc`.
    pub fn rewrite(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) -> (u16, u32) {
        if self.current.as_ref().is_none_or(|s| s.ssrc != ssrc) {
            let (seq_offset, ts_offset) = match self.last_at {
                // The first source keeps its own numbers.
                None => (0, 0),
                Some(at) => {
                    // Continue one packet later, with the wall-clock gap in media time.
                    let gap = now.saturating_duration_since(at).as_secs_f64();
                    let ticks = ((gap * self.clock_rate as f64) as u32).max(1);
                    (
                        self.last_seq.wrapping_add(1).wrapping_sub(seq),
                        self.last_ts.wrapping_add(ticks).wrapping_sub(ts),
                    )
                }
            };
            self.current = Some(Source {
                ssrc,
                seq_offset,
                ts_offset,
            });
        }
        let source = self.current.as_ref().expect("set above");
        let out = (
            seq.wrapping_add(source.seq_offset),
            ts.wrapping_add(source.ts_offset),
        );
        // Retransmissions and reordered packets keep their place; only newer packets move the mark.
        if self.last_at.is_none() || seq_after(out.0, self.last_seq) {
            self.last_seq = out.0;
            self.last_ts = out.1;
        }
        self.last_at = Some(now);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_source_is_untouched() {
        let mut r = Rewriter::new(90_000);
        let t = Instant::now();
        assert_eq!(r.rewrite(1, 100, 5000, t), (100, 5000));
        assert_eq!(r.rewrite(1, 101, 8000, t), (101, 8000));
        assert_eq!(
            r.rewrite(1, 99, 2000, t),
            (99, 2000),
            "a late packet keeps its numbers"
        );
    }

    #[test]
    fn a_new_source_continues_where_the_old_one_stopped() {
        let mut r = Rewriter::new(90_000);
        let t = Instant::now();
        r.rewrite(1, 65_534, 1_000_000, t);
        r.rewrite(1, 65_535, 1_003_000, t);
        // The new stream starts far "behind" (or anywhere): it continues at the next number, a second later
        // in media time.
        let later = t + Duration::from_secs(1);
        assert_eq!(r.rewrite(2, 40_000, 7, later), (0, 1_093_000));
        assert_eq!(r.rewrite(2, 40_001, 3007, later), (1, 1_096_000));
        assert!(seq_after(1, 65_535), "wraps like RFC 3550 numbers");
    }
}
