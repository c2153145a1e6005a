//! Rows of server-side sessions. Only a hash of the bearer secret is stored.

use sqlx::Row;

use super::{Db, StoreError};

/// `Debug` leaves out the name and birth date (PII and PHI; the row type is the store's, without `Pii<T>`).
#[derive(Clone)]
pub struct SessionRow {
    pub id: String,
    pub token_hash: String,
    pub kind: String,
    pub subject: String,
    pub roles: String,
    pub skills: String,
    pub display_name: Option<String>,
    pub birthdate: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_timeout_ms: Option<i64>,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("roles", &self.roles)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A staff member signed in now (see [`Db::signed_in_staff`]).
#[derive(Clone, Debug)]
pub struct StaffSignedIn {
    pub subject: String,
    pub display_name: Option<String>,
    pub roles: String,
    pub skills: String,
}

impl Db {
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, kind, subject, roles, display_name, created_at, \
             last_seen_at, idle_timeout_ms, expires_at, revoked_at, skills, birthdate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&s.id)
        .bind(&s.token_hash)
        .bind(&s.kind)
        .bind(&s.subject)
        .bind(&s.roles)
        .bind(&s.display_name)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.idle_timeout_ms)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .bind(&s.skills)
        .bind(&s.birthdate)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, token_hash, kind, subject, roles, display_name, created_at, last_seen_at, \
             idle_timeout_ms, expires_at, revoked_at, skills, birthdate FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id: r.try_get(0)?,
                token_hash: r.try_get(1)?,
                kind: r.try_get(2)?,
                subject: r.try_get(3)?,
                roles: r.try_get(4)?,
                display_name: r.try_get(5)?,
                created_at: r.try_get(6)?,
                last_seen_at: r.try_get(7)?,
                idle_timeout_ms: r.try_get(8)?,
                expires_at: r.try_get(9)?,
                revoked_at: r.try_get(10)?,
                skills: r.try_get(11)?,
                birthdate: r.try_get(12)?,
            })
        })
        .transpose()
    }

    /// Ids of one subject's sessions of `kind` that are neither revoked nor expired, newest first. Idle ones
    /// count too: a patient waiting in a queue may still use one, and the oldest go first when over a cap.
    pub async fn live_session_ids(
        &self,
        kind: &str,
        subject: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM sessions WHERE kind = $1 AND subject = $2 AND revoked_at IS NULL AND expires_at > $3 \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(kind)
        .bind(subject)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    /// Ends a subject's break-glass grants (their access was revoked).
    pub async fn expire_break_glass_of(&self, subject: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE break_glass_grants SET expires_at = $1 WHERE subject = $2 AND expires_at > $1")
            .bind(now)
            .bind(subject)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Revokes every live session of a subject (an administrator's revoke); returns the ids revoked.
    pub async fn revoke_sessions_of(&self, subject: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING id",
        )
        .bind(now)
        .bind(subject)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    /// Records a break-glass grant.
    pub async fn insert_break_glass(
        &self,
        id: &str,
        subject: &str,
        resource: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO break_glass_grants (id, subject, resource, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(subject)
        .bind(resource)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Subjects holding a live break-glass grant for `resource` (`kind:id`).
    pub async fn break_glass_holders(&self, resource: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT subject FROM break_glass_grants WHERE resource = $1 AND expires_at > $2",
        )
        .bind(resource)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }

    /// Sessions revoked after `after_ms` (any node, any process: the command line's revocations too), with when.
    pub async fn revoked_since(&self, after_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT id, revoked_at FROM sessions WHERE revoked_at > $1 ORDER BY revoked_at")
                .bind(after_ms)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Staff signed in now (a session neither revoked, expired nor idle past its limit), each subject once with
    /// their newest session's name, roles and skills, as stored (space-separated).
    pub async fn signed_in_staff(&self, now: i64) -> Result<Vec<StaffSignedIn>, StoreError> {
        let rows = sqlx::query(
            "SELECT subject, display_name, roles, skills FROM sessions WHERE kind = 'staff' \
             AND revoked_at IS NULL AND expires_at > $1 \
             AND (idle_timeout_ms IS NULL OR last_seen_at + idle_timeout_ms > $1) \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<StaffSignedIn> = Vec::new();
        for r in rows {
            let subject: String = r.try_get(0)?;
            if out.iter().any(|s| s.subject == subject) {
                continue;
            }
            out.push(StaffSignedIn {
                subject,
                display_name: r.try_get(1)?,
                roles: r.try_get(2)?,
                skills: r.try_get(3)?,
            });
        }
        Ok(out)
    }

    pub async fn touch_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn revoke_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes sessions that ended more than `grace_ms` ago; returns how many.
    pub async fn purge_sessions(&self, now: i64, grace_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(now - grace_ms)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}
