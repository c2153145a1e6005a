//! Pending staff sign-ins between the redirect to the provider and the callback. Kept in the database, not in
//! memory, so the callback may land on any broker node.

use sqlx::Row;

use super::{Db, StoreError};

#[derive(Debug, Clone)]
pub struct LoginRow {
    pub state_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub created_at: i64,
}

impl Db {
    pub async fn insert_login(&self, l: &LoginRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_logins (state_hash, nonce, pkce_verifier, return_to, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&l.state_hash)
        .bind(&l.nonce)
        .bind(&l.pkce_verifier)
        .bind(&l.return_to)
        .bind(l.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Fetches and deletes in one statement: a state value is good for exactly one callback, even when two
    /// callbacks race on different nodes.
    pub async fn take_login(&self, state_hash: &str) -> Result<Option<LoginRow>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state_hash = $1 \
             RETURNING state_hash, nonce, pkce_verifier, return_to, created_at",
        )
        .bind(state_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(LoginRow {
            state_hash: r.try_get(0)?,
            nonce: r.try_get(1)?,
            pkce_verifier: r.try_get(2)?,
            return_to: r.try_get(3)?,
            created_at: r.try_get(4)?,
        }))
    }

    pub async fn purge_logins(&self, older_than: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
            .bind(older_than)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}
