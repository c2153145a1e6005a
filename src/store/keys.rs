//! Wrapped data keys, as key rotation sees them: every conversation's key and every recording's key and spool
//! key, under the id of the key-encryption key (KEK) that wraps it. Replacing one is conditional on the row
//! still holding what was read, so a rotation can run beside live brokers. Also the SQLite online backup.

use sqlx::Row;

use super::{Backend, Db, StoreError};

/// Where a wrapped key lives: the table and the pair of columns holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WrappedKeyKind {
    Conversation,
    Recording,
    RecordingSpool,
}

impl WrappedKeyKind {
    pub const ALL: [WrappedKeyKind; 3] = [Self::Conversation, Self::Recording, Self::RecordingSpool];

    fn columns(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Conversation => ("conversations", "kek_id", "wrapped_key"),
            Self::Recording => ("recordings", "kek_id", "wrapped_key"),
            Self::RecordingSpool => ("recordings", "spool_kek_id", "spool_wrapped_key"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Conversation => "conversation keys",
            Self::Recording => "recording keys",
            Self::RecordingSpool => "recording spool keys",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKeyRow {
    pub kind: WrappedKeyKind,
    /// The conversation's or recording's id (the wrap's associated data is derived from it).
    pub id: String,
    pub kek_id: String,
    pub wrapped: String,
}

impl Db {
    /// How many data keys each KEK wraps, per kind (rows whose key was destroyed by retention are not counted).
    pub async fn wrapped_key_counts(&self) -> Result<Vec<(WrappedKeyKind, String, i64)>, StoreError> {
        let mut out = Vec::new();
        for kind in WrappedKeyKind::ALL {
            let (table, kek, wrapped) = kind.columns();
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {kek} AS kek, COUNT(*) AS n FROM {table} WHERE {wrapped} <> '' GROUP BY {kek} ORDER BY {kek}"
            )))
            .fetch_all(self.pool())
            .await?;
            for r in rows {
                out.push((kind, r.try_get("kek")?, r.try_get("n")?));
            }
        }
        Ok(out)
    }

    /// Up to `limit` keys of `kind` not wrapped by `current`, after `after_id` in id order (a rotation pages
    /// through them; rows rewrapped meanwhile drop out of the next page by themselves).
    pub async fn keys_not_under(
        &self,
        kind: WrappedKeyKind,
        current: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<WrappedKeyRow>, StoreError> {
        let (table, kek, wrapped) = kind.columns();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, {kek} AS kek, {wrapped} AS wrapped FROM {table} \
             WHERE {kek} <> $1 AND {wrapped} <> '' AND id > $2 ORDER BY id LIMIT $3"
        )))
        .bind(current)
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WrappedKeyRow {
                    kind,
                    id: r.try_get("id")?,
                    kek_id: r.try_get("kek")?,
                    wrapped: r.try_get("wrapped")?,
                })
            })
            .collect()
    }

    /// Replaces one wrapped key if the row still holds `old`; false when it changed meanwhile.
    pub async fn replace_wrapped_key(
        &self,
        old: &WrappedKeyRow,
        kek_id: &str,
        wrapped: &str,
    ) -> Result<bool, StoreError> {
        let (table, kek, col) = old.kind.columns();
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET {kek} = $1, {col} = $2 WHERE id = $3 AND {kek} = $4 AND {col} = $5"
        )))
        .bind(kek_id)
        .bind(wrapped)
        .bind(&old.id)
        .bind(&old.kek_id)
        .bind(&old.wrapped)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A consistent copy of a SQLite database into `path` (a new file) while brokers keep writing.
    pub async fn backup_sqlite(&self, path: &std::path::Path) -> Result<(), StoreError> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::Unsupported(
                "online backup is for SQLite; back up PostgreSQL with pg_dump or its own tools",
            ));
        }
        let target = path
            .to_str()
            .ok_or(StoreError::Unsupported("a backup path that is not UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
