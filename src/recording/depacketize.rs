//! RTP to frames for the recorder. VP8 (RFC 7741): a frame is the payloads, minus their descriptors, from the
//! packet that starts partition 0 to the packet with the marker bit; a lost packet inside a frame discards
//! that frame and everything until the next keyframe (which the recorder then asks for). Opus: one packet is
//! one frame. Packets that come out of order (a reordering network, a retransmission answering a NACK) are put
//! back in order within a window (up to [`REORDER_WINDOW`] packets, and no more than three frames' worth); only a
//! packet still missing after that counts as lost.
//!
//! Why not the engine's `SampleBuilder` (rtc-media, which also tolerates reordering and loss): the recorder's
//! tap gets each packet as (sequence, timestamp, marker, payload) borrowed from the forwarding path, while the
//! builder takes owned `rtp::Packet`s (a copy per packet to build one); it hands out samples without saying
//! whether they are keyframes, and says a loss happened only after the fact (`prev_dropped_packets`), while the
//! recorder must drop delta frames after a loss and ask the sender for a keyframe at once, and must know each
//! keyframe to cluster and index the file. Its reordering is the part worth having; it is what this module
//! adds, in ~40 lines with unit tests, without the copies.

/// How many packets may be held back waiting for an earlier one (about a third of a second of 1 Mbit/s video):
/// enough for reordering and a quick retransmission, small enough that a real loss is asked for soon.
pub const REORDER_WINDOW: usize = 32;
/// A packet this far behind the last one is a sender numbering afresh, not a late packet.
const RESTART_BEHIND: u16 = 1_000;

/// A complete frame: RTP timestamp, keyframe flag, bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub timestamp: u32,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// Length of the VP8 payload descriptor and whether the packet starts partition 0 of a frame.
fn vp8_descriptor(p: &[u8]) -> Option<(usize, bool)> {
    let first = *p.first()?;
    let mut len = 1;
    if first & 0x80 != 0 {
        let ext = *p.get(1)?;
        len += 1;
        if ext & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            len += if *p.get(len)? & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            len += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            len += 1; // TID / KEYIDX
        }
    }
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    (p.len() > len).then_some((len, start))
}

#[derive(Default)]
pub struct Vp8Depacketizer {
    current: Option<Frame>,
    last_seq: Option<u16>,
    /// After a loss: drop everything until a keyframe starts.
    need_keyframe: bool,
    /// Packets after a missing one: (sequence, timestamp, marker, payload), at most [`REORDER_WINDOW`].
    held: Vec<(u16, u32, bool, Vec<u8>)>,
}

