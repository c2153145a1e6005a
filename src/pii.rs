//! Values that must never reach a log line. `Pii<T>` wraps PHI (names, dates of birth, message text) and
//! `secrecy::SecretString` wraps credentials; both print a placeholder. When a log line must let an operator
//! correlate events about one person, it carries a keyed pseudonym instead of the identifier.

use std::fmt;
use std::sync::OnceLock;

use hmac_sha256::hmac;

/// Protected health information. Debug and Display print `[redacted]`; read the value with [`Pii::expose`].
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// Named so every place that reads PHI is easy to find in review.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

static PSEUDONYM_KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Sets the key behind [`pseudonym`]. Called once at startup; a keyed hash (not a bare SHA-256) so that a
/// short identifier such as an MRN cannot be recovered by hashing every candidate.
pub fn set_pseudonym_key(key: [u8; 32]) {
    let _ = PSEUDONYM_KEY.set(key);
}

/// A stable, non-reversible tag for an identifier, for log correlation only (12 hex characters).
pub fn pseudonym(value: &str) -> String {
    let key = PSEUDONYM_KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
        k
    });
    let mac = hmac(key, value.as_bytes());
    hex::encode(&mac[..6])
}

mod hmac_sha256 {
    //! HMAC-SHA256 (RFC 2104) over `sha2`, to avoid another dependency for one function.
    use sha2::{Digest, Sha256};

    pub fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, b) in key.iter().enumerate() {
            ipad[i] ^= b;
            opad[i] ^= b;
        }
        let inner = Sha256::new().chain_update(ipad).chain_update(msg).finalize();
        Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pii_prints_placeholder() {
        let name = Pii::new("Jane Example".to_string());
        assert_eq!(format!("{name}"), "[redacted]");
        assert_eq!(format!("{name:?}"), "[redacted]");
        assert_eq!(name.expose(), "Jane Example");
    }

    #[test]
    fn pseudonyms_are_stable_and_opaque() {
        let a = pseudonym("MRN-12345");
        assert_eq!(a, pseudonym("MRN-12345"));
        assert_ne!(a, pseudonym("MRN-12346"));
        assert!(!a.contains("12345"));
        assert_eq!(a.len(), 12);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2_shape() {
        // RFC 4231 test case 2 uses a 4-byte key; pad it to our fixed 32-byte key (HMAC zero-pads anyway).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
