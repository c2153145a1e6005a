//! Retention of the PHI a chat leaves besides recordings, by class (`retention.*`): a closed chat's messages
//! and context, the nurse's wrap-up, the conversation record with its wrapped data key (removed last, once
//! nothing sealed under it is kept), and visit records with their classification. Nothing a recording still
//! needs: while a recording of the chat's visits is kept, or on legal hold, the chat and its visits stay. Copies
//! in database backups keep the wrapped key: they age out with the backups, or with the key-encryption key once
//! it is rotated and destroyed. Each removal leaves a receipt in the audit chain (`retention.*_deleted`, by
//! `system:retention`), which the retention report lists. The clock is a parameter, as for recordings.

use serde::Serialize;

use crate::audit::{AuditEvent, Auditor, Outcome};
use crate::config::retention::RetentionConfig;
use crate::store::{Db, StoreError};

/// What went, for the audit chain and the command line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PhiReceipt {
    /// `conversation` or `visit`.
    pub class: &'static str,
    /// `conversation:<id>` or `visit:<id>`.
    pub record: String,
    pub messages: u64,
    pub context: bool,
    pub wrap_up: bool,
    /// The conversation record went, and its data key with it.
    pub key_destroyed: bool,
    pub deleted_at_ms: i64,
}

/// Removes what each rule says is due at `now_ms`; with `dry_run`, lists what would go (counted by doing it
/// and rolling it back) and removes nothing.
pub async fn sweep(
    db: &Db,
    audit: &Auditor,
    rules: &RetentionConfig,
    now_ms: i64,
    dry_run: bool,
) -> Result<Vec<PhiReceipt>, StoreError> {
    let closed_before = now_ms - RetentionConfig::ms(rules.conversation_days);
    let wrap_up_before = now_ms - RetentionConfig::ms(rules.wrap_up_days);
    let mut receipts = Vec::new();
    for id in db.conversations_due(closed_before, wrap_up_before).await? {
        let mut receipt = PhiReceipt {
            class: "conversation",
            record: format!("conversation:{id}"),
            messages: 0,
            context: false,
            wrap_up: false,
            key_destroyed: false,
            deleted_at_ms: now_ms,
        };
        let shred = db
            .shred_conversation(&id, closed_before, wrap_up_before, dry_run)
            .await?;
        if shred == Default::default() {
            continue; // Swept before (its messages gone, its wrap-up kept longer), or held since.
        }
        receipt.messages = shred.messages;
        receipt.context = shred.context;
        receipt.wrap_up = shred.wrap_up;
        receipt.key_destroyed = shred.record;
        if !dry_run {
            record(audit, "retention.conversation_deleted", &receipt).await;
        }
        receipts.push(receipt);
    }
    for id in db
        .visits_due(now_ms - RetentionConfig::ms(rules.visit_days))
        .await?
    {
        let receipt = PhiReceipt {
            class: "visit",
            record: format!("visit:{id}"),
            messages: 0,
            context: false,
            wrap_up: false,
            key_destroyed: false,
            deleted_at_ms: now_ms,
        };
        if !dry_run {
            if !db.delete_visit_record(&id).await? {
                continue;
            }
            record(audit, "retention.visit_deleted", &receipt).await;
        }
        receipts.push(receipt);
    }
    Ok(receipts)
}

async fn record(audit: &Auditor, action: &str, receipt: &PhiReceipt) {
    audit
        .record_or_log(
            AuditEvent::system("retention", action, receipt.record.clone(), Outcome::Success)
                .reason(serde_json::to_string(receipt).unwrap_or_default()),
        )
        .await;
}
