//! Key custody: what the key-encryption keys (KEKs) in the keyring wrap, and their rotation. A rotation puts a
//! new KEK first in `messaging.kek_files` (new data keys are wrapped by it at once), then re-wraps every stored
//! data key under it; once no data key names an old KEK, that KEK can leave the keyring and be destroyed.
//! Data keys themselves never change, so no message or recording is re-encrypted.

use std::collections::BTreeMap;

use crate::crypto::Keyring;
use crate::store::{Db, StoreError, WrappedKeyKind, WrappedKeyRow};

/// Rows read per page while re-wrapping.
const PAGE: i64 = 500;

/// The associated data each kind of wrapped key is bound to (the owners' own definitions).
pub fn context(kind: WrappedKeyKind, id: &str) -> String {
    match kind {
        WrappedKeyKind::Conversation => crate::messaging::key_context(id),
        WrappedKeyKind::Recording => crate::recording::session::key_context(id),
        WrappedKeyKind::RecordingSpool => crate::recording::session::spool_context(id),
    }
}

/// One KEK as the keyring and the database see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekUse {
    pub kek_id: String,
    pub current: bool,
    pub in_keyring: bool,
    /// Data keys it wraps, per kind.
    pub wraps: BTreeMap<WrappedKeyKind, i64>,
}

impl KekUse {
    pub fn total(&self) -> i64 {
        self.wraps.values().sum()
    }

    /// What an operator may do with it.
    pub fn verdict(&self) -> &'static str {
        match (self.current, self.in_keyring, self.total()) {
            (true, _, _) => "current: wraps new data keys",
            (false, true, 0) => "wraps nothing: can be removed from messaging.kek_files",
            (false, true, _) => "still needed: run `examroom keys rewrap`",
            (false, false, _) => "MISSING from the keyring: these data keys cannot be opened",
        }
    }
}

/// Every KEK in the keyring or named by a stored data key, the current one first.
pub async fn usage(db: &Db, keyring: &Keyring) -> Result<Vec<KekUse>, StoreError> {
    let ring = keyring.ids();
    let new = |id: &str| KekUse {
        kek_id: id.to_string(),
        current: id == keyring.current_id(),
        in_keyring: ring.iter().any(|k| k == id),
        wraps: BTreeMap::new(),
    };
    let mut by_id: BTreeMap<String, KekUse> = ring.iter().map(|id| (id.clone(), new(id))).collect();
    for (kind, id, n) in db.wrapped_key_counts().await? {
        by_id
            .entry(id.clone())
            .or_insert_with(|| new(&id))
            .wraps
            .insert(kind, n);
    }
    let mut out: Vec<KekUse> = by_id.into_values().collect();
    out.sort_by_key(|k| !k.current);
    Ok(out)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    pub rewrapped: BTreeMap<WrappedKeyKind, u64>,
    /// Rows that changed between reading and writing (a broker wrote them meanwhile); the next run takes them.
    pub raced: u64,
    /// Data keys that could not be opened, by the KEK id they name (a KEK missing from the keyring, or
    /// tampered rows); they stay as they were.
    pub unreadable: BTreeMap<String, u64>,
}

impl RewrapReport {
    pub fn total(&self) -> u64 {
        self.rewrapped.values().sum()
    }
}

/// Re-wraps every stored data key not wrapped by the keyring's current KEK. Safe beside running brokers
/// (each row is replaced only if unchanged) and to run again (already re-wrapped rows are skipped).
pub async fn rewrap(db: &Db, keyring: &Keyring) -> Result<RewrapReport, StoreError> {
    let mut report = RewrapReport::default();
    for kind in WrappedKeyKind::ALL {
        let mut after = String::new();
        loop {
            let page = db
                .keys_not_under(kind, keyring.current_id(), &after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            for row in &page {
                rewrap_one(db, keyring, row, &mut report).await?;
            }
        }
    }
    Ok(report)
}

async fn rewrap_one(
    db: &Db,
    keyring: &Keyring,
    row: &WrappedKeyRow,
    report: &mut RewrapReport,
) -> Result<(), StoreError> {
    match keyring.rewrap(&row.kek_id, &row.wrapped, &context(row.kind, &row.id)) {
        Ok((kek_id, wrapped)) => {
            if db.replace_wrapped_key(row, &kek_id, &wrapped).await? {
                *report.rewrapped.entry(row.kind).or_default() += 1;
            } else {
                report.raced += 1;
            }
        }
        Err(_) => *report.unreadable.entry(row.kek_id.clone()).or_default() += 1,
    }
    Ok(())
}
