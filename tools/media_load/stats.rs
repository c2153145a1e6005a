//! What the media load measures and how packets carry it: one monotonic clock shared by every peer in the
//! process, a 20-byte trailer on every synthetic RTP payload (stream, sequence number, send time), and per
//! stream counters filled by the receiving peer. Only packets *sent* inside the measurement window count, on
//! both sides, so packets in flight at either edge are neither lost nor double-counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

/// "EXRM": tells our packets from anything else a receiver might see (e.g. padding or probes).
const MAGIC: u32 = 0x4558_524D;
pub const TRAILER_LEN: usize = 20;

/// Microseconds since the first call, on a clock every peer of this process shares: sender and receiver
/// read the same clock, so `received - sent` is a one-way latency with no clock offset to estimate.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Writes the trailer into the last bytes of `payload` (which must be at least `TRAILER_LEN` long).
pub fn stamp(payload: &mut [u8], stream: u32, seq: u32, sent_us: u64) {
    let at = payload.len() - TRAILER_LEN;
    payload[at..at + 4].copy_from_slice(&MAGIC.to_be_bytes());
    payload[at + 4..at + 8].copy_from_slice(&stream.to_be_bytes());
    payload[at + 8..at + 12].copy_from_slice(&seq.to_be_bytes());
    payload[at + 12..].copy_from_slice(&sent_us.to_be_bytes());
}

/// (stream, seq, sent_us) from a payload stamped by [`stamp`].
pub fn read_stamp(payload: &[u8]) -> Option<(u32, u32, u64)> {
    let at = payload.len().checked_sub(TRAILER_LEN)?;
    let word = |i: usize| u32::from_be_bytes(payload[at + i..at + i + 4].try_into().unwrap());
    (word(0) == MAGIC).then(|| {
        let sent = u64::from_be_bytes(payload[at + 12..].try_into().unwrap());
        (word(4), word(8), sent)
    })
}

/// Which way a stream goes; the baseline pair is connected directly, without a server between.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Path {
    ToNurse,
    ToPatient,
    Baseline,
}

#[derive(Default)]
struct Received {
    /// One bit per sequence number seen inside the window: duplicates (retransmissions) count once.
    seen: Vec<u64>,
    packets: u64,
    duplicates: u64,
    bytes: u64,
    latencies_us: Vec<u32>,
}

pub struct Stream {
    path: Path,
    /// Packets the sender sent inside the window.
    sent: AtomicU64,
    received: Mutex<Received>,
}

/// Every stream of the run, indexed by the stream number carried in the trailer.
pub struct Streams {
    /// Read on every packet, written only while visits are set up.
    streams: RwLock<Vec<Arc<Stream>>>,
    window_start: AtomicU64,
    window_end: AtomicU64,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            streams: RwLock::new(Vec::new()),
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
        }
    }
}

/// Totals of one path over the window.
#[derive(Default, Debug)]
pub struct Summary {
    pub sent: u64,
    pub received: u64,
    pub duplicates: u64,
    pub bytes: u64,
    pub latencies_us: Vec<u32>,
}

impl Summary {
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

impl Streams {
    /// A new stream number for a sender.
    pub fn register(&self, path: Path) -> u32 {
        let mut streams = self.streams.write().unwrap();
        streams.push(Arc::new(Stream {
            path,
            sent: AtomicU64::new(0),
            received: Mutex::new(Received::default()),
        }));
        (streams.len() - 1) as u32
    }

    fn stream(&self, id: u32) -> Option<Arc<Stream>> {
        self.streams.read().unwrap().get(id as usize).cloned()
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.window_start.load(Ordering::Relaxed) && t < self.window_end.load(Ordering::Relaxed)
    }

    pub fn open_window(&self) {
        self.window_start.store(now_us(), Ordering::Relaxed);
    }

    pub fn close_window(&self) {
        self.window_end.store(now_us(), Ordering::Relaxed);
    }

    /// The sender's side: one packet stamped with `sent_us`.
    pub fn sent(&self, stream: &Stream, sent_us: u64) {
        if self.in_window(sent_us) {
            stream.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn handle(&self, id: u32) -> Arc<Stream> {
        self.stream(id).expect("registered stream")
    }

    /// The receiver's side: a packet of `len` bytes (RTP header and payload) arrived now.
    pub fn received(&self, payload: &[u8], len: usize) {
        let now = now_us();
        let Some((id, seq, sent_us)) = read_stamp(payload) else {
            return;
        };
        if !self.in_window(sent_us) {
            return;
        }
        let Some(stream) = self.stream(id) else {
            return;
        };
        let mut r = stream.received.lock().unwrap();
        let (word, bit) = (seq as usize / 64, seq % 64);
        if r.seen.len() <= word {
            r.seen.resize(word + 1, 0);
        }
        if r.seen[word] & (1 << bit) != 0 {
            r.duplicates += 1;
            return;
        }
        r.seen[word] |= 1 << bit;
        r.packets += 1;
        r.bytes += len as u64;
        r.latencies_us
            .push(now.saturating_sub(sent_us).min(u32::MAX as u64) as u32);
    }

    pub fn summary(&self, path: Path) -> Summary {
        let mut s = Summary::default();
        for stream in self.streams.read().unwrap().iter().filter(|st| st.path == path) {
            let r = stream.received.lock().unwrap();
            s.sent += stream.sent.load(Ordering::Relaxed);
            s.received += r.packets;
            s.duplicates += r.duplicates;
            s.bytes += r.bytes;
            s.latencies_us.extend_from_slice(&r.latencies_us);
        }
        s.latencies_us.sort_unstable();
        s
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn quantile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// Busy CPU seconds of the whole machine (every core), from /proc/stat: with the server's and the generator's
/// own, it shows how much else ran during the window (e.g. a build on a shared machine).
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_window_counts_once() {
        let streams = Streams::default();
        let id = streams.register(Path::ToNurse);
        streams.open_window();
        let t = now_us();
        let mut p = vec![0u8; 100];
        stamp(&mut p, id, 7, t);
        assert_eq!(read_stamp(&p), Some((id, 7, t)));
        streams.sent(&streams.handle(id), t);
        streams.received(&p, 112);
        streams.received(&p, 112);
        let s = streams.summary(Path::ToNurse);
        assert_eq!((s.sent, s.received, s.duplicates, s.lost()), (1, 1, 1, 0));
        assert!(read_stamp(&[0u8; 30]).is_none());
    }
}
