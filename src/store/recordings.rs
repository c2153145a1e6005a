//! Recording rows: what was recorded under which policy and consent, where the sealed object is, the wrapped
//! keys, retention and legal hold, and the manifest (pauses and gaps).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreError};
use crate::ids::RecordingId;

/// Where a recording is in its life, stored as its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingPhase {
    /// Being recorded into its sealed spool.
    Recording,
    /// Finished and sealed, waiting in the outbox for the object store.
    Uploading,
    /// In the object store.
    Stored,
    /// Past retention and deleted (object removed, data key destroyed).
    Deleted,
}

impl RecordingPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Uploading => "uploading",
            Self::Stored => "stored",
            Self::Deleted => "deleted",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [Self::Recording, Self::Uploading, Self::Stored, Self::Deleted]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

#[derive(Debug, Clone)]
pub struct RecordingRow {
    pub id: RecordingId,
    pub visit_id: String,
    pub queue: String,
    pub policies: String,
    pub consent: String,
    pub state: RecordingPhase,
    pub kek_id: String,
    pub wrapped_key: String,
    pub spool_kek_id: String,
    pub spool_wrapped_key: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub retain_until: i64,
    pub legal_hold: bool,
    pub object_key: Option<String>,
    pub object_bytes: Option<i64>,
    pub media_bytes: Option<i64>,
    pub manifest: Option<String>,
    /// Where the media's timeline starts: the visit's first part's start (a part written after a move shares it).
    pub origin_ms: i64,
}

pub struct NewRecording<'a> {
    pub id: &'a str,
    pub visit_id: &'a str,
    pub queue: &'a str,
    pub policies: &'a str,
    pub consent: &'a str,
    pub kek_id: &'a str,
    pub wrapped_key: &'a str,
    pub spool_kek_id: &'a str,
    pub spool_wrapped_key: &'a str,
    pub started_at: i64,
    pub retain_until: i64,
    /// The node writing the spool (`cluster.node_id`).
    pub writer: &'a str,
    pub origin_ms: i64,
}

const COLUMNS: &str = "id, visit_id, queue, policies, consent, state, kek_id, wrapped_key, spool_kek_id, \
     spool_wrapped_key, started_at, ended_at, retain_until, legal_hold, object_key, object_bytes, media_bytes, manifest, \
     origin_ms";

fn row(r: &AnyRow) -> Result<RecordingRow, sqlx::Error> {
    Ok(RecordingRow {
        id: RecordingId::new(r.try_get::<String, _>("id")?),
        visit_id: r.try_get("visit_id")?,
        queue: r.try_get("queue")?,
        policies: r.try_get("policies")?,
        consent: r.try_get("consent")?,
        state: {
            let word: String = r.try_get("state")?;
            RecordingPhase::parse(&word)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown recording state `{word}`").into()))?
        },
        kek_id: r.try_get("kek_id")?,
        wrapped_key: r.try_get("wrapped_key")?,
        spool_kek_id: r.try_get("spool_kek_id")?,
        spool_wrapped_key: r.try_get("spool_wrapped_key")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        retain_until: r.try_get("retain_until")?,
        legal_hold: r.try_get::<i64, _>("legal_hold")? != 0,
        object_key: r.try_get("object_key")?,
        object_bytes: r.try_get("object_bytes")?,
        media_bytes: r.try_get("media_bytes")?,
        manifest: r.try_get("manifest")?,
        origin_ms: {
            let started: i64 = r.try_get("started_at")?;
            r.try_get::<Option<i64>, _>("origin_ms")?.unwrap_or(started)
        },
    })
}

