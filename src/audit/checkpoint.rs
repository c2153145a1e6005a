//! Signed checkpoints of the audit chain. Periodically the broker signs `(seq, head hash, time)` with its
//! Ed25519 key; with only the exported events, the checkpoints and the public key, an auditor can then prove
//! offline that the chain was not edited, reordered, cut or rewritten after a checkpoint was made, and that no
//! checkpoint was forged or replayed. Sans-IO: keys are bytes, events are rows.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::verify::{ChainBreak, ChainVerifier};
use crate::store::AuditRow;

/// A signed head of the chain (the row type is the store's: the store must not reach up into `audit`).
pub use crate::store::Checkpoint;

fn message(seq: i64, head_hash: &str, at_ms: i64, key_id: &str) -> Vec<u8> {
    format!("examroom-audit-checkpoint-v1|{key_id}|{seq}|{head_hash}|{at_ms}").into_bytes()
}

fn document(domain: &str, key_id: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{domain}|{key_id}|").into_bytes();
    m.extend_from_slice(body);
    m
}

/// Checks a [`Signer::sign_document`] signature against the trusted public keys; the key that signed it must
/// be the one `key_id` names.
pub fn verify_document(
    domain: &str,
    key_id: &str,
    body: &[u8],
    signature: &str,
    public_keys: &[Vec<u8>],
) -> bool {
    let Ok(sig) = STANDARD.decode(signature) else {
        return false;
    };
    public_keys.iter().any(|k| {
        self::key_id(k) == key_id
            && UnparsedPublicKey::new(&ED25519, k)
                .verify(&document(domain, key_id, body), &sig)
                .is_ok()
    })
}

pub fn key_id(public_key: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(public_key)[..8])
}

pub struct Signer {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl Signer {
    /// A new PKCS#8 private key (store it with mode 0600).
    pub fn generate_pkcs8() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("system randomness")
            .as_ref()
            .to_vec()
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Option<Signer> {
        // Ring's own keys are PKCS#8 v2; `openssl genpkey` writes v1 (no public key inside).
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8))
            .ok()?;
        let key_id = key_id(pair.public_key().as_ref());
        Some(Signer { pair, key_id })
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs a document of the kind `domain` (a scheduled report): `domain|key_id|` then the exact bytes, so a
    /// signature over one kind of document never verifies as another. Base64.
    pub fn sign_document(&self, domain: &str, body: &[u8]) -> String {
        STANDARD.encode(self.pair.sign(&document(domain, &self.key_id, body)).as_ref())
    }

    pub fn sign(&self, seq: i64, head_hash: &str, at_ms: i64) -> Checkpoint {
        let sig = self.pair.sign(&message(seq, head_hash, at_ms, &self.key_id));
        Checkpoint {
            seq,
            head_hash: head_hash.to_string(),
            at_ms,
            key_id: self.key_id.clone(),
            signature: STANDARD.encode(sig.as_ref()),
        }
    }
}

/// Where the broker's signing key is: `audit.signing_key_file` (every node of a cluster the same), or else
/// `keys/audit-signing.pk8` in the data directory.
fn signing_key_path(config: &crate::config::Config) -> std::path::PathBuf {
    config
        .audit
        .signing_key_file
        .clone()
        .unwrap_or_else(|| config.server.data_dir.join("keys").join("audit-signing.pk8"))
}

fn read_signer(path: &std::path::Path) -> std::io::Result<Signer> {
    Signer::from_pkcs8(&std::fs::read(path)?).ok_or_else(|| {
        std::io::Error::other(format!(
            "audit.signing_key_file: {} is not an Ed25519 PKCS#8 key",
            path.display()
        ))
    })
}

/// The broker's signing key; the data directory's is created on first use (mode 0600).
pub fn load_or_create_signer(config: &crate::config::Config) -> std::io::Result<Signer> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = signing_key_path(config);
    if config.audit.signing_key_file.is_none() && !path.exists() {
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(&Signer::generate_pkcs8())?;
    }
    read_signer(&path)
}

