//! Scheduled evidence: the reports `[[reports.schedules]]` asks for, produced by the broker itself when each
//! period ends (`schedule`), signed with the audit-signing key (`signed`), stored once in the object store
//! (S3 Object Lock retention for `keep_days` where the bucket has it; a unique key per report, never
//! overwritten), filed in the database, and entered into the audit chain (`report.scheduled`). `check` tells
//! the console whether a stored report is intact: its digest, its signature, and the chain head it names.
//! The store is an [`Archive`]: what this module needs of object storage, which `recording::objects` provides
//! (the audit layer sits below recording and does not reach up to it).

use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::Serialize;
use sha2::Digest;

use super::checkpoint::Signer;
use super::reports::{self, ReportQuery};
use super::schedule::{Period, due};
use super::{AuditEvent, Auditor, Outcome, signed};
use crate::config::reports::{ReportsConfig, ScheduleConfig};
use crate::store::{Db, ScheduledReportRow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("report: {0}")]
    Report(#[from] reports::ReportError),
    #[error("report file: {0}")]
    Io(#[from] std::io::Error),
}

/// A write-once store for evidence files (the object store of recordings, through an adapter there).
#[async_trait::async_trait]
pub trait Archive: Send + Sync {
    /// Stores `file` under a new `key`, locked until `retain_until_ms` where the store can lock.
    async fn put(&self, key: &str, file: &std::path::Path, retain_until_ms: i64) -> Result<(), ArchiveError>;
    async fn read(&self, key: &str, len: u64) -> Result<Vec<u8>, ArchiveError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no such file in the archive")]
    NotFound,
    #[error("archive: {0}")]
    Failed(String),
}

/// What scheduled evidence needs: where reports go and how they are signed.
pub struct Evidence {
    pub db: Db,
    pub audit: Auditor,
    pub objects: Arc<dyn Archive>,
    /// Where a report is written before it is stored (the data directory: never a shared temporary directory).
    pub work_dir: std::path::PathBuf,
}

impl Evidence {
    /// Produces every report now due; returns how many were stored. A schedule that fails (its report, the
    /// store, the database) is logged and retried on the next run; it does not hold up the others.
    pub async fn run_due(&self, config: &ReportsConfig, signer: &Signer, now_ms: i64) -> usize {
        let mut stored = 0;
        for s in &config.schedules {
            match self
                .run_schedule(s, config.exposure_threshold, signer, now_ms)
                .await
            {
                Ok(n) => stored += n,
                Err(e) => {
                    tracing::warn!(schedule = %s.name, error = %e, "scheduled report failed; retrying later")
                }
            }
        }
        stored
    }

    async fn run_schedule(
        &self,
        s: &ScheduleConfig,
        exposure_threshold: u32,
        signer: &Signer,
        now_ms: i64,
    ) -> Result<usize, EvidenceError> {
        let tz = zone(s);
        let done = self.db.last_scheduled_period(&s.name).await?;
        let periods = due(s.every, &tz, done, now_ms);
        if let (Some(done), Some(first)) = (done, periods.first())
            && first.from_ms > done
        {
            // Down longer than the catch-up: the periods in between get no scheduled report (run them on demand).
            tracing::warn!(schedule = %s.name, "periods missed beyond the catch-up are not produced");
        }
        for &period in &periods {
            self.produce(s, &tz, exposure_threshold, period, signer, now_ms)
                .await?;
        }
        Ok(periods.len())
    }

    async fn produce(
        &self,
        s: &ScheduleConfig,
        tz: &TimeZone,
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
        // The period's first day as the schedule's zone sees it (a Berlin report for 3 December is named so).
        let day = jiff::Timestamp::from_millisecond(period.from_ms)
            .map(|t| t.to_zoned(tz.clone()).date().to_string())
            .unwrap_or_default();
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
        let put = self.objects.put(&row.object_key, &tmp, retain_until).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        put?;
        // Another node may have filed this period meanwhile (a lease moving): its report stands, this copy stays
        // in the store unindexed, and no second event is written.
        if !self.db.insert_scheduled_report(&row).await? {
            tracing::warn!(schedule = %s.name, key = %row.object_key, "period already filed: this copy is not indexed");
            return Ok(());
        }
        let receipt = serde_json::json!({
            "schedule": row.schedule, "report": row.report, "from": ts(row.period_from),
            "to": ts(row.period_to), "head_seq": row.head_seq, "sha256": row.sha256, "key_id": row.key_id,
        });
        let event = AuditEvent::system(
            "reports",
            "report.scheduled",
            format!("report:{}", row.id),
            Outcome::Success,
        )
        .reason(receipt.to_string());
        // A report is filed only with its receipt in the chain: without it, the period is left to the next run.
        if let Err(e) = self.audit.record(event).await {
            self.db.delete_scheduled_report(&row.id).await?;
            return Err(e.into());
        }
        Ok(())
    }

    /// The stored file of a scheduled report.
    pub async fn file(&self, row: &ScheduledReportRow) -> Result<Vec<u8>, EvidenceError> {
        Ok(self.objects.read(&row.object_key, row.bytes as u64).await?)
    }

    /// Whether a stored report is intact, and is the report its row says (schedule, kind, period, key): a
    /// genuine report of another day filed under this row is refused too.
    pub async fn check(
        &self,
        row: &ScheduledReportRow,
        public_keys: &[Vec<u8>],
    ) -> Result<Check, EvidenceError> {
        let file = match self.file(row).await {
            Ok(f) => f,
            Err(EvidenceError::Archive(ArchiveError::NotFound)) => {
                return Ok(Check::refused("the stored file is missing"));
            }
            Err(e) => return Err(e),
        };
        if hex::encode(sha2::Sha256::digest(&file)) != row.sha256 {
            return Ok(Check::refused(
                "the stored file's SHA-256 is not the one filed when it was made",
            ));
        }
        let v = match signed::verify(&file, public_keys) {
            Ok(v) => v,
            Err(e) => return Ok(Check::refused(&e.to_string())),
        };
        let ts = crate::clock::timestamp;
        let filed = (
            row.schedule.as_str(),
            row.report.as_str(),
            ts(row.period_from),
            ts(row.period_to),
            row.key_id.as_str(),
            row.head_seq,
        );
        let signed = (
            v.schedule.as_str(),
            v.report.as_str(),
            v.from.clone(),
            v.to.clone(),
            v.key_id.as_str(),
            v.chain_head.seq,
        );
        let problem = if filed != signed {
            Some("the file is a genuine report, but not the one filed under this entry".to_string())
        } else if !chain_matches(&self.db, &v.chain_head).await? {
            Some("the chain head it names is not in this audit chain".to_string())
        } else {
            None
        };
        Ok(Check {
            valid: problem.is_none(),
            problem,
            verified: Some(v),
        })
    }
}

/// The zone whose midnight starts a schedule's periods (validated at start; UTC when unset).
pub fn zone(s: &ScheduleConfig) -> TimeZone {
    s.time_zone
        .as_deref()
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC)
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
