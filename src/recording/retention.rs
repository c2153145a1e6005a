//! Retention: a recording's `retain_until` is fixed from its policy when it starts. The sweep deletes every
//! stored recording part past it that is not on legal hold: its objects (segments) are removed, the data key destroyed (so any
//! copy of the object is unreadable), and a deletion receipt goes into the audit log (recording, policy,
//! time, objects and bytes removed). `--dry-run` reports what would go and deletes nothing. The clock is a
//! parameter so tests (and an operator checking a future date) can inject it.

use serde::Serialize;

use super::objects::ObjectStore;
use crate::audit::{AuditEvent, Auditor, Outcome};
use crate::store::{Db, StoreError};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Receipt {
    pub recording: String,
    pub policies: String,
    pub retain_until_ms: i64,
    pub deleted_at_ms: i64,
    pub objects: Vec<String>,
    /// Object versions removed (a versioned bucket keeps every upload).
    pub versions: u32,
    pub bytes: i64,
}

pub async fn sweep(
    db: &Db,
    objects: &dyn ObjectStore,
    audit: &Auditor,
    now_ms: i64,
    dry_run: bool,
) -> Result<Vec<Receipt>, StoreError> {
    let mut receipts = Vec::new();
    for r in db.expired_recordings(now_ms).await? {
        // A part's objects: its segments, or the whole-file object of a recording made before segments.
        let segments = db.segments_of(&[r.id.as_str()]).await?;
        let keys: Vec<String> = r
            .object_key
            .iter()
            .cloned()
            .chain(segments.into_iter().map(|s| s.object_key))
            .collect();
        let mut receipt = Receipt {
            recording: r.id.to_string(),
            policies: r.policies.clone(),
            retain_until_ms: r.retain_until,
            deleted_at_ms: now_ms,
            objects: keys,
            versions: 0,
            bytes: r.object_bytes.unwrap_or(0),
        };
        if !dry_run {
            let mut removed = true;
            for key in &receipt.objects {
                match objects.delete(key).await {
                    Ok(n) => receipt.versions += n,
                    Err(e) => {
                        tracing::error!(error = %e, "recording object could not be removed; kept for the next sweep");
                        removed = false;
                        break;
                    }
                }
            }
            if !removed {
                continue;
            }
            db.shred_recording(&r.id, now_ms).await?;
            audit
                .record_or_log(
                    AuditEvent::system(
                        "retention",
                        "recording.deleted",
                        format!("recording:{}", r.id),
                        Outcome::Success,
                    )
                    .reason(serde_json::to_string(&receipt).unwrap_or_default()),
                )
                .await;
        }
        receipts.push(receipt);
    }
    Ok(receipts)
}
