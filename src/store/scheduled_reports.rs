//! The index of scheduled reports: where each stored file is, its digest, and which schedule and period it
//! covers (one per schedule and period). The files themselves are in the object store.

use super::{Db, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduledReportRow {
    pub id: String,
    pub schedule: String,
    pub report: String,
    pub period_from: i64,
    pub period_to: i64,
    pub executed_at: i64,
    pub head_seq: i64,
    pub object_key: String,
    pub sha256: String,
    pub bytes: i64,
    pub key_id: String,
}

type Tuple = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    String,
);

fn row(t: Tuple) -> ScheduledReportRow {
    let (
        id,
        schedule,
        report,
        period_from,
        period_to,
        executed_at,
        head_seq,
        object_key,
        sha256,
        bytes,
        key_id,
    ) = t;
    ScheduledReportRow {
        id,
        schedule,
        report,
        period_from,
        period_to,
        executed_at,
        head_seq,
        object_key,
        sha256,
        bytes,
        key_id,
    }
}

const COLUMNS: &str =
    "id, schedule, report, period_from, period_to, executed_at, head_seq, object_key, sha256, bytes, key_id";

impl Db {
    /// The end of the latest period a schedule has a report for.
    pub async fn last_scheduled_period(&self, schedule: &str) -> Result<Option<i64>, StoreError> {
        let r: (Option<i64>,) =
            sqlx::query_as("SELECT MAX(period_to) FROM scheduled_reports WHERE schedule = $1")
                .bind(schedule)
                .fetch_one(self.pool())
                .await?;
        Ok(r.0)
    }

    /// Files a stored report; `false` when the schedule already has one for that period.
    pub async fn insert_scheduled_report(&self, r: &ScheduledReportRow) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO scheduled_reports ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (schedule, period_from) DO NOTHING"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&r.id)
            .bind(&r.schedule)
            .bind(&r.report)
            .bind(r.period_from)
            .bind(r.period_to)
            .bind(r.executed_at)
            .bind(r.head_seq)
            .bind(&r.object_key)
            .bind(&r.sha256)
            .bind(r.bytes)
            .bind(&r.key_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Unfiles a report whose receipt could not enter the audit chain (its period is produced again).
    pub async fn delete_scheduled_report(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM scheduled_reports WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The newest scheduled reports first.
    pub async fn scheduled_reports(&self, limit: i64) -> Result<Vec<ScheduledReportRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM scheduled_reports ORDER BY executed_at DESC, id LIMIT $1");
        let rows: Vec<Tuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    pub async fn scheduled_report(&self, id: &str) -> Result<Option<ScheduledReportRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM scheduled_reports WHERE id = $1");
        let r: Option<Tuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(row))
    }

    /// The hash of the chain's event `seq`, to check a report's stated head.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>, StoreError> {
        let r: Option<(String,)> = sqlx::query_as("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(seq)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.0))
    }
}
