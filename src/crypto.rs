//! Envelope encryption of data at rest. Each protected object (a conversation's messages; later, a recording)
//! gets its own random data key; the data key is stored only wrapped (AES-256-GCM) by a key-encryption key
//! (KEK) from the keyring, under the KEK's id, so KEKs can rotate while old objects stay readable. Associated
//! data binds every ciphertext to where it belongs, so a ciphertext moved to another row does not decrypt.

use std::collections::HashMap;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
/// Version byte leading every sealed value, so the format can change without ambiguity.
const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key-encryption key `{0}` is not in the keyring")]
    UnknownKek(String),
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("decryption failed (wrong key or tampered data)")]
    Decrypt,
    #[error("keyring: {0}")]
    Keyring(String),
}

/// Key-encryption keys by id; the first is used to wrap new data keys.
pub struct Keyring {
    current: String,
    keks: HashMap<String, Zeroizing<[u8; 32]>>,
}

/// A data key in memory; it zeroes itself when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl Keyring {
    /// Loads KEK files (32 bytes as hex, one per file); the first is current. In dev mode the data
    /// directory's `keys/kek.hex` is generated on first start.
    pub fn load(files: &[std::path::PathBuf]) -> Result<Self, CryptoError> {
        let mut keks = HashMap::new();
        let mut current = None;
        for path in files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CryptoError::Keyring(format!("{}: {e}", path.display())))?;
            let bytes = hex::decode(text.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    CryptoError::Keyring(format!("{} must hold 32 bytes as hex", path.display()))
                })?;
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&bytes);
            let id = hex::encode(&Sha256::digest(key.as_slice())[..6]);
            current.get_or_insert_with(|| id.clone());
            keks.insert(id, key);
        }
        let current =
            current.ok_or_else(|| CryptoError::Keyring("no key-encryption key configured".into()))?;
        Ok(Self { current, keks })
    }

    /// Creates a KEK file with a fresh random key unless it exists (dev mode and first start).
    pub fn create_key_file(path: &Path) -> Result<(), CryptoError> {
        if path.exists() {
            return Ok(());
        }
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CryptoError::Keyring(e.to_string()))?;
        }
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| CryptoError::Keyring(format!("{}: {e}", path.display())))?;
        f.write_all(hex::encode(key.as_slice()).as_bytes())
            .map_err(|e| CryptoError::Keyring(e.to_string()))
    }

    /// A new data key and its wrapped form `(kek_id, wrapped)` for storage.
    pub fn new_data_key(&self, context: &str) -> Result<(DataKey, String, String), CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        let kek = self
            .keks
            .get(&self.current)
            .ok_or_else(|| CryptoError::UnknownKek(self.current.clone()))?;
        let wrapped = seal(kek, key.as_slice(), context.as_bytes())?;
        Ok((DataKey(key), self.current.clone(), wrapped))
    }

    /// The id of the KEK that wraps new data keys.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Every KEK id in the keyring, the current one first.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .keks
            .keys()
            .filter(|k| **k != self.current)
            .cloned()
            .collect();
        ids.sort();
        ids.insert(0, self.current.clone());
        ids
    }

    /// The same data key wrapped again by the current KEK (rotation): `(kek_id, wrapped)`. The data key
    /// itself never changes, so nothing sealed under it is touched.
    pub fn rewrap(
        &self,
        kek_id: &str,
        wrapped: &str,
        context: &str,
    ) -> Result<(String, String), CryptoError> {
        let key = self.unwrap_data_key(kek_id, wrapped, context)?;
        let kek = self
            .keks
            .get(&self.current)
            .ok_or_else(|| CryptoError::UnknownKek(self.current.clone()))?;
        Ok((
            self.current.clone(),
            seal(kek, key.0.as_slice(), context.as_bytes())?,
        ))
    }

    pub fn unwrap_data_key(
        &self,
        kek_id: &str,
        wrapped: &str,
        context: &str,
    ) -> Result<DataKey, CryptoError> {
        let kek = self
            .keks
            .get(kek_id)
            .ok_or_else(|| CryptoError::UnknownKek(kek_id.to_string()))?;
        let plain = Zeroizing::new(open(kek, wrapped, context.as_bytes())?);
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(CryptoError::Malformed);
        }
        key.copy_from_slice(&plain);
        Ok(DataKey(key))
    }
}

impl DataKey {
    /// The AES-256-GCM cipher under this key, for formats that seal many pieces (recordings).
    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_slice()).expect("32-byte key")
    }

    /// A key derived from a high-entropy `secret` the broker does not keep (a session's bearer token), for
    /// `purpose`: what it seals can be opened only by whoever presents the secret again.
    pub fn derive(secret: &[u8], purpose: &str) -> DataKey {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&mac.finalize().into_bytes());
        DataKey(key)
    }

    /// A fresh random key that is never stored (its ciphertexts are throwaway).
    pub fn ephemeral() -> DataKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        DataKey(key)
    }

    #[cfg(test)]
    pub(crate) fn random_for_tests() -> DataKey {
        Self::ephemeral()
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        seal(&self.0, plaintext, aad)
    }
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.0, sealed, aad)
    }
}

