//! Rows of the audit chain. Appending reads and moves the head in one transaction; on PostgreSQL the head row
//! is locked (`FOR UPDATE`) so several broker nodes append one after another.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, StoreError};
use crate::role::Role;

/// How an audited act ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Denied];

    /// The outcome a stored word names.
    pub fn parse(word: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == word)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub request_id: String,
    pub actor: String,
    pub role: Role,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
    pub reason: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

const COLUMNS: &str =
    "seq, at_ms, request_id, actor, role, action, resource, outcome, reason, prev_hash, hash";

/// A stored word that names no known value: the row was written by something other than the broker.
fn unknown(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("audit {column} `{value}` is not one the broker writes").into())
}

fn row_to_audit(r: &AnyRow) -> Result<AuditRow, sqlx::Error> {
    let role: String = r.try_get(4)?;
    let outcome: String = r.try_get(7)?;
    Ok(AuditRow {
        seq: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        request_id: r.try_get(2)?,
        actor: r.try_get(3)?,
        role: role.parse().map_err(|_| unknown("role", &role))?,
        action: r.try_get(5)?,
        resource: r.try_get(6)?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| unknown("outcome", &outcome))?,
        reason: r.try_get(8)?,
        prev_hash: r.try_get(9)?,
        hash: r.try_get(10)?,
    })
}

impl Db {
    /// Appends one event. `build` receives the current head and returns the complete row to insert (it computes
    /// the hash); it runs inside the transaction that holds the head.
    pub async fn append_audit(
        &self,
        build: impl FnOnce(&AuditHead) -> AuditRow,
    ) -> Result<AuditRow, StoreError> {
        let mut tx = self.pool().begin().await?;
        if self.backend() == Backend::Sqlite {
            // Take SQLite's write lock first: a deferred transaction that reads and then writes fails with
            // SQLITE_BUSY instead of waiting when another connection committed in between.
            sqlx::query("UPDATE audit_head SET id = id WHERE id = 1")
                .execute(&mut *tx)
                .await?;
        }
        let head_sql = match self.backend() {
            Backend::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            Backend::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
        };
        let r = sqlx::query(head_sql).fetch_one(&mut *tx).await?;
        let head = AuditHead {
            seq: r.try_get(0)?,
            hash: r.try_get(1)?,
        };
        let row = build(&head);
        sqlx::query(
            "INSERT INTO audit_events (seq, at_ms, request_id, actor, role, action, resource, outcome, \
             reason, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(row.seq)
        .bind(row.at_ms)
        .bind(&row.request_id)
        .bind(&row.actor)
        .bind(row.role.as_str())
        .bind(&row.action)
        .bind(&row.resource)
        .bind(row.outcome.as_str())
        .bind(&row.reason)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3")
            .bind(row.seq)
            .bind(&row.hash)
            .bind(head.seq)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() != 1 {
            return Err(StoreError::Corrupt("audit head moved during append".into()));
        }
        tx.commit().await?;
        Ok(row)
    }

    pub async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(AuditHead {
            seq: r.try_get(0)?,
            hash: r.try_get(1)?,
        })
    }

    /// Events with `seq > after`, oldest first, at most `limit`.
    pub async fn audit_events(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row_to_audit).collect::<Result<_, _>>()?)
    }

    /// Every event at or after `at_ms`, oldest first (the alert check's window).
    pub async fn audit_events_since(&self, at_ms: i64) -> Result<Vec<AuditRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE at_ms >= $1 ORDER BY seq");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at_ms)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row_to_audit).collect::<Result<_, _>>()?)
    }

    /// The alerts raised at or after `at_ms`, oldest first.
    pub async fn alert_events_since(&self, at_ms: i64) -> Result<Vec<AuditRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE at_ms >= $1 AND action LIKE 'alert.%' ORDER BY seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at_ms)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row_to_audit).collect::<Result<_, _>>()?)
    }

    /// Every event about one resource, oldest first (a recording's access history).
    pub async fn audit_events_for(&self, resource: &str, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE resource = $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row_to_audit).collect::<Result<_, _>>()?)
    }

    pub async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, head_hash, at_ms, key_id, signature) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.seq)
        .bind(&c.head_hash)
        .bind(c.at_ms)
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, head_hash, at_ms, key_id, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    seq: r.try_get("seq")?,
                    head_hash: r.try_get("head_hash")?,
                    at_ms: r.try_get("at_ms")?,
                    key_id: r.try_get("key_id")?,
                    signature: r.try_get("signature")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The last event a SIEM webhook has acknowledged (0 before the first).
    /// The newest signed checkpoint: (seq, at_ms).
    pub async fn last_checkpoint(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let r = sqlx::query("SELECT seq, at_ms FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(match r {
            Some(r) => Some((r.try_get("seq")?, r.try_get("at_ms")?)),
            None => None,
        })
    }

    pub async fn siem_cursor(&self, name: &str) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT last_seq FROM siem_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(0))
    }

    pub async fn set_siem_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO siem_cursors (name, last_seq) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET last_seq = excluded.last_seq",
        )
        .bind(name)
        .bind(seq)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// A signed chain head as stored: `audit::checkpoint` signs and verifies it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub head_hash: String,
    pub at_ms: i64,
    /// The first 16 hex digits of the public key's SHA-256, so a verifier knows which key to use.
    pub key_id: String,
    pub signature: String,
}
