//! Reading stored recordings: any byte range of a sealed object, decrypting only the chunks that hold it (HTTP
//! range requests), under the recording's data key and only when the object was sealed as what the caller
//! expects (a whole-file recording's id, or a segment's place). Everything fails closed.

use super::objects::ObjectStore;
use super::session::{RecordingError, key_context};
use crate::crypto::Keyring;

/// One sealed object of a recording and what opens it: the recording's wrapped key, and the name the object
/// was sealed as (the recording's id for a whole-file object, [`segment_object_id`] for a segment).
pub struct ObjectRef<'a> {
    pub recording_id: &'a str,
    pub sealed_as: &'a str,
    pub object_key: &'a str,
    pub kek_id: &'a str,
    pub wrapped_key: &'a str,
}

/// Opens a whole stored object (tests, verification).
pub async fn open_object(
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    o: &ObjectRef<'_>,
) -> Result<Vec<u8>, RecordingError> {
    Ok(read_range(objects, keyring, o, 0, None).await?.0)
}

/// Reads plaintext bytes `start..end` (end exclusive) of a stored object, decrypting only the chunks that
/// hold them (HTTP range requests). Returns the bytes, where they start, and the object's plaintext length. A
/// missing or wrong key, an object sealed as something else (another segment's place), or any tampering fails
/// closed.
pub async fn read_range(
    objects: &dyn ObjectStore,
    keyring: &Keyring,
    o: &ObjectRef<'_>,
    start: u64,
    end: Option<u64>,
) -> Result<(Vec<u8>, u64, u64), RecordingError> {
    use super::sealed::{Header, SealError, TAG_LEN, open_chunk};
    let key = keyring.unwrap_data_key(o.kek_id, o.wrapped_key, &key_context(o.recording_id))?;
    let object_key = o.object_key;
    let sealed_len = objects.len(object_key).await?;
    let head = objects.read(object_key, 0, sealed_len.min(18 + 255)).await?;
    let header = Header::parse(&head)?.ok_or(SealError::Truncated)?;
    if header.recording_id != o.sealed_as {
        return Err(SealError::Tampered.into());
    }
    let total = header.plain_len(sealed_len).ok_or(SealError::Truncated)?;
    let end = end.unwrap_or(total).min(total);
    if start >= end {
        return Ok((Vec::new(), start, total));
    }
    let chunk = header.chunk_size as u64;
    let full = chunk + TAG_LEN as u64;
    let last_index = header.final_index(total);
    let first = (start / chunk) as u32;
    let last = ((end - 1) / chunk) as u32;
    let offset = header.len() as u64 + first as u64 * full;
    let span = (header.len() as u64 + (last as u64 + 1) * full).min(sealed_len) - offset;
    let sealed = objects.read(object_key, offset, span).await?;
    let mut out = Vec::with_capacity((end - start) as usize);
    for (i, piece) in sealed.chunks(full as usize).enumerate() {
        let index = first + i as u32;
        let plain = open_chunk(&key, &header, index, piece, index == last_index)?;
        let chunk_start = index as u64 * chunk;
        let from = start.saturating_sub(chunk_start) as usize;
        let to = ((end - chunk_start) as usize).min(plain.len());
        out.extend_from_slice(&plain[from.min(to)..to]);
    }
    Ok((out, start, total))
}
