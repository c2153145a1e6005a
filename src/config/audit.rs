//! `[audit]`: the key that signs the audit chain's checkpoints, and the public keys of keys it replaced. Every
//! node of a cluster must sign with the same key, so a deployment on PostgreSQL names a file; `examroom dev`
//! and a single node on SQLite may leave it to be generated once in the data directory. After a rotation the
//! old key's public half stays here, so checkpoints it signed keep verifying.

use std::path::PathBuf;

use serde::Deserialize;

use super::Problem;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Ed25519 private key, PKCS#8 DER (`examroom keys generate --kind audit-signing`, or
    /// `openssl genpkey -algorithm ed25519 -outform DER -out FILE`).
    /// Default: generated once at `<data_dir>/keys/audit-signing.pk8`.
    pub signing_key_file: Option<PathBuf>,
    /// Public keys (hex, as `examroom keys status` prints them) of signing keys this one replaced: the
    /// checkpoints they signed still verify, online and in exports. Public keys are not secret.
    pub previous_public_keys: Vec<String>,
}

impl AuditConfig {
    pub fn problems(&self) -> Vec<Problem> {
        self.previous_keys()
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_none())
            .map(|(i, _)| {
                Problem::new(
                    format!("audit.previous_public_keys[{i}]"),
                    "an Ed25519 public key: 32 bytes as 64 hex digits",
                )
            })
            .collect()
    }

    /// The previous public keys as bytes (`None` for one that is not 32 bytes of hex).
    pub fn previous_keys(&self) -> Vec<Option<Vec<u8>>> {
        self.previous_public_keys
            .iter()
            .map(|k| hex::decode(k.trim()).ok().filter(|b| b.len() == 32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_keys_must_be_ed25519_public_keys_in_hex() {
        let c = AuditConfig {
            signing_key_file: None,
            previous_public_keys: vec!["ab".repeat(32), "not hex".into(), "ab".repeat(31)],
        };
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["audit.previous_public_keys[1]", "audit.previous_public_keys[2]"]
        );
    }
}
