//! The at-rest format of a recording: a versioned header, then the media in fixed-size chunks, each sealed with
//! AES-256-GCM under the recording's own data key (the STREAM construction). A chunk's nonce is a per-recording
//! random prefix, the chunk's index and a final-chunk flag, and every chunk authenticates the header, so a
//! flipped byte, a truncated tail (no final chunk), a reordered, duplicated or foreign chunk all fail to
//! decrypt. Plaintext exists only in memory, one chunk at a time. Any chunk can be opened alone, which is how
//! HTTP range requests are served without decrypting the whole file.
//!
//! ```text
//! header:  "ERREC" | version u8 = 1 | chunk_size u32 BE | nonce_prefix [7] | id_len u8 | recording id
//! chunk i: AES-256-GCM(key, nonce = prefix | i u32 BE | final u8, aad = header) of chunk_size bytes
//!          (the last chunk is shorter, possibly empty, and the only one with final = 1)
//! ```

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload};
use rand::RngCore;

use crate::crypto::DataKey;

const MAGIC: &[u8; 5] = b"ERREC";
const VERSION: u8 = 1;
const PREFIX_LEN: usize = 7;
pub const TAG_LEN: usize = 16;
pub const DEFAULT_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("not an examroom recording, or an unknown format version")]
    Format,
    #[error("a chunk failed authentication (tampered, reordered, duplicated or from another recording)")]
    Tampered,
    #[error("the recording ends without its final chunk (truncated)")]
    Truncated,
    #[error("data after the final chunk")]
    TrailingData,
}

/// The parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub chunk_size: usize,
    prefix: [u8; PREFIX_LEN],
    pub recording_id: String,
    bytes: Vec<u8>,
}

impl Header {
    fn new(recording_id: &str, chunk_size: usize) -> Header {
        assert!(recording_id.len() < 256 && chunk_size > 0 && chunk_size <= u32::MAX as usize);
        let mut prefix = [0u8; PREFIX_LEN];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        let mut bytes = Vec::with_capacity(18 + recording_id.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&(chunk_size as u32).to_be_bytes());
        bytes.extend_from_slice(&prefix);
        bytes.push(recording_id.len() as u8);
        bytes.extend_from_slice(recording_id.as_bytes());
        Header {
            chunk_size,
            prefix,
            recording_id: recording_id.to_string(),
            bytes,
        }
    }

    /// Parses a header from the start of `data`; `None` when more bytes are needed.
    pub fn parse(data: &[u8]) -> Result<Option<Header>, SealError> {
        let fixed = MAGIC.len() + 1 + 4 + PREFIX_LEN + 1;
        if data.len() < fixed {
            return if MAGIC.starts_with(&data[..data.len().min(MAGIC.len())]) {
                Ok(None)
            } else {
                Err(SealError::Format)
            };
        }
        if &data[..5] != MAGIC || data[5] != VERSION {
            return Err(SealError::Format);
        }
        let chunk_size = u32::from_be_bytes(data[6..10].try_into().expect("4 bytes")) as usize;
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&data[10..17]);
        let id_len = data[17] as usize;
        if data.len() < fixed + id_len {
            return Ok(None);
        }
        let recording_id = std::str::from_utf8(&data[fixed..fixed + id_len])
            .map_err(|_| SealError::Format)?
            .to_string();
        if chunk_size == 0 {
            return Err(SealError::Format);
        }
        Ok(Some(Header {
            chunk_size,
            prefix,
            recording_id,
            bytes: data[..fixed + id_len].to_vec(),
        }))
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn nonce(&self, index: u32, last: bool) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..PREFIX_LEN].copy_from_slice(&self.prefix);
        n[PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
        n[11] = last as u8;
        n
    }

    /// Sealed size of a recording with `plain` bytes of media.
    pub fn sealed_len(&self, plain: u64) -> u64 {
        // The final chunk holds the remainder, or a whole chunk when the media fills it exactly.
        let size = self.chunk_size as u64;
        let chunks = if plain > 0 && plain.is_multiple_of(size) {
            plain / size
        } else {
            plain / size + 1
        };
        self.bytes.len() as u64 + plain + chunks * TAG_LEN as u64
    }

    /// The index of the final chunk of an object with `plain` bytes of media.
    pub fn final_index(&self, plain: u64) -> u32 {
        let size = self.chunk_size as u64;
        if plain > 0 && plain.is_multiple_of(size) {
            (plain / size - 1) as u32
        } else {
            (plain / size) as u32
        }
    }

    /// Plaintext length of a sealed object of `sealed` bytes, if that length is possible.
    pub fn plain_len(&self, sealed: u64) -> Option<u64> {
        let body = sealed.checked_sub(self.bytes.len() as u64)?;
        let full = (self.chunk_size + TAG_LEN) as u64;
        let (n, rest) = (body / full, body % full);
        // The final chunk is always present: a whole one (the media filled it exactly), or a remainder holding at
        // least its tag.
        if rest == 0 && n > 0 {
            return Some(n * self.chunk_size as u64);
        }
        if rest < TAG_LEN as u64 {
            return None;
        }
        Some(n * self.chunk_size as u64 + rest - TAG_LEN as u64)
    }
}

