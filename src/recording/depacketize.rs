//! RTP to frames for the recorder. VP8 (RFC 7741): a frame is the payloads, minus their descriptors, from the
//! packet that starts partition 0 to the packet with the marker bit; a lost packet inside a frame discards
//! that frame and everything until the next keyframe (which the recorder then asks for). Opus: one packet is
//! one frame. Packets arrive in order on the SFU's path; reordering shows up as loss and costs a keyframe.

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
}

impl Vp8Depacketizer {
    /// Feeds one packet; returns a frame when one completes, and whether a keyframe should be requested.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> (Option<Frame>, bool) {
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

    /// Forget the stream position (a pause): the next frame recorded must be a keyframe.
    /// Whether it drops everything until a keyframe (after a loss, or a reset).
    pub fn waiting_for_keyframe(&self) -> bool {
        self.need_keyframe
    }

    pub fn reset(&mut self) {
        self.current = None;
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
        assert_eq!(d.push(1, 900, false, &packet(true, &[0x10, 1, 2])), (None, false));
        let (f, _) = d.push(2, 900, true, &packet(false, &[3, 4]));
        assert_eq!(
            f,
            Some(Frame {
                timestamp: 900,
                keyframe: true,
                data: vec![0x10, 1, 2, 3, 4]
            })
        );
        let (f, _) = d.push(3, 3900, true, &packet(true, &[0x11, 9]));
        assert!(!f.unwrap().keyframe);
    }

    #[test]
    fn a_loss_drops_frames_until_the_next_keyframe_and_asks_for_one() {
        let mut d = Vp8Depacketizer::default();
        d.push(1, 0, true, &packet(true, &[0x10, 1]));
        d.push(2, 3000, false, &packet(true, &[0x11, 1]));
        // Packet 3 is lost.
        let (f, ask) = d.push(4, 3000, true, &packet(false, &[2]));
        assert_eq!((f, ask), (None, true));
        let (f, ask) = d.push(5, 6000, true, &packet(true, &[0x11, 7]));
        assert_eq!(
            (f, ask),
            (None, false),
            "delta frames are useless until a keyframe"
        );
        let (f, _) = d.push(6, 9000, true, &packet(true, &[0x10, 8]));
        assert!(f.unwrap().keyframe);
    }

    #[test]
    fn after_a_reset_only_a_keyframe_is_accepted() {
        let mut d = Vp8Depacketizer::default();
        d.reset();
        assert_eq!(d.push(10, 0, true, &packet(true, &[0x11])).0, None);
        assert!(d.push(11, 1, true, &packet(true, &[0x10])).0.is_some());
    }
}
