//! Rows of conversations and messages. Appending a message assigns the next per-conversation sequence number
//! and honours the sender's idempotency key in one transaction, so a resend after a crash or a lost
//! acknowledgement never stores a message twice.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreError};

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: String,
    pub reference: String,
    pub queue: String,
    pub patient: String,
    pub start_key: String,
    pub nurse: Option<String>,
    pub state: String,
    pub priority_boost: i64,
    pub kek_id: String,
    pub wrapped_key: String,
    pub last_seq: i64,
    pub enqueued_at: i64,
    pub assigned_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub last_activity_at: i64,
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub conversation_id: String,
    pub seq: i64,
    pub sender: String,
    pub sender_role: String,
    pub idempotency_key: String,
    pub body: String,
    pub at_ms: i64,
}

/// Result of an append: the stored row, and whether it already existed (a resend).
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub message: MessageRow,
    pub duplicate: bool,
}

const CONVERSATION_COLUMNS: &str = "id, reference, queue, patient, start_key, nurse, state, priority_boost, \
     kek_id, wrapped_key, last_seq, enqueued_at, assigned_at, closed_at, last_activity_at";
const MESSAGE_COLUMNS: &str = "conversation_id, seq, sender, sender_role, idempotency_key, body, at_ms";

fn conversation(r: &AnyRow) -> Result<ConversationRow, sqlx::Error> {
    Ok(ConversationRow {
        id: r.try_get(0)?,
        reference: r.try_get(1)?,
        queue: r.try_get(2)?,
        patient: r.try_get(3)?,
        start_key: r.try_get(4)?,
        nurse: r.try_get(5)?,
        state: r.try_get(6)?,
        priority_boost: r.try_get(7)?,
        kek_id: r.try_get(8)?,
        wrapped_key: r.try_get(9)?,
        last_seq: r.try_get(10)?,
        enqueued_at: r.try_get(11)?,
        assigned_at: r.try_get(12)?,
        closed_at: r.try_get(13)?,
        last_activity_at: r.try_get(14)?,
    })
}

fn message(r: &AnyRow) -> Result<MessageRow, sqlx::Error> {
    Ok(MessageRow {
        conversation_id: r.try_get(0)?,
        seq: r.try_get(1)?,
        sender: r.try_get(2)?,
        sender_role: r.try_get(3)?,
        idempotency_key: r.try_get(4)?,
        body: r.try_get(5)?,
        at_ms: r.try_get(6)?,
    })
}

impl Db {
    /// Creates the conversation unless this patient already started one with the same key; returns the row
    /// that exists afterwards either way.
    pub async fn create_conversation(&self, c: &ConversationRow) -> Result<ConversationRow, StoreError> {
        sqlx::query(
            "INSERT INTO conversations (id, reference, queue, patient, start_key, nurse, state, priority_boost, \
             kek_id, wrapped_key, last_seq, enqueued_at, assigned_at, closed_at, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (patient, start_key) DO NOTHING",
        )
        .bind(&c.id)
        .bind(&c.reference)
        .bind(&c.queue)
        .bind(&c.patient)
        .bind(&c.start_key)
        .bind(&c.nurse)
        .bind(&c.state)
        .bind(c.priority_boost)
        .bind(&c.kek_id)
        .bind(&c.wrapped_key)
        .bind(c.last_seq)
        .bind(c.enqueued_at)
        .bind(c.assigned_at)
        .bind(c.closed_at)
        .bind(c.last_activity_at)
        .execute(self.pool())
        .await?;
        let sql =
            format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE patient = $1 AND start_key = $2");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&c.patient)
            .bind(&c.start_key)
            .fetch_one(self.pool())
            .await?;
        Ok(conversation(&r)?)
    }

