//! Recording encryption throughput (a benchmark, not a test): the sealed chunked format
//! (`recording::sealed`, AES-256-GCM in 64 KiB chunks with nonce and header binding) beside raw AES-256-GCM
//! over the same bytes, single core, and the same sealing with the object written to disk. Prints a Markdown
//! table; `scripts/bench-recording.sh` puts it in a report.

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
}