/// Seals a recording as its media arrives; emits ciphertext to append to the object (or spool).
pub struct Sealer {
    cipher: Aes256Gcm,
    header: Header,
    index: u32,
    pending: Vec<u8>,
}

impl Sealer {
    /// A sealer and the header bytes that start the object.
    pub fn new(key: &DataKey, recording_id: &str, chunk_size: usize) -> (Sealer, Vec<u8>) {
        let header = Header::new(recording_id, chunk_size);
        let bytes = header.bytes.clone();
        (
            Sealer {
                cipher: key.cipher(),
                header,
                index: 0,
                pending: Vec::with_capacity(chunk_size),
            },
            bytes,
        )
    }

    fn seal(&mut self, plain: &[u8], last: bool) -> Vec<u8> {
        let nonce = self.header.nonce(self.index, last);
        self.index += 1;
        self.cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plain,
                    aad: &self.header.bytes,
                },
            )
            .expect("AES-GCM encryption of a bounded chunk")
    }

    /// Adds media; returns the sealed chunks that are now complete.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let size = self.header.chunk_size;
        // A chunk is sealed only once more data follows it, so the final flag always lands on the last one.
        while !data.is_empty() {
            if self.pending.len() == size {
                let chunk = std::mem::take(&mut self.pending);
                out.extend(self.seal(&chunk, false));
                self.pending = chunk;
                self.pending.clear();
            }
            let take = (size - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        out
    }

    /// Seals the final chunk (possibly empty).
    pub fn finish(mut self) -> Vec<u8> {
        let chunk = std::mem::take(&mut self.pending);
        self.seal(&chunk, true)
    }
}

/// Opens one sealed chunk by index; `last` is whether it is the object's final chunk.
pub fn open_chunk(
    key: &DataKey,
    header: &Header,
    index: u32,
    sealed: &[u8],
    last: bool,
) -> Result<Vec<u8>, SealError> {
    key.cipher()
        .decrypt(
            (&header.nonce(index, last)).into(),
            Payload {
                msg: sealed,
                aad: &header.bytes,
            },
        )
        .map_err(|_| SealError::Tampered)
}