    pub async fn conversation(&self, id: &str) -> Result<Option<ConversationRow>, StoreError> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.as_ref().map(conversation).transpose()?)
    }

    /// Conversations not closed, oldest first (to rebuild the waiting room after a restart).
    pub async fn open_conversations(&self) -> Result<Vec<ConversationRow>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE state IN ('waiting', 'assigned') ORDER BY enqueued_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(conversation).collect::<Result<_, _>>()?)
    }

    /// Open conversations of one patient or one nurse.
    pub async fn open_conversations_of(&self, subject: &str) -> Result<Vec<ConversationRow>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE state IN ('waiting', 'assigned') \
             AND (patient = $1 OR nurse = $1) ORDER BY enqueued_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(subject)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(conversation).collect::<Result<_, _>>()?)
    }

    /// Assigned conversations with no message since `before` (idle-expiry candidates).
    pub async fn quiet_conversations(&self, before: i64) -> Result<Vec<ConversationRow>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE state = 'assigned' AND last_activity_at < $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(conversation).collect::<Result<_, _>>()?)
    }

    /// Recent handle times (assigned → closed, ms) of a queue, newest first.
    pub async fn recent_handle_times(&self, queue: &str, limit: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT closed_at - assigned_at FROM conversations WHERE queue = $1 AND state = 'closed' \
             AND assigned_at IS NOT NULL AND closed_at IS NOT NULL ORDER BY closed_at DESC LIMIT $2",
        )
        .bind(queue)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?)
    }

    /// Moves a waiting conversation to its nurse; false if it was no longer waiting.
    pub async fn assign_conversation(&self, id: &str, nurse: &str, now: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE conversations SET nurse = $1, state = 'assigned', assigned_at = $2, last_activity_at = $2 \
             WHERE id = $3 AND state = 'waiting'",
        )
        .bind(nurse)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a conversation (`closed`, or `callback` when the patient asked to be called back).
    pub async fn close_conversation(&self, id: &str, state: &str, now: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE conversations SET state = $1, closed_at = $2 WHERE id = $3 AND state IN ('waiting', 'assigned')",
        )
        .bind(state)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn boost_conversation(&self, id: &str, boost: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE conversations SET priority_boost = $1 WHERE id = $2")
            .bind(boost)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Appends a message. `seal(seq)` encrypts the body for its final sequence number (bound as associated
    /// data). A resend with the same `(sender, idempotency_key)` returns the stored message instead.
    pub async fn append_message(
        &self,
        conversation_id: &str,
        sender: &str,
        sender_role: &str,
        idempotency_key: &str,
        at_ms: i64,
        seal: impl FnOnce(i64) -> Result<String, StoreError>,
    ) -> Result<AppendOutcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        // The write comes first so SQLite takes its write lock at once (see audit appends).
        let seq: i64 = sqlx::query(
            "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = $1 WHERE id = $2 \
             RETURNING last_seq",
        )
        .bind(at_ms)
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Corrupt("message for an unknown conversation".into()))?
        .try_get(0)?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND sender = $2 AND idempotency_key = $3"
        );
        let existing = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(conversation_id)
            .bind(sender)
            .bind(idempotency_key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = existing {
            tx.rollback().await?;
            return Ok(AppendOutcome {
                message: message(&r)?,
                duplicate: true,
            });
        }
        let row = MessageRow {
            conversation_id: conversation_id.to_string(),
            seq,
            sender: sender.to_string(),
            sender_role: sender_role.to_string(),
            idempotency_key: idempotency_key.to_string(),
            body: seal(seq)?,
            at_ms,
        };
        sqlx::query(
            "INSERT INTO messages (conversation_id, seq, sender, sender_role, idempotency_key, body, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.conversation_id)
        .bind(row.seq)
        .bind(&row.sender)
        .bind(&row.sender_role)
        .bind(&row.idempotency_key)
        .bind(&row.body)
        .bind(row.at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AppendOutcome {
            message: row,
            duplicate: false,
        })
    }

    pub async fn messages_after(
        &self,
        conversation_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(conversation_id)
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
    }
}
