//! Visit classification rows: the flags of each video visit, upserted as the visit moves on.

use super::{Db, StoreError};
use crate::visit::classification::Classification;

impl Db {
    pub async fn save_classification(
        &self,
        visit_id: &str,
        c: &Classification,
        created_at: i64,
        ended_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO visit_classifications (visit_id, conversation_id, queue, interaction_type, consent, \
             consent_captured, recording_status, data_classification, recording_id, created_at, ended_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (visit_id) DO UPDATE SET consent = excluded.consent, \
             consent_captured = excluded.consent_captured, recording_status = excluded.recording_status, \
             data_classification = excluded.data_classification, recording_id = excluded.recording_id, \
             ended_at = excluded.ended_at",
        )
        .bind(visit_id)
        .bind(&c.conversation)
        .bind(&c.queue)
        .bind(c.interaction_type)
        .bind(word(&c.consent))
        .bind(i64::from(c.consent_captured))
        .bind(word(&c.recording_status))
        .bind(c.data_classification)
        .bind(c.recording.as_deref())
        .bind(created_at)
        .bind(ended_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// A flag enum as the word it serialises to.
fn word<T: serde::Serialize>(flag: &T) -> String {
    serde_json::to_value(flag)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
