//! Rows of conversations and messages. Appending a message assigns the next per-conversation sequence number
//! and honours the sender's idempotency key in one transaction, so a resend after a crash or a lost
//! acknowledgement never stores a message twice.

use std::collections::HashMap;

use sqlx::any::AnyRow;

use crate::ids::{ConversationId, SubjectId};
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::{Db, StoreError};

/// Appends waiting for the writer; senders wait (back-pressure) when it is full.
const GROUP_COMMIT_QUEUE: usize = 4096;
/// The most appends one transaction takes.
const GROUP_COMMIT_MAX: usize = 512;

type Seal = Box<dyn Fn(i64) -> Result<String, StoreError> + Send + Sync>;

/// A message waiting for the group commit, with the channel its sender waits on.
pub(super) struct PendingAppend {
    conversation_id: ConversationId,
    sender: String,
    sender_role: String,
    idempotency_key: String,
    at_ms: i64,
    seal: Seal,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// The writer: takes whatever appends are waiting (at least one), stores them in one transaction, commits
/// once, then answers every sender. An append that fails on its own (unknown conversation) leaves nothing
/// behind and fails alone; a database error abandons the shared transaction and the batch is retried one
/// append per transaction, so one bad append never fails the others. The writer holds the pool, not the
/// `Db`, so it ends when the last `Db` handle (and with it the queue's sender) is dropped.
async fn group_commit(pool: AnyPool, mut queue: mpsc::Receiver<PendingAppend>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let outcomes = match in_one_transaction(&pool, &batch).await {
            Ok(outcomes) => outcomes,
            // The database itself is unreachable: retrying each append alone would only wait out the same
            // timeout once per append while every conversation queues behind the writer.
            Err(StoreError::Database(e)) if unreachable(&e) => {
                tracing::error!(error = %e, appends = batch.len(), "message group commit failed");
                batch
                    .iter()
                    .map(|_| Err(StoreError::Unavailable("the message could not be committed")))
                    .collect()
            }
            // A statement failed (e.g. another node stored the same idempotency key first): one by one, so
            // the append at fault fails alone.
            Err(e) => {
                tracing::warn!(error = %e, appends = batch.len(), "group commit failed; appending one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for p in &batch {
                    outcomes.push(match in_one_transaction(&pool, std::slice::from_ref(p)).await {
                        Ok(mut one) => one
                            .pop()
                            .expect("one append, one outcome")
                            .map(|o| own_commit(p, o)),
                        Err(e) => Err(e),
                    });
                }
                outcomes
            }
        };
        for (p, outcome) in batch.into_iter().zip(outcomes) {
            let _ = p.reply.send(outcome);
        }
    }
}

fn unreachable(e: &sqlx::Error) -> bool {
    use sqlx::Error::{Database, Io, PoolClosed, PoolTimedOut, WorkerCrashed};
    match e {
        PoolTimedOut | PoolClosed | Io(_) | WorkerCrashed => true,
        // PostgreSQL going down ends its sessions with 57P0x (admin_shutdown, crash_shutdown, cannot_connect_now…)
        // or drops them (class 08, connection exception): the next append would only wait for the pool.
        Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
        _ => false,
    }
}

/// A commit that reported failure may still have taken effect; the retry then finds this very append
/// stored (same time, same key) and must not call it a duplicate, or it would never be delivered.
fn own_commit(p: &PendingAppend, mut o: AppendOutcome) -> AppendOutcome {
    if o.duplicate && o.message.at_ms == p.at_ms && o.message.sender_role == p.sender_role {
        o.duplicate = false;
    }
    o
}