/// Opens a whole sealed object (tests, downloads of small recordings, verification).
pub fn open_all(key: &DataKey, data: &[u8]) -> Result<Vec<u8>, SealError> {
    let header = Header::parse(data)?.ok_or(SealError::Truncated)?;
    let body = &data[header.len()..];
    let full = header.chunk_size + TAG_LEN;
    let mut out = Vec::with_capacity(body.len());
    let mut index = 0u32;
    let mut rest = body;
    loop {
        if rest.len() < TAG_LEN {
            return Err(SealError::Truncated);
        }
        let take = rest.len().min(full);
        let last = take == rest.len();
        match open_chunk(key, &header, index, &rest[..take], last) {
            Ok(plain) => out.extend(plain),
            // A full-size chunk that is the last one present but not sealed as final: the tail is missing.
            Err(_)
                if last && take == full && open_chunk(key, &header, index, &rest[..take], false).is_ok() =>
            {
                return Err(SealError::Truncated);
            }
            Err(e) => return Err(e),
        }
        if last {
            return Ok(out);
        }
        rest = &rest[take..];
        index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(n: usize) -> Vec<u8> {
        let mut v = b"\x1a\x45\xdf\xa3 webm EBML header, then VP8 and Opus".to_vec();
        v.extend((0..n).map(|i| (i * 31 % 251) as u8));
        v
    }

    fn sealed(key: &DataKey, plain: &[u8], chunk: usize, pieces: usize) -> Vec<u8> {
        let (mut s, mut out) = Sealer::new(key, "rec-1", chunk);
        for part in plain.chunks(plain.len().div_ceil(pieces).max(1)) {
            out.extend(s.push(part));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn round_trips_at_any_size_and_push_pattern() {
        let key = DataKey::random_for_tests();
        for (n, chunk, pieces) in [
            (0, 16, 1),
            (5, 16, 1),
            (16, 16, 1),
            (64, 16, 3),
            (1000, 64, 7),
            (100_000, 4096, 13),
        ] {
            let plain = media(n);
            let data = sealed(&key, &plain, chunk, pieces);
            assert_eq!(
                open_all(&key, &data).unwrap(),
                plain,
                "{n} bytes in chunks of {chunk}"
            );
            let header = Header::parse(&data).unwrap().unwrap();
            assert_eq!(header.sealed_len(plain.len() as u64), data.len() as u64);
            assert_eq!(header.plain_len(data.len() as u64), Some(plain.len() as u64));
        }
        // Media that fills its last chunk exactly: the final chunk is a whole one.
        for (n, chunk) in [(16, 16), (64, 16)] {
            let plain: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let data = sealed(&key, &plain, chunk, 1);
            assert_eq!(open_all(&key, &data).unwrap(), plain);
            let header = Header::parse(&data).unwrap().unwrap();
            assert_eq!(
                header.sealed_len(n as u64),
                data.len() as u64,
                "{n} in chunks of {chunk}"
            );
            assert_eq!(header.plain_len(data.len() as u64), Some(n as u64));
            assert_eq!(header.final_index(n as u64), (n / chunk - 1) as u32);
        }
    }

    #[test]
    fn no_plaintext_media_in_the_object() {
        let key = DataKey::random_for_tests();
        let data = sealed(&key, &media(10_000), 1024, 4);
        assert!(
            !data.windows(4).any(|w| w == b"\x1a\x45\xdf\xa3"),
            "no EBML magic"
        );
        assert!(
            !data.windows(4).any(|w| w == b"webm"),
            "no codec or container names"
        );
    }

    #[test]
    fn tampering_of_every_kind_fails() {
        let key = DataKey::random_for_tests();
        let data = sealed(&key, &media(5000), 1024, 3);
        let h = Header::parse(&data).unwrap().unwrap().len();
        let full = 1024 + TAG_LEN;
        let chunk = |i: usize| data[h + i * full..h + (i + 1) * full].to_vec();

        let mut flipped = data.clone();
        flipped[h + 100] ^= 1;
        assert_eq!(open_all(&key, &flipped), Err(SealError::Tampered));

        let mut header_edit = data.clone();
        header_edit[h - 1] ^= 1;
        assert_eq!(open_all(&key, &header_edit), Err(SealError::Tampered));

        // Truncated at a chunk boundary: every chunk left is valid, but none is final.
        assert_eq!(open_all(&key, &data[..h + 2 * full]), Err(SealError::Truncated));
        // Truncated mid-chunk.
        assert_eq!(open_all(&key, &data[..data.len() - 10]), Err(SealError::Tampered));

        let mut swapped = data[..h].to_vec();
        swapped.extend(chunk(1));
        swapped.extend(chunk(0));
        swapped.extend(&data[h + 2 * full..]);
        assert_eq!(open_all(&key, &swapped), Err(SealError::Tampered));

        let mut duplicated = data[..h + 2 * full].to_vec();
        duplicated.extend(chunk(1));
        duplicated.extend(&data[h + 2 * full..]);
        assert_eq!(open_all(&key, &duplicated), Err(SealError::Tampered));

        // A chunk from another recording under the same key does not fit either.
        let other = sealed(&key, &media(5000), 1024, 3);
        let mut foreign = data.clone();
        foreign[h..h + full].copy_from_slice(&other[h..h + full]);
        assert_eq!(open_all(&key, &foreign), Err(SealError::Tampered));

        assert_eq!(
            open_all(&DataKey::random_for_tests(), &data),
            Err(SealError::Tampered),
            "wrong key"
        );
        assert_eq!(
            open_all(&key, b"\x1a\x45\xdf\xa3 plain webm"),
            Err(SealError::Format)
        );
    }

    #[test]
    fn chunks_open_alone_for_range_requests() {
        let key = DataKey::random_for_tests();
        let plain = media(3000);
        let data = sealed(&key, &plain, 1024, 1);
        let header = Header::parse(&data).unwrap().unwrap();
        let full = 1024 + TAG_LEN;
        let second = &data[header.len() + full..header.len() + 2 * full];
        assert_eq!(
            open_chunk(&key, &header, 1, second, false).unwrap(),
            plain[1024..2048]
        );
        let last = &data[header.len() + 2 * full..];
        assert_eq!(open_chunk(&key, &header, 2, last, true).unwrap(), plain[2048..]);
    }
}