/// The signing key if there is one, for commands that only read (they must not make a new key: checkpoints
/// would then look forged).
pub fn existing_signer(config: &crate::config::Config) -> std::io::Result<Option<Signer>> {
    let path = signing_key_path(config);
    if path.exists() {
        read_signer(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// The public keys checkpoints may be signed with: the signing key's own (when there is one), then
/// `audit.previous_public_keys` (keys it replaced; invalid entries are refused by configuration checks).
pub fn trusted_public_keys(config: &crate::config::Config, signer: Option<&Signer>) -> Vec<Vec<u8>> {
    signer
        .map(Signer::public_key)
        .into_iter()
        .chain(config.audit.previous_keys().into_iter().flatten())
        .collect()
}

/// `audit verify` on a database: every stored checkpoint against the trusted keys and the stored events (the
/// chain itself is checked by `verify::verify_stored`). `None` when nothing has been signed yet.
pub async fn verify_stored_checkpoints(
    db: &crate::store::Db,
    public_keys: &[Vec<u8>],
) -> Result<Option<Result<OfflineSummary, OfflineBreak>>, crate::store::StoreError> {
    let checkpoints = db.checkpoints().await?;
    if checkpoints.is_empty() {
        return Ok(None);
    }
    let mut events = Vec::new();
    loop {
        let page = db
            .audit_events(events.last().map_or(0, |e: &AuditRow| e.seq), 1000)
            .await?;
        if page.is_empty() {
            break;
        }
        events.extend(page);
    }
    let keys: Vec<&[u8]> = public_keys.iter().map(Vec::as_slice).collect();
    Ok(Some(verify_offline(&events, &checkpoints, &keys)))
}

/// Signs the chain head if it moved since the last checkpoint; returns the new checkpoint.
pub async fn checkpoint_now(
    db: &crate::store::Db,
    signer: &Signer,
    now_ms: i64,
) -> Result<Option<Checkpoint>, crate::store::StoreError> {
    let head = db.audit_head().await?;
    let last = db.checkpoints().await?.last().map(|c| c.seq).unwrap_or(0);
    if head.seq == 0 || head.seq <= last {
        return Ok(None);
    }
    let c = signer.sign(head.seq, &head.hash, now_ms);
    db.insert_checkpoint(&c).await?;
    Ok(Some(c))
}

/// Why offline verification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineBreak {
    Chain(ChainBreak),
    /// The checkpoint's signature does not verify under the given public key.
    ForgedCheckpoint {
        seq: i64,
    },
    /// A validly signed checkpoint that does not fit the chain where it claims to be, or that repeats or goes
    /// back in time relative to an earlier one: a checkpoint copied from elsewhere or replayed.
    ReplayedCheckpoint {
        seq: i64,
    },
    /// The events end before the last checkpoint: the tail was cut off.
    Truncated {
        last: i64,
        checkpoint: i64,
    },
    /// No checkpoint at all: nothing anchors the chain.
    NoCheckpoint,
    /// A checkpoint signed by a replaced key after the current key had signed one: a retired (perhaps leaked)
    /// key must not vouch for anything newer.
    RetiredKey {
        seq: i64,
    },
}

impl fmt::Display for OfflineBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfflineBreak::Chain(b) => b.fmt(f),
            OfflineBreak::ForgedCheckpoint { seq } => {
                write!(
                    f,
                    "the checkpoint at event {seq} is forged: its signature does not verify under a trusted public key"
                )
            }
            OfflineBreak::ReplayedCheckpoint { seq } => write!(
                f,
                "the checkpoint at event {seq} is replayed or misplaced: it does not match the chain there or repeats an earlier one"
            ),
            OfflineBreak::Truncated { last, checkpoint } => write!(
                f,
                "event {} is missing: the events end at {last} but a checkpoint covers {checkpoint} (truncated)",
                last + 1
            ),
            OfflineBreak::NoCheckpoint => write!(f, "no checkpoint: the chain cannot be anchored"),
            OfflineBreak::RetiredKey { seq } => write!(
                f,
                "the checkpoint at event {seq} is signed by a replaced key after the current key took over"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineSummary {
    pub events: i64,
    pub checkpoints: usize,
    pub last_checkpoint: i64,
}

/// Verifies exported events and checkpoints with the public keys alone: the current signing key's first, then
/// those of keys it replaced; each checkpoint names the key that signed it, and once the current key has signed
/// a checkpoint no replaced key may sign a later one.
pub fn verify_offline(
    events: &[AuditRow],
    checkpoints: &[Checkpoint],
    public_keys: &[&[u8]],
) -> Result<OfflineSummary, OfflineBreak> {
    let keys: Vec<(String, UnparsedPublicKey<&[u8]>)> = public_keys
        .iter()
        .map(|k| (key_id(k), UnparsedPublicKey::new(&ED25519, *k)))
        .collect();
    let current = keys.first().map(|(id, _)| id.as_str());
    let mut current_signed = false;
    let mut previous: Option<&Checkpoint> = None;
    for c in checkpoints {
        let sig = STANDARD
            .decode(&c.signature)
            .map_err(|_| OfflineBreak::ForgedCheckpoint { seq: c.seq })?;
        let key = keys.iter().find(|(id, _)| *id == c.key_id).map(|(_, k)| k);
        if key.is_none_or(|k| {
            k.verify(&message(c.seq, &c.head_hash, c.at_ms, &c.key_id), &sig)
                .is_err()
        }) {
            return Err(OfflineBreak::ForgedCheckpoint { seq: c.seq });
        }
        if Some(c.key_id.as_str()) == current {
            current_signed = true;
        } else if current_signed {
            return Err(OfflineBreak::RetiredKey { seq: c.seq });
        }
        if previous.is_some_and(|p| c.seq <= p.seq || c.at_ms < p.at_ms) {
            return Err(OfflineBreak::ReplayedCheckpoint { seq: c.seq });
        }
        previous = Some(c);
    }
    let last_checkpoint = previous.ok_or(OfflineBreak::NoCheckpoint)?;
    let mut chain = ChainVerifier::default();
    let mut pending = checkpoints.iter().peekable();
    let mut last = 0;
    for row in events {
        chain.push(row).map_err(OfflineBreak::Chain)?;
        last = row.seq;
        while let Some(c) = pending.next_if(|c| c.seq == row.seq) {
            if c.head_hash != row.hash {
                return Err(OfflineBreak::ReplayedCheckpoint { seq: c.seq });
            }
        }
        if let Some(c) = pending.peek()
            && c.seq < row.seq
        {
            return Err(OfflineBreak::ReplayedCheckpoint { seq: c.seq });
        }
    }
    if last < last_checkpoint.seq {
        return Err(OfflineBreak::Truncated {
            last,
            checkpoint: last_checkpoint.seq,
        });
    }
    Ok(OfflineSummary {
        events: last,
        checkpoints: checkpoints.len(),
        last_checkpoint: last_checkpoint.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{GENESIS_HASH, event_hash};

    /// `openssl genpkey -algorithm ed25519 -outform DER` (PKCS#8 v1), as the README tells operators to make one.
    const OPENSSL_KEY: &str =
        "302e020100300506032b657004220420cbeda2b155047ab48824019124b51e9457a7641b1556838fe8d6c773cbe37bbb";

    #[test]
    fn an_openssl_made_key_signs_and_two_nodes_with_one_file_sign_alike() {
        let der = hex::decode(OPENSSL_KEY).unwrap();
        let (a, b) = (
            Signer::from_pkcs8(&der).unwrap(),
            Signer::from_pkcs8(&der).unwrap(),
        );
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.sign(3, "h", 1).key_id, b.sign(3, "h", 1).key_id);
        assert!(Signer::from_pkcs8(b"not a key").is_none());
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut row = AuditRow {
                    seq,
                    at_ms: 1_000 + seq,
                    request_id: format!("r{seq}"),
                    actor: "a1b2c3".into(),
                    role: crate::role::Role::ComplianceOfficer,
                    action: "recording.view".into(),
                    resource: format!("recording:r{seq}"),
                    outcome: crate::store::Outcome::Success,
                    reason: "review".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                row.hash = event_hash(&row);
                prev = row.hash.clone();
                row
            })
            .collect()
    }

    fn setup() -> (Signer, Vec<AuditRow>, Vec<Checkpoint>) {
        let signer = Signer::from_pkcs8(&Signer::generate_pkcs8()).unwrap();
        let events = chain(10);
        let cps = vec![
            signer.sign(4, &events[3].hash, 5_000),
            signer.sign(10, &events[9].hash, 9_000),
        ];
        (signer, events, cps)
    }

    #[test]
    fn an_intact_export_verifies_with_the_public_key_alone() {
        let (signer, events, cps) = setup();
        let s = verify_offline(&events, &cps, &[&signer.public_key()[..]]).unwrap();
        assert_eq!((s.events, s.checkpoints, s.last_checkpoint), (10, 2, 10));
    }

    #[test]
    fn checkpoints_of_a_rotated_key_verify_while_its_public_key_is_kept() {
        let (old, events, mut cps) = setup();
        let new = Signer::from_pkcs8(&Signer::generate_pkcs8()).unwrap();
        cps.truncate(1);
        cps.push(new.sign(10, &events[9].hash, 9_000));
        let (old_pk, new_pk) = (old.public_key(), new.public_key());
        let s = verify_offline(&events, &cps, &[&new_pk[..], &old_pk[..]]).unwrap();
        assert_eq!(s.checkpoints, 2);
        assert_eq!(
            verify_offline(&events, &cps, &[&new_pk[..]]),
            Err(OfflineBreak::ForgedCheckpoint { seq: 4 }),
            "the old key's checkpoints need its public key"
        );
        // The old key, leaked, signs a newer checkpoint after the rotation: refused.
        let mut late = cps.clone();
        late.truncate(1);
        late.push(new.sign(6, &events[5].hash, 7_000));
        late.push(old.sign(10, &events[9].hash, 9_000));
        assert_eq!(
            verify_offline(&events, &late, &[&new_pk[..], &old_pk[..]]),
            Err(OfflineBreak::RetiredKey { seq: 10 })
        );
    }

    #[test]
    fn every_kind_of_tampering_is_caught() {
        let (signer, events, cps) = setup();
        let pk = signer.public_key();

        let mut edited = events.clone();
        edited[5].reason = "nothing to see".into();
        assert_eq!(
            verify_offline(&edited, &cps, &[&pk[..]]),
            Err(OfflineBreak::Chain(ChainBreak::Edited { seq: 6 }))
        );

        let mut deleted = events.clone();
        deleted.remove(2);
        assert!(matches!(
            verify_offline(&deleted, &cps, &[&pk[..]]),
            Err(OfflineBreak::Chain(ChainBreak::Missing { .. }))
        ));

        let mut reordered = events.clone();
        reordered.swap(6, 7);
        assert!(matches!(
            verify_offline(&reordered, &cps, &[&pk[..]]),
            Err(OfflineBreak::Chain(_))
        ));

        // Cut after event 7: every remaining event is fine, but the checkpoint at 10 proves the tail existed.
        assert_eq!(
            verify_offline(&events[..7], &cps, &[&pk[..]]),
            Err(OfflineBreak::Truncated {
                last: 7,
                checkpoint: 10
            })
        );

        // A checkpoint signed with another key, or with a bent signature, is forged.
        let other = Signer::from_pkcs8(&Signer::generate_pkcs8()).unwrap();
        let forged = vec![cps[0].clone(), other.sign(10, &events[9].hash, 9_000)];
        assert_eq!(
            verify_offline(&events, &forged, &[&pk[..]]),
            Err(OfflineBreak::ForgedCheckpoint { seq: 10 })
        );
        let mut bent = cps.clone();
        bent[1].head_hash = events[8].hash.clone();
        assert_eq!(
            verify_offline(&events, &bent, &[&pk[..]]),
            Err(OfflineBreak::ForgedCheckpoint { seq: 10 })
        );

        // A genuine checkpoint replayed (repeated, or older after newer) is caught.
        let replayed = vec![cps[0].clone(), cps[1].clone(), cps[0].clone()];
        assert_eq!(
            verify_offline(&events, &replayed, &[&pk[..]]),
            Err(OfflineBreak::ReplayedCheckpoint { seq: 4 })
        );

        // A rewritten chain (all hashes recomputed by someone without the key) no longer fits the checkpoints.
        let mut rewritten = chain(10);
        rewritten.iter_mut().for_each(|r| r.reason = "rewritten".into());
        let mut prev = GENESIS_HASH.to_string();
        for r in rewritten.iter_mut() {
            r.prev_hash = prev.clone();
            r.hash = event_hash(r);
            prev = r.hash.clone();
        }
        assert_eq!(
            verify_offline(&rewritten, &cps, &[&pk[..]]),
            Err(OfflineBreak::ReplayedCheckpoint { seq: 4 })
        );
        assert_eq!(
            verify_offline(&events, &[], &[&pk[..]]),
            Err(OfflineBreak::NoCheckpoint)
        );
    }
}