/// Appends `batch` in one transaction with a handful of statements per batch rather than per message (each
/// statement is a round trip to the database's thread; those hand-offs, not the SQL, dominated the profile).
/// The outer error means nothing was committed.
async fn in_one_transaction(
    pool: &AnyPool,
    batch: &[PendingAppend],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let mut tx = pool.begin().await?;
    // A write first, so SQLite takes its write lock at once (a read first could not upgrade to a write
    // after another connection committed; see audit appends).
    sqlx::query("UPDATE conversations SET last_seq = last_seq WHERE id = $1")
        .bind(batch[0].conversation_id.as_str())
        .execute(&mut *tx)
        .await?;
    let stored = stored_duplicates(&mut tx, batch).await?;
    // Decide each append in order; only new messages take a sequence number.
    let mut outcomes: Vec<Result<AppendOutcome, StoreError>> = Vec::with_capacity(batch.len());
    let mut fresh: Vec<MessageRow> = Vec::new();
    let mut fresh_by_key: HashMap<MessageKey, usize> = HashMap::new();
    for p in batch {
        let key = key_of(p);
        if let Some(row) = stored.get(&key) {
            outcomes.push(Ok(AppendOutcome {
                message: row.clone(),
                duplicate: true,
            }));
            continue;
        }
        if let Some(&i) = fresh_by_key.get(&key) {
            // A resend that arrived in the same batch as its original.
            outcomes.push(Ok(AppendOutcome {
                message: fresh[i].clone(),
                duplicate: true,
            }));
            continue;
        }
        let seq: Option<i64> = sqlx::query(
            "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = $1 WHERE id = $2 \
             RETURNING last_seq",
        )
        .bind(p.at_ms)
        .bind(p.conversation_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
        let Some(seq) = seq else {
            outcomes.push(Err(StoreError::Corrupt(
                "message for an unknown conversation".into(),
            )));
            continue;
        };
        // A panic while sealing must not take the writer (and every later append) down with it.
        let sealed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (p.seal)(seq)))
            .unwrap_or_else(|_| Err(StoreError::Corrupt("sealing the message failed".into())));
        match sealed {
            Ok(body) => {
                fresh_by_key.insert(key, fresh.len());
                fresh.push(MessageRow {
                    conversation_id: p.conversation_id.clone(),
                    seq,
                    sender: p.sender.clone(),
                    sender_role: p.sender_role.clone(),
                    idempotency_key: p.idempotency_key.clone(),
                    body,
                    at_ms: p.at_ms,
                });
                outcomes.push(Ok(AppendOutcome {
                    message: fresh[fresh.len() - 1].clone(),
                    duplicate: false,
                }));
            }
            Err(e) => {
                // Give the number back: nothing after it in this conversation has taken one yet.
                sqlx::query("UPDATE conversations SET last_seq = last_seq - 1 WHERE id = $1")
                    .bind(p.conversation_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                outcomes.push(Err(e));
            }
        }
    }
    for rows in fresh.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO messages (conversation_id, seq, sender, sender_role, idempotency_key, body, at_ms) \
             VALUES {}",
            placeholders(rows.len(), 7)
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in rows {
            insert = insert
                .bind(r.conversation_id.as_str())
                .bind(r.seq)
                .bind(&r.sender)
                .bind(&r.sender_role)
                .bind(&r.idempotency_key)
                .bind(&r.body)
                .bind(r.at_ms);
        }
        insert.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Rows per multi-row INSERT (7 parameters each, well under either database's parameter limit).
const INSERT_ROWS: usize = 256;

/// `($1, $2), ($3, $4)` for `rows` rows of `width` parameters.
fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// (conversation, sender, idempotency key), borrowed from the batch.
type MessageKey<'a> = (&'a str, &'a str, &'a str);

fn key_of(p: &PendingAppend) -> MessageKey<'_> {
    (
        p.conversation_id.as_str(),
        p.sender.as_str(),
        p.idempotency_key.as_str(),
    )
}

/// Messages already stored under any of the batch's idempotency keys, in one query.
async fn stored_duplicates<'a>(
    conn: &mut AnyConnection,
    batch: &'a [PendingAppend],
) -> Result<HashMap<MessageKey<'a>, MessageRow>, StoreError> {
    let keys: Vec<MessageKey<'a>> = batch.iter().map(key_of).collect();
    let mut found = HashMap::new();
    for part in batch.chunks(INSERT_ROWS) {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE (conversation_id, sender, idempotency_key) IN (VALUES {})",
            placeholders(part.len(), 3)
        );
        let mut select = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in part {
            select = select
                .bind(p.conversation_id.as_str())
                .bind(&p.sender)
                .bind(&p.idempotency_key);
        }
        for r in select.fetch_all(&mut *conn).await? {
            let m = message(&r)?;
            let stored = (
                m.conversation_id.as_str(),
                m.sender.as_str(),
                m.idempotency_key.as_str(),
            );
            // Resends are rare, so a scan of the batch finds the key to file the row under.
            let key = keys.iter().copied().find(|k| *k == stored);
            if let Some(key) = key {
                found.insert(key, m);
            }
        }
    }
    Ok(found)
}