/// `base64(version || nonce || ciphertext+tag)`; TEXT so the same column type works on SQLite and PostgreSQL.
fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Malformed)?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| CryptoError::Malformed)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(STANDARD.encode(out))
}

fn open(key: &[u8; 32], sealed: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let raw = STANDARD.decode(sealed).map_err(|_| CryptoError::Malformed)?;
    if raw.len() < 1 + NONCE_LEN + 16 || raw[0] != FORMAT_V1 {
        return Err(CryptoError::Malformed);
    }
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Malformed)?;
    let nonce: [u8; NONCE_LEN] = raw[1..1 + NONCE_LEN]
        .try_into()
        .map_err(|_| CryptoError::Malformed)?;
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &raw[1 + NONCE_LEN..],
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)
}

/// `t=…,v1=…`: HMAC-SHA256 of `"<t>.<body>"` for a body sent at `unix_seconds` (SIEM webhooks, node-to-node
/// requests).
pub fn signature(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    let mut mac =
        <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    hmac::Mac::update(&mut mac, unix_seconds.to_string().as_bytes());
    hmac::Mac::update(&mut mac, b".");
    hmac::Mac::update(&mut mac, body);
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    )
}

/// Checks a [`signature`] header the way a receiver should: the MAC, and `t` within `window_seconds` of now.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_seconds: i64,
    window_seconds: i64,
) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    // abs_diff: a forged `t` at the edge of i64 must not overflow.
    if now_seconds.abs_diff(t) > window_seconds.unsigned_abs() {
        return false;
    }
    let mut mac =
        <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    hmac::Mac::update(&mut mac, t.to_string().as_bytes());
    hmac::Mac::update(&mut mac, b".");
    hmac::Mac::update(&mut mac, body);
    hmac::Mac::verify_slice(mac, &v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(dir: &Path, names: &[&str]) -> Keyring {
        let files: Vec<_> = names.iter().map(|n| dir.join(n)).collect();
        for f in &files {
            Keyring::create_key_file(f).unwrap();
        }
        Keyring::load(&files).unwrap()
    }

    #[test]
    fn envelope_round_trip_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let ring = keyring(dir.path(), &["a.hex"]);
        let (key, kek_id, wrapped) = ring.new_data_key("conversation:c1").unwrap();
        let sealed = key.seal(b"chest pain since noon", b"c1|1").unwrap();
        assert!(!sealed.contains("chest"));
        let again = ring
            .unwrap_data_key(&kek_id, &wrapped, "conversation:c1")
            .unwrap();
        assert_eq!(again.open(&sealed, b"c1|1").unwrap(), b"chest pain since noon");
        assert!(again.open(&sealed, b"c1|2").is_err(), "moved to another row");
        assert!(
            ring.unwrap_data_key(&kek_id, &wrapped, "conversation:c2")
                .is_err(),
            "key of another object"
        );
    }

    #[test]
    fn old_keks_still_unwrap_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let old = keyring(dir.path(), &["old.hex"]);
        let (_, kek_id, wrapped) = old.new_data_key("x").unwrap();
        let rotated = keyring(dir.path(), &["new.hex", "old.hex"]);
        assert!(rotated.unwrap_data_key(&kek_id, &wrapped, "x").is_ok());
        let (_, new_id, _) = rotated.new_data_key("y").unwrap();
        assert_ne!(new_id, kek_id);
        let without_old = keyring(dir.path(), &["new.hex"]);
        assert!(matches!(
            without_old.unwrap_data_key(&kek_id, &wrapped, "x"),
            Err(CryptoError::UnknownKek(_))
        ));
    }

    #[test]
    fn rewrapped_keys_open_the_same_data_without_the_old_kek() {
        let dir = tempfile::tempdir().unwrap();
        let old = keyring(dir.path(), &["old.hex"]);
        let (key, kek_id, wrapped) = old.new_data_key("conversation:c1").unwrap();
        let sealed = key.seal(b"rash on left arm", b"c1|1").unwrap();
        let rotated = keyring(dir.path(), &["new.hex", "old.hex"]);
        assert_eq!(rotated.ids()[0], rotated.current_id());
        assert!(
            rotated.rewrap(&kek_id, &wrapped, "conversation:c2").is_err(),
            "the context still binds"
        );
        let (new_id, rewrapped) = rotated.rewrap(&kek_id, &wrapped, "conversation:c1").unwrap();
        assert_ne!(new_id, kek_id);
        let only_new = keyring(dir.path(), &["new.hex"]);
        let again = only_new
            .unwrap_data_key(&new_id, &rewrapped, "conversation:c1")
            .unwrap();
        assert_eq!(again.open(&sealed, b"c1|1").unwrap(), b"rash on left arm");
    }
}
