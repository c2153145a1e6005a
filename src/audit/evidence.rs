//! Scheduled evidence: the reports `[[reports.schedules]]` asks for, produced by the broker itself when each
//! period ends (`schedule`), signed with the audit-signing key (`signed`), stored once in the object store
//! (S3 Object Lock retention for `keep_days` where the bucket has it; a unique key per report, never
//! overwritten), filed in the database, and entered into the audit chain (`report.scheduled`). `check` tells
//! the console whether a stored report is intact: its digest, its signature, and the chain head it names.

use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::Serialize;
use sha2::Digest;

use super::checkpoint::Signer;
use super::reports::{self, ReportQuery};
use super::schedule::{Period, due};
use super::{AuditEvent, Auditor, Outcome, signed};
use crate::config::reports::{ReportsConfig, ScheduleConfig};
use crate::recording::objects::{ObjectError, ObjectStore};
use crate::store::{Db, ScheduledReportRow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("report: {0}")]
    Report(#[from] reports::ReportError),
    #[error("report file: {0}")]
    Io(#[from] std::io::Error),
}

/// What scheduled evidence needs: where reports go and how they are signed.
pub struct Evidence {
    pub db: Db,
    pub audit: Auditor,
    pub objects: Arc<dyn ObjectStore>,
    /// Where a report is written before it is stored (the data directory: never a shared temporary directory).
    pub work_dir: std::path::PathBuf,
}

impl Evidence {
    /// Produces every report now due; returns how many were stored.
    pub async fn run_due(
        &self,
        config: &ReportsConfig,
        signer: &Signer,
        now_ms: i64,
    ) -> Result<usize, EvidenceError> {
        let mut stored = 0;
        for s in &config.schedules {
            let tz = match &s.time_zone {
                Some(z) => TimeZone::get(z).unwrap_or(TimeZone::UTC),
                None => TimeZone::UTC,
            };
            let done = self.db.last_scheduled_period(&s.name).await?;
            for period in due(s.every, &tz, done, now_ms) {
                self.produce(s, config.exposure_threshold, period, signer, now_ms)
                    .await?;
                stored += 1;
            }
        }
        Ok(stored)
    }

    async fn produce(
        &self,
        s: &ScheduleConfig,
        exposure_threshold: u32,
        period: Period,
        signer: &Signer,
        now_ms: i64,
    ) -> Result<(), EvidenceError> {
        let ts = crate::clock::timestamp;
        let q = ReportQuery::new(
            &s.report,
            &ts(period.from_ms),
            &ts(period.to_ms),
            s.time_zone.as_deref(),
            exposure_threshold,
        )?;
        let report = reports::produce(&self.db, &q, None).await??;
        let file = signed::seal(&report, &s.name, period, now_ms, signer);
        let id = format!("SR-{}", crate::ids::random_hex(8));
        let day = &ts(period.from_ms)[..10];
        let row = ScheduledReportRow {
            object_key: format!("report-{}-{day}-{id}.json", s.name),
            id,
            schedule: s.name.clone(),
            report: s.report.clone(),
            period_from: period.from_ms,
            period_to: period.to_ms,
            executed_at: now_ms,
            head_seq: report.chain_head.seq,
            sha256: hex::encode(sha2::Sha256::digest(&file)),
            bytes: file.len() as i64,
            key_id: signer.key_id().to_string(),
        };
        let tmp = self.work_dir.join(format!(".{}.tmp", row.id));
        tokio::fs::write(&tmp, &file).await?;
        let retain_until = now_ms + i64::from(s.keep_days) * 86_400_000;
        let put = self
            .objects
            .put_file(&row.object_key, &tmp, retain_until, false)
            .await;
        let _ = tokio::fs::remove_file(&tmp).await;
        put?;
        // Another node may have filed this period meanwhile (a lease moving): its report stands, this copy stays
        // in the store unindexed, and no second event is written.
        if self.db.insert_scheduled_report(&row).await? {
            let receipt = serde_json::json!({
                "schedule": row.schedule, "report": row.report, "from": ts(row.period_from),
                "to": ts(row.period_to), "head_seq": row.head_seq, "sha256": row.sha256, "key_id": row.key_id,
            });
            self.audit
                .record_or_log(
                    AuditEvent::system(
                        "reports",
                        "report.scheduled",
                        format!("report:{}", row.id),
                        Outcome::Success,
                    )
                    .reason(receipt.to_string()),
                )
                .await;
        }
        Ok(())
    }

    /// The stored file of a scheduled report.
    pub async fn file(&self, row: &ScheduledReportRow) -> Result<Vec<u8>, EvidenceError> {
        Ok(self.objects.read(&row.object_key, 0, row.bytes as u64).await?)
    }

    /// Whether a stored report is intact.
    pub async fn check(
        &self,
        row: &ScheduledReportRow,
        public_keys: &[Vec<u8>],
    ) -> Result<Check, EvidenceError> {
        let file = match self.file(row).await {
            Ok(f) => f,
            Err(EvidenceError::Objects(ObjectError::NotFound)) => {
                return Ok(Check::refused("the stored file is missing"));
            }
            Err(e) => return Err(e),
        };
        if hex::encode(sha2::Sha256::digest(&file)) != row.sha256 {
            return Ok(Check::refused(
                "the stored file's SHA-256 is not the one filed when it was made",
            ));
        }
        Ok(match signed::verify(&file, public_keys) {
            Ok(v) => {
                let chain = chain_matches(&self.db, &v.chain_head).await?;
                Check {
                    valid: chain,
                    problem: (!chain)
                        .then(|| "the chain head it names is not in this audit chain".to_string()),
                    verified: Some(v),
                }
            }
            Err(e) => Check::refused(&e.to_string()),
        })
    }
}

/// Whether the audit chain has the event the report names as its head (the genesis hash for an empty chain).
pub async fn chain_matches(db: &Db, head: &reports::ChainHead) -> Result<bool, StoreError> {
    if head.seq == 0 {
        return Ok(head.hash == super::GENESIS_HASH);
    }
    Ok(db.audit_hash_at(head.seq).await?.is_some_and(|h| h == head.hash))
}

/// The verdict on a stored report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub valid: bool,
    pub problem: Option<String>,
    pub verified: Option<signed::Verified>,
}

impl Check {
    fn refused(why: &str) -> Check {
        Check {
            valid: false,
            problem: Some(why.to_string()),
            verified: None,
        }
    }
}