impl Vp8Depacketizer {
    /// Feeds one packet; returns the frames it completes (several when it fills a gap that held others back),
    /// and whether a keyframe should be requested.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> (Vec<Frame>, bool) {
        let mut out = (Vec::new(), false);
        let Some(last) = self.last_seq else {
            self.take(&mut out, (seq, timestamp, marker, payload));
            return out;
        };
        let ahead = seq.wrapping_sub(last.wrapping_add(1));
        if ahead >= u16::MAX / 2 {
            // Far behind the expected one: the sender started its numbering again (a new encoder, a restart);
            // start over from a keyframe. A little behind: a duplicate, or one already given up on as lost.
            if last.wrapping_sub(seq) > RESTART_BEHIND {
                self.reset();
                self.take(&mut out, (seq, timestamp, marker, payload));
                out.1 = true;
            }
            return out;
        }
        if self.held.iter().any(|h| h.0 == seq) {
            return out;
        }
        if ahead == 0 {
            self.take(&mut out, (seq, timestamp, marker, payload));
        } else {
            self.held.push((seq, timestamp, marker, payload.to_vec()));
        }
        // Release the held packet next in order; when the wait is over, the nearest held one (the packets
        // missing before it are lost).
        while let Some(expected) = self.last_seq.map(|l| l.wrapping_add(1)) {
            let nearest = (0..self.held.len()).min_by_key(|&i| self.held[i].0.wrapping_sub(expected));
            let Some(i) = nearest else { break };
            if self.held[i].0 != expected && !self.waited_enough() {
                break;
            }
            let (seq, ts, marker, payload) = self.held.swap_remove(i);
            self.take(&mut out, (seq, ts, marker, &payload));
        }
        out
    }

    /// Whether a missing packet is lost rather than late: the window is full, or packets of three frames came
    /// after it (reordering moves packets by a few, not by whole frames; at a low frame rate the window alone
    /// would wait seconds).
    fn waited_enough(&self) -> bool {
        let mut frames: Vec<u32> = self.held.iter().map(|h| h.1).collect();
        frames.sort_unstable();
        frames.dedup();
        self.held.len() >= REORDER_WINDOW || frames.len() >= 3
    }

    fn take(&mut self, out: &mut (Vec<Frame>, bool), (seq, ts, marker, payload): (u16, u32, bool, &[u8])) {
        let (frame, ask) = self.in_order(seq, ts, marker, payload);
        out.0.extend(frame);
        out.1 |= ask;
    }

    /// One packet in sequence order (a gap before it is a loss).
    fn in_order(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> (Option<Frame>, bool) {
        let lost = self.last_seq.is_some_and(|last| seq != last.wrapping_add(1));
        self.last_seq = Some(seq);
        let mut ask = false;
        if lost && (self.current.take().is_some() || !self.need_keyframe) {
            self.need_keyframe = true;
            ask = true;
        }
        let Some((skip, start)) = vp8_descriptor(payload) else {
            return (None, ask);
        };
        let body = &payload[skip..];
        if start {
            // VP8 payload header: bit 0 of the first byte is 0 for a key frame.
            let keyframe = body[0] & 0x01 == 0;
            if self.need_keyframe && !keyframe {
                self.current = None;
                return (None, ask);
            }
            self.need_keyframe = false;
            self.current = Some(Frame {
                timestamp,
                keyframe,
                data: body.to_vec(),
            });
        } else if let Some(f) = self.current.as_mut().filter(|f| f.timestamp == timestamp) {
            f.data.extend_from_slice(body);
        } else {
            self.current = None;
            return (None, ask);
        }
        if marker {
            return (self.current.take(), ask);
        }
        (None, ask)
    }

    /// Whether it drops everything until a keyframe (after a loss, or a reset).
    pub fn waiting_for_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// Forget the stream position (a pause): the next frame recorded must be a keyframe.
    pub fn reset(&mut self) {
        self.current = None;
        self.held.clear();
        self.last_seq = None;
        self.need_keyframe = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor with an extended 15-bit PictureID, then the body.
    fn packet(start: bool, body: &[u8]) -> Vec<u8> {
        let mut p = vec![if start { 0x90 } else { 0x80 }, 0x80, 0x81, 0x23];
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn frames_are_reassembled_and_keyframes_recognised() {
        let mut d = Vp8Depacketizer {
            need_keyframe: true,
            ..Default::default()
        };
        assert_eq!(
            d.push(1, 900, false, &packet(true, &[0x10, 1, 2])),
            (vec![], false)
        );
        let (f, _) = d.push(2, 900, true, &packet(false, &[3, 4]));
        assert_eq!(
            f,
            vec![Frame {
                timestamp: 900,
                keyframe: true,
                data: vec![0x10, 1, 2, 3, 4]
            }]
        );
        let (f, _) = d.push(3, 3900, true, &packet(true, &[0x11, 9]));
        assert!(!f[0].keyframe);
    }

    #[test]
    fn a_loss_drops_frames_until_the_next_keyframe_and_asks_for_one() {
        let mut d = Vp8Depacketizer::default();
        d.push(1, 0, true, &packet(true, &[0x10, 1]));
        d.push(2, 3000, false, &packet(true, &[0x11, 1]));
        // Packet 3 is lost: packets after it are held back until three frames have come, then it is given up on.
        let mut seq = 4u16;
        let mut asked = Vec::new();
        let mut frames = Vec::new();
        for n in 0..6u32 {
            let (f, ask) = d.push(seq, 6000 + n * 3000, true, &packet(true, &[0x11, 7]));
            frames.extend(f);
            asked.push(ask);
            seq += 1;
        }
        assert_eq!(frames, [], "delta frames are useless until a keyframe");
        assert_eq!(
            asked,
            [false, false, true, false, false, false],
            "asked once, at the third frame"
        );
        let (f, _) = d.push(seq, 900_000, true, &packet(true, &[0x10, 8]));
        assert!(f[0].keyframe);
        // The lost packet coming after all is too late, and ignored.
        assert_eq!(d.push(3, 3000, true, &packet(false, &[2])), (vec![], false));
    }

    #[test]
    fn packets_out_of_order_are_put_back_in_order_without_a_loss() {
        let mut d = Vp8Depacketizer::default();
        d.push(1, 0, true, &packet(true, &[0x10, 1]));
        // Frame 3000 in three packets, sent 2 3 4 but received 3 4 2 (and 4 again).
        assert_eq!(d.push(3, 3000, false, &packet(false, &[2])), (vec![], false));
        assert_eq!(d.push(4, 3000, true, &packet(false, &[3])), (vec![], false));
        assert_eq!(d.push(4, 3000, true, &packet(false, &[3])), (vec![], false));
        let (f, ask) = d.push(2, 3000, false, &packet(true, &[0x11, 1]));
        assert!(!ask, "no keyframe needed");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, [0x11, 1, 2, 3]);
        // And on in order.
        let (f, _) = d.push(5, 6000, true, &packet(true, &[0x11, 9]));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn sequence_numbers_wrap_and_a_sender_numbering_afresh_starts_over_from_a_keyframe() {
        let mut d = Vp8Depacketizer::default();
        d.push(65_534, 0, true, &packet(true, &[0x10, 1]));
        // Across the wrap, out of order: 0 before 65535.
        assert_eq!(d.push(0, 6000, true, &packet(true, &[0x11, 3])), (vec![], false));
        let (f, ask) = d.push(65_535, 3000, true, &packet(true, &[0x11, 2]));
        assert!(!ask);
        assert_eq!(f.iter().map(|f| f.timestamp).collect::<Vec<_>>(), [3000, 6000]);
        // A new encoder numbering from far behind: asked for a keyframe, and recorded from it.
        let (f, ask) = d.push(40_000, 9000, true, &packet(true, &[0x11, 4]));
        assert_eq!((f.len(), ask), (0, true));
        let (f, _) = d.push(40_001, 12_000, true, &packet(true, &[0x10, 5]));
        assert!(f[0].keyframe);
    }

    #[test]
    fn after_a_reset_only_a_keyframe_is_accepted() {
        let mut d = Vp8Depacketizer::default();
        d.reset();
        assert_eq!(d.push(10, 0, true, &packet(true, &[0x11])).0, []);
        assert_eq!(d.push(11, 1, true, &packet(true, &[0x10])).0.len(), 1);
    }
}
