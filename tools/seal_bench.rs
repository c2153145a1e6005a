//! Recording encryption throughput (a benchmark, not a test): the sealed chunked format
//! (`recording::sealed`, AES-256-GCM in 64 KiB chunks with nonce and header binding) beside raw AES-256-GCM
//! over the same bytes, single core, and the same sealing with the object written to disk; then the recorder's
//! whole path (depacketize, mux, seal) for one camera and microphone, in order and with packets reordered.
//! Prints Markdown tables; `scripts/bench-recording.sh` puts them in a report.

use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use examroom::crypto::DataKey;
use examroom::recording::sealed::{DEFAULT_CHUNK, Sealer};
use examroom::recording::workdir::LocalStore;

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let data: Vec<u8> = (0..mb * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mbs = |secs: f64| data.len() as f64 / 1e6 / secs;

    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
    let t = Instant::now();
    for (n, chunk) in data.chunks(DEFAULT_CHUNK).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(n as u64).to_be_bytes());
        std::hint::black_box(cipher.encrypt(&Nonce::from(nonce), chunk).unwrap());
    }
    let raw = mbs(t.elapsed().as_secs_f64());

    let key = DataKey::ephemeral();
    let t = Instant::now();
    let (mut sealer, mut out) = Sealer::new(&key, "rbench", DEFAULT_CHUNK);
    // Fed in RTP-sized pieces, as the recorder does.
    for piece in data.chunks(1200) {
        out.extend(sealer.push(piece));
    }
    out.extend(sealer.finish());
    let sealed = mbs(t.elapsed().as_secs_f64());

    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let t = Instant::now();
    store.put_outbox("rbench.erec", &out).unwrap();
    let stored = mbs(t.elapsed().as_secs_f64() + data.len() as f64 / 1e6 / sealed);

    println!("| payload | raw AES-256-GCM | sealed format | sealed + stored (fsync) | sealed / raw |");
    println!("|---|---|---|---|---|");
    println!(
        "| {mb} MiB | {raw:.0} MB/s | {sealed:.0} MB/s | {stored:.0} MB/s | {:.2} |",
        sealed / raw
    );
    let seconds = std::env::var("VISIT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    println!();
    println!(
        "| recorder path, {seconds} s of one camera and microphone | media MB/s | media in the file | keyframe requests |"
    );
    println!("|---|---|---|---|");
    for (label, reorder) in [("in order", false), ("one video packet in 40 reordered", true)] {
        let (mbs, kept, asks) = recorder_path(seconds, reorder);
        println!("| {label} | {mbs:.0} | {:.1} % | {asks} |", kept * 100.0);
    }
}

/// The recorder's whole path for one camera and microphone, as `Recorder` gets it from the SFU: VP8 at 30 fps in
/// three RTP packets a frame (a keyframe only when the recorder asks, answered at the next frame), Opus every
/// 20 ms, for `seconds` of visit time, fed as fast as the core takes it; with `reorder`, every 40th video
/// packet comes after the one behind it (a reordering network). Returns the media MB/s, the share of the
/// media sent that went into the file, and the keyframe requests.
fn recorder_path(seconds: i64, reorder: bool) -> (f64, f64, usize) {
    use examroom::recording::recorder::{Recorder, Source};
    let spool_key = DataKey::ephemeral();
    let (mut r, _) = Recorder::start(&spool_key, "rbench-path", 0);
    let descriptor = |start: bool, picture: u16| {
        vec![
            if start { 0x90 } else { 0x80 },
            0x80,
            0x80 | (picture >> 8) as u8 & 0x7F,
            picture as u8,
        ]
    };
    let keyframe_body = |n: usize| {
        let mut b = vec![0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01];
        b.resize(n, 0x5A);
        b
    };
    let (mut seq, mut sent, mut asks, mut want_key) = (0u16, 0u64, 0usize, true);
    let mut pending: Option<(u16, u32, bool, Vec<u8>)> = None;
    let t = Instant::now();
    let frames = seconds * 30;
    for f in 0..frames {
        let now = f * 1000 / 30;
        let ts = (f * 3000) as u32;
        let key = std::mem::take(&mut want_key);
        for p in 0..3u16 {
            let mut payload = descriptor(p == 0, f as u16);
            if p == 0 {
                payload.extend(if key {
                    keyframe_body(1100)
                } else {
                    vec![0x11; 1100]
                });
            } else {
                payload.extend(vec![0x22; 1100]);
            }
            sent += payload.len() as u64 - 4;
            let packet = (seq, ts, p == 2, payload);
            seq = seq.wrapping_add(1);
            let swap = reorder && seq % 40 == 0;
            let ready: Vec<(u16, u32, bool, Vec<u8>)> = match (pending.take(), swap) {
                (None, true) => {
                    pending = Some(packet);
                    Vec::new()
                }
                (Some(held), _) => vec![packet, held],
                (None, false) => vec![packet],
            };
            for (s, ts, marker, payload) in ready {
                let out = r.video(Source::Patient, s, ts, marker, &payload, now);
                std::hint::black_box(&out.sealed);
                if out.request_keyframe {
                    asks += 1;
                    want_key = true;
                }
            }
        }
        // Opus every 20 ms: five packets each three frames (100 ms).
        if f % 3 == 0 {
            for a in 0..5 {
                let opus = [0x78u8; 80];
                sent += opus.len() as u64;
                let ts = ((f / 3 * 5 + a) * 960) as u32;
                std::hint::black_box(r.audio(Source::Patient, ts, &opus, now + a * 20).sealed);
            }
        }
    }
    // A packet still held back by the reordering comes last.
    if let Some((s, ts, marker, payload)) = pending {
        std::hint::black_box(
            r.video(Source::Patient, s, ts, marker, &payload, seconds * 1000)
                .sealed,
        );
    }
    let secs = t.elapsed().as_secs_f64();
    let (_, _, recorded) = r.finish(seconds * 1000);
    (sent as f64 / 1e6 / secs, recorded as f64 / sent as f64, asks)
}
