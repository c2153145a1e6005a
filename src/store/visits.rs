//! Classification rows: the flags of each video visit, upserted as the visit moves on, and the agent-authorization
//! flag of each chat (set as nurses accept it).

use super::{Db, StoreError};

impl Db {
    pub async fn save_classification(
        &self,
        visit_id: &str,
        c: &ClassificationRow,
        created_at: i64,
        ended_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO visit_classifications (visit_id, conversation_id, queue, interaction_type, consent, \
             consent_captured, recording_status, data_classification, recording_id, created_at, ended_at, agent_authorized) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (visit_id) DO UPDATE SET consent = excluded.consent, \
             consent_captured = excluded.consent_captured, recording_status = excluded.recording_status, \
             data_classification = excluded.data_classification, recording_id = excluded.recording_id, \
             ended_at = excluded.ended_at",
        )
        .bind(visit_id)
        .bind(&c.conversation)
        .bind(&c.queue)
        .bind(&c.interaction_type)
        .bind(&c.consent)
        .bind(i64::from(c.consent_captured))
        .bind(&c.recording_status)
        .bind(&c.data_classification)
        .bind(c.recording.as_deref())
        .bind(created_at)
        .bind(ended_at)
        .bind(c.agent_authorized.map(i64::from))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The conversation a visit was elevated from.
    pub async fn conversation_of_visit(&self, visit_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT conversation_id FROM visit_classifications WHERE visit_id = $1")
                .bind(visit_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// A nurse accepted the chat: it stays authorized only while every nurse who accepted it was.
    pub async fn note_acceptance(&self, conversation: &str, authorized: bool) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE conversations SET agent_authorized = CASE WHEN agent_authorized = 0 THEN 0 ELSE $1 END \
             WHERE id = $2",
        )
        .bind(i64::from(authorized))
        .bind(conversation)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether the nurses who accepted the chat were authorized (`None`: no nurse accepted it).
    pub async fn agent_authorized(&self, conversation: &str) -> Result<Option<bool>, StoreError> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT agent_authorized FROM conversations WHERE id = $1")
                .bind(conversation)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.and_then(|r| r.0).map(|a| a != 0))
    }

    /// How many video visits were proposed in a chat.
    pub async fn visits_in_conversation(&self, conversation: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM visit_classifications WHERE conversation_id = $1")
                .bind(conversation)
                .fetch_one(self.pool())
                .await?;
        Ok(n)
    }
}

/// One visit's classification flags as stored (words, never identifiers of people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassificationRow {
    pub conversation: String,
    pub queue: String,
    pub interaction_type: String,
    pub consent: String,
    pub consent_captured: bool,
    pub recording_status: String,
    pub data_classification: String,
    pub recording: Option<String>,
    /// The agent-authorization flag (`None` where no nurse accepted the chat).
    pub agent_authorized: Option<bool>,
}