impl Db {
    pub async fn insert_recording(&self, n: &NewRecording<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recordings (id, visit_id, queue, policies, consent, state, kek_id, wrapped_key, \
             spool_kek_id, spool_wrapped_key, started_at, retain_until, writer, origin_ms) \
             VALUES ($1, $2, $3, $4, $5, 'recording', $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(n.id)
        .bind(n.visit_id)
        .bind(n.queue)
        .bind(n.policies)
        .bind(n.consent)
        .bind(n.kek_id)
        .bind(n.wrapped_key)
        .bind(n.spool_kek_id)
        .bind(n.spool_wrapped_key)
        .bind(n.started_at)
        .bind(n.retain_until)
        .bind(n.writer)
        .bind(n.origin_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a finished recording: its object (none when its segments are the objects), sizes and manifest. `uploading` until the object store has
    /// it, then [`Db::mark_recording_stored`].
    pub async fn finish_recording(
        &self,
        id: &str,
        ended_at: i64,
        object_key: Option<&str>,
        object_bytes: i64,
        media_bytes: i64,
        manifest: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE recordings SET state = 'uploading', ended_at = $1, object_key = $2, object_bytes = $3, \
             media_bytes = $4, manifest = $5 WHERE id = $6",
        )
        .bind(ended_at)
        .bind(object_key)
        .bind(object_bytes)
        .bind(media_bytes)
        .bind(manifest)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn mark_recording_stored(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET state = 'stored' WHERE id = $1 AND state = 'uploading'")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Finished recordings whose object is still waiting in the outbox (an object store outage).
    pub async fn uploading_recordings(&self) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM recordings WHERE state = 'uploading' ORDER BY ended_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM recordings WHERE id = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    pub async fn recordings(&self) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM recordings ORDER BY started_at DESC, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// The parts of one visit's recording, first to last.
    pub async fn recordings_of_visit(&self, visit_id: &str) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM recordings WHERE visit_id = $1 ORDER BY started_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(visit_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// The manifest so far (pauses), kept current while recording so a crash loses none of it.
    pub async fn update_recording_manifest(&self, id: &str, manifest: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET manifest = $1 WHERE id = $2")
            .bind(manifest)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Sets or releases the hold on every part of `visit_id`'s recording.
    pub async fn set_legal_hold(&self, visit_id: &str, hold: bool) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE recordings SET legal_hold = $1 WHERE visit_id = $2 AND state <> 'deleted'")
                .bind(hold as i64)
                .bind(visit_id)
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected() >= 1)
    }

    /// Stored recordings whose retention ended before `now` and that are not on legal hold.
    pub async fn expired_recordings(&self, now: i64) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM recordings WHERE state = 'stored' AND legal_hold = 0 AND retain_until < $1 \
             ORDER BY retain_until, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// Destroys a recording's keys (its object can never be decrypted again) and marks it deleted.
    pub async fn shred_recording(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE recordings SET state = 'deleted', wrapped_key = '', spool_wrapped_key = '', \
             object_key = NULL, ended_at = COALESCE(ended_at, $1) WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Recordings a crash left in progress (recovered at startup).
    /// Recordings left in progress that `me` may finish: those it wrote before (a crash), and those whose writer
    /// is no longer alive (within `alive_ms`); never another live node's recording in progress. On SQLite (one
    /// node, no membership rows) every one.
    /// Without `include_mine`, only those of dead writers (a node that died after this one started).
    pub async fn unfinished_recordings(
        &self,
        me: &str,
        alive_ms: i64,
        include_mine: bool,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let mine = if include_mine {
            "writer IS NULL OR writer = $1 OR"
        } else {
            "writer <> $1 AND"
        };
        let sql = match self.backend() {
            super::Backend::Sqlite => {
                format!(
                    "SELECT {COLUMNS} FROM recordings WHERE state = 'recording' AND $1 = $1 AND $2 = $2 ORDER BY started_at"
                )
            }
            super::Backend::Postgres => format!(
                "SELECT {COLUMNS} FROM recordings WHERE state = 'recording' AND ({mine} \
                 writer NOT IN (SELECT node_id FROM cluster_nodes WHERE heartbeat_at >= \
                 (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - $2)) ORDER BY started_at"
            ),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me)
            .bind(alive_ms)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }
}
