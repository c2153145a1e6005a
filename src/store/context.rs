//! The rows around a conversation that its nurse works with: the sealed patient context (name, birth date,
//! reason), who a waiting conversation is offered to right now, the emergency flag on its row, and the sealed
//! wrap-up. Sealed documents are stored as the messaging layer sealed them.

use sqlx::Row;

use super::{Db, StoreError};
use crate::ids::ConversationId;

impl Db {
    pub async fn put_conversation_context(
        &self,
        id: &ConversationId,
        sealed: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversation_context (conversation_id, sealed) VALUES ($1, $2) \
             ON CONFLICT (conversation_id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(sealed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn conversation_context(&self, id: &ConversationId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT sealed FROM conversation_context WHERE conversation_id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Raises an open conversation's priority to `boost` for an emergency, once; `false` if it was already
    /// flagged or is closed.
    pub async fn flag_emergency(&self, id: &ConversationId, boost: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET priority_boost = $1 WHERE id = $2 AND priority_boost < $1 \
             AND state IN ('waiting', 'assigned')",
        )
        .bind(boost)
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The nurse `conversation` is offered to at `now`, if an offer is open and not yet expired.
    pub async fn offered_to(
        &self,
        conversation: &ConversationId,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT nurse FROM routing_offers WHERE conversation_id = $1 AND expires_at > $2")
                .bind(conversation.as_str())
                .bind(now)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

/// A stored wrap-up: who wrote it, when, and the sealed document.
#[derive(Debug, Clone)]
pub struct WrapUpRow {
    pub nurse: String,
    pub sealed: String,
    pub at_ms: i64,
}

impl Db {
    /// Stores a chat's wrap-up once; `false` if it already has one (a clinical note is not overwritten).
    pub async fn put_wrap_up(&self, id: &ConversationId, row: &WrapUpRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO conversation_wrapups (conversation_id, nurse, sealed, at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (conversation_id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(&row.nurse)
        .bind(&row.sealed)
        .bind(row.at_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn wrap_up(&self, id: &ConversationId) -> Result<Option<WrapUpRow>, StoreError> {
        let row =
            sqlx::query("SELECT nurse, sealed, at_ms FROM conversation_wrapups WHERE conversation_id = $1")
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(WrapUpRow {
                nurse: r.try_get(0)?,
                sealed: r.try_get(1)?,
                at_ms: r.try_get(2)?,
            })
        })
        .transpose()
    }
}
