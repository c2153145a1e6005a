//! Recording segments: the sealed pieces of a recording part, each its own object, uploaded as it closes. A
//! row is written when the segment is sealed in the outbox and marked stored once the object store has it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    /// The part (`recordings.id`) it belongs to.
    pub recording_id: String,
    pub seq: i64,
    pub object_key: String,
    pub plain_bytes: i64,
    pub sealed_bytes: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub video_dims: String,
    /// Where its video keyframes are (`recording::cues::format`); empty for rows written before cues.
    pub cues: String,
    pub stored: bool,
}

const COLUMNS: &str =
    "recording_id, seq, object_key, plain_bytes, sealed_bytes, start_ms, end_ms, video_dims, cues, stored";

fn row(r: &AnyRow) -> Result<SegmentRow, sqlx::Error> {
    Ok(SegmentRow {
        recording_id: r.try_get("recording_id")?,
        seq: r.try_get("seq")?,
        object_key: r.try_get("object_key")?,
        plain_bytes: r.try_get("plain_bytes")?,
        sealed_bytes: r.try_get("sealed_bytes")?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        video_dims: r.try_get("video_dims")?,
        cues: r.try_get("cues")?,
        stored: r.try_get::<i64, _>("stored")? != 0,
    })
}

impl Db {
    /// Records a sealed segment waiting in the outbox; writing the same one twice changes nothing.
    pub async fn insert_segment(&self, s: &SegmentRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recording_segments (recording_id, seq, object_key, plain_bytes, sealed_bytes, start_ms, \
             end_ms, video_dims, cues, stored) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0) \
             ON CONFLICT (recording_id, seq) DO NOTHING",
        )
        .bind(&s.recording_id)
        .bind(s.seq)
        .bind(&s.object_key)
        .bind(s.plain_bytes)
        .bind(s.sealed_bytes)
        .bind(s.start_ms)
        .bind(s.end_ms)
        .bind(&s.video_dims)
        .bind(&s.cues)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn mark_segment_stored(&self, recording_id: &str, seq: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE recording_segments SET stored = 1 WHERE recording_id = $1 AND seq = $2")
            .bind(recording_id)
            .bind(seq)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The segments of the parts `ids`, in part order as given, then by sequence.
    pub async fn segments_of(&self, ids: &[&str]) -> Result<Vec<SegmentRow>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            let sql =
                format!("SELECT {COLUMNS} FROM recording_segments WHERE recording_id = $1 ORDER BY seq");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(*id)
                .fetch_all(self.pool())
                .await?;
            for r in &rows {
                out.push(row(r)?);
            }
        }
        Ok(out)
    }

    /// Segments still waiting in some node's outbox.
    pub async fn unstored_segments(&self) -> Result<Vec<SegmentRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM recording_segments WHERE stored = 0 ORDER BY recording_id, seq");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// When the oldest segment still waiting for the object store was closed.
    pub async fn oldest_unstored_segment(&self) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("SELECT MIN(end_ms) AS oldest FROM recording_segments WHERE stored = 0")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get::<Option<i64>, _>("oldest")?)
    }
}
