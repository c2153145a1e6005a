//! Rows the retention sweep removes, other than recordings: a closed chat's messages and context, its wrap-up,
//! its conversation record (which holds its wrapped data key), and visit records with their classification.
//! Nothing a recording still needs: while any recording of a chat's visits is kept (or on legal hold) the chat,
//! its wrap-up and its visits stay.

use sqlx::Row;

use super::{Db, StoreError};

/// No recording of any visit of conversation `c` is on legal hold or still kept (`c` names the conversation id
/// column): a chat goes only after its recordings, which a reviewer reads beside it.
fn not_held(c: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM visit_classifications hv JOIN recordings hr ON hr.visit_id = hv.visit_id \
         WHERE hv.conversation_id = {c} AND (hr.legal_hold <> 0 OR hr.state <> 'deleted'))"
    )
}

/// What one sweep removed of a conversation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConversationShred {
    pub messages: u64,
    pub context: bool,
    pub wrap_up: bool,
    /// The conversation record and its data key.
    pub record: bool,
}

impl Db {
    /// Closed conversations whose messages and context are due (closed before `closed_before`), not held, and
    /// conversations whose wrap-up is due (saved before `wrap_up_before`): their ids, each once.
    pub async fn conversations_due(
        &self,
        closed_before: i64,
        wrap_up_before: i64,
    ) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT c.id FROM conversations c WHERE c.closed_at IS NOT NULL AND c.closed_at < $1 AND {held} \
             UNION SELECT w.conversation_id FROM conversation_wrapups w WHERE w.at_ms < $2 AND {wheld} \
             ORDER BY 1",
            held = not_held("c.id"),
            wheld = not_held("w.conversation_id"),
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(closed_before)
            .bind(wrap_up_before)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Removes what is due of one conversation (see [`Db::conversations_due`]); the record and its key only
    /// once its messages are due and no wrap-up remains. Idempotent: a second run removes nothing. With
    /// `dry_run` the same work is done and rolled back: what it says would go is exactly what would.
    pub async fn shred_conversation(
        &self,
        id: &str,
        closed_before: i64,
        wrap_up_before: i64,
        dry_run: bool,
    ) -> Result<ConversationShred, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Again inside the transaction: a hold set since the conversation was found keeps it.
        let held = format!(
            "SELECT id FROM conversations WHERE id = $1 AND NOT {}",
            not_held("$1")
        );
        let held: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(held))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if held.is_some() {
            return Ok(ConversationShred::default());
        }
        let closed: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT closed_at FROM conversations WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let chat_due = closed.and_then(|c| c.0).is_some_and(|at| at < closed_before);
        let mut out = ConversationShred::default();
        if chat_due {
            out.messages = sqlx::query("DELETE FROM messages WHERE conversation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.context = sqlx::query("DELETE FROM conversation_context WHERE conversation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        }
        out.wrap_up =
            sqlx::query("DELETE FROM conversation_wrapups WHERE conversation_id = $1 AND at_ms < $2")
                .bind(id)
                .bind(wrap_up_before)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        if chat_due {
            out.record = sqlx::query(
                "DELETE FROM conversations WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM conversation_wrapups w WHERE w.conversation_id = $1)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(out)
    }

    /// Visit records (with their classification) ended before `before`, none of whose recordings remains
    /// undeleted, and not held: their ids.
    pub async fn visits_due(&self, before: i64) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT v.visit_id FROM visit_classifications v WHERE v.ended_at IS NOT NULL AND v.ended_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.visit_id = v.visit_id AND r.state <> 'deleted') \
             AND {held} ORDER BY 1",
            held = not_held("v.conversation_id"),
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    pub async fn delete_visit_record(&self, visit_id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("DELETE FROM visit_classifications WHERE visit_id = $1")
                .bind(visit_id)
                .execute(self.pool())
                .await?
                .rows_affected()
                > 0,
        )
    }
}
