//! `[audit]`: the key that signs the audit chain's checkpoints. Every node of a cluster must sign with the same
//! key (an export verifies against one public key), so a deployment on PostgreSQL names a file; `examroom dev`
//! and a single node on SQLite may leave it to be generated once in the data directory.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Ed25519 private key, PKCS#8 DER (`openssl genpkey -algorithm ed25519 -outform DER -out FILE`).
    /// Default: generated once at `<data_dir>/keys/audit-signing.pk8`.
    pub signing_key_file: Option<PathBuf>,
}