/// Where a conversation is in its life, stored as its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    /// In a queue, no nurse yet.
    Waiting,
    /// A nurse accepted it.
    Assigned,
    /// Ended (by either side, idle expiry, or the chat's end).
    Closed,
    /// Ended by the patient asking to be called back instead of waiting longer.
    Callback,
    /// The patient left the waiting room and did not come back within the grace.
    Abandoned,
}

impl ConversationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Assigned => "assigned",
            Self::Closed => "closed",
            Self::Callback => "callback",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [
            Self::Waiting,
            Self::Assigned,
            Self::Closed,
            Self::Callback,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }

    /// Still open: waiting or with a nurse.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Waiting | Self::Assigned)
    }
}

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub reference: String,
    pub queue: String,
    /// The patient's subject: never printed.
    pub patient: SubjectId,
    pub start_key: String,
    pub nurse: Option<SubjectId>,
    pub state: ConversationState,
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
    pub conversation_id: ConversationId,
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
        id: ConversationId::new(r.try_get::<String, _>(0)?),
        reference: r.try_get(1)?,
        queue: r.try_get(2)?,
        patient: SubjectId::new(r.try_get::<String, _>(3)?),
        start_key: r.try_get(4)?,
        nurse: r.try_get::<Option<String>, _>(5)?.map(SubjectId::new),
        state: {
            let word: String = r.try_get(6)?;
            ConversationState::parse(&word)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown conversation state `{word}`").into()))?
        },
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
        conversation_id: ConversationId::new(r.try_get::<String, _>(0)?),
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
        .bind(c.id.as_str())
        .bind(&c.reference)
        .bind(&c.queue)
        .bind(c.patient.as_str())
        .bind(&c.start_key)
        .bind(c.nurse.as_ref().map(|n| n.as_str().to_string()))
        .bind(c.state.as_str())
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
            .bind(c.patient.as_str())
            .bind(&c.start_key)
            .fetch_one(self.pool())
            .await?;
        Ok(conversation(&r)?)
    }

    pub async fn conversation(&self, id: &ConversationId) -> Result<Option<ConversationRow>, StoreError> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
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

    /// Whether a subject has a conversation waiting in a queue (which keeps their session alive without a socket).
    pub async fn is_waiting(&self, patient: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("SELECT 1 FROM conversations WHERE patient = $1 AND state = 'waiting' LIMIT 1")
            .bind(patient)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.is_some())
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
    pub async fn assign_conversation(
        &self,
        id: &ConversationId,
        nurse: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE conversations SET nurse = $1, state = 'assigned', assigned_at = $2, last_activity_at = $2 \
             WHERE id = $3 AND state = 'waiting'",
        )
        .bind(nurse)
        .bind(now)
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends a conversation (`closed`, or `callback` when the patient asked to be called back).
    pub async fn close_conversation(
        &self,
        id: &ConversationId,
        state: ConversationState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE conversations SET state = $1, closed_at = $2 WHERE id = $3 AND state IN ('waiting', 'assigned')",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Appends a message. `seal(seq)` encrypts the body for its final sequence number (bound as associated
    /// data). A resend with the same `(sender, idempotency_key)` returns the stored message instead. Returns
    /// once the message is durable: appends that arrive together share one transaction and one commit (group
    /// commit), since the commit's sync to disk, not the statements, is what limits a chat's throughput.
    pub async fn append_message(
        &self,
        conversation_id: &ConversationId,
        sender: &str,
        sender_role: &str,
        idempotency_key: &str,
        at_ms: i64,
        seal: impl Fn(i64) -> Result<String, StoreError> + Send + Sync + 'static,
    ) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = PendingAppend {
            conversation_id: conversation_id.clone(),
            sender: sender.to_string(),
            sender_role: sender_role.to_string(),
            idempotency_key: idempotency_key.to_string(),
            at_ms,
            seal: Box::new(seal),
            reply,
        };
        let appender = self.appender.get_or_init(|| {
            let (tx, rx) = mpsc::channel(GROUP_COMMIT_QUEUE);
            tokio::spawn(group_commit(self.pool().clone(), rx));
            tx
        });
        appender
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("the message writer stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the message writer stopped"))?
    }

    pub async fn messages_after(
        &self,
        conversation_id: &ConversationId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(conversation_id.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(message).collect::<Result<_, _>>()?)
    }
}
