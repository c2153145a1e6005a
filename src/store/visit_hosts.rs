//! Which node hosts each live video visit (`visit_hosts`), joined with the nodes that are alive so a lookup
//! never names a dead host. Written only when several nodes share the database; holds no rules (placement by
//! load is `visit::placement`).

use sqlx::Row;

use super::{Db, StoreError};

/// The database's clock in milliseconds, as in `store::cluster`.
const DB_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A live host: its node id and internal URL.
pub type HostRow = (String, String);

/// A visit as its host last wrote it: enough for another node to take it over. Its `Debug` leaves out the
/// participants' subjects (they may be record numbers).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VisitHostRow {
    pub visit_id: String,
    pub conversation_id: String,
    pub queue: String,
    pub patient: String,
    pub nurse: String,
    pub host_node: String,
    pub created_at: i64,
    pub state: String,
    pub recording: String,
    pub recording_id: Option<String>,
    /// How many times the visit moved.
    pub epoch: i64,
}

impl std::fmt::Debug for VisitHostRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitHostRow")
            .field("visit_id", &self.visit_id)
            .field("host_node", &self.host_node)
            .field("state", &self.state)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

const ROW_COLUMNS: &str = "h.visit_id, h.conversation_id, h.queue, h.patient, h.nurse, h.host_node, h.created_at, \
                           h.state, h.recording, h.recording_id, h.epoch";

fn visit_host_row(r: &sqlx::any::AnyRow) -> Result<VisitHostRow, sqlx::Error> {
    Ok(VisitHostRow {
        visit_id: r.try_get(0)?,
        conversation_id: r.try_get(1)?,
        queue: r.try_get(2)?,
        patient: r.try_get(3)?,
        nurse: r.try_get(4)?,
        host_node: r.try_get(5)?,
        created_at: r.try_get(6)?,
        state: r.try_get(7)?,
        recording: r.try_get(8)?,
        recording_id: r.try_get(9)?,
        epoch: r.try_get(10)?,
    })
}

impl Db {
    /// Records (or rewrites) the host's view of a visit, replacing the row of an earlier visit of the same
    /// conversation. A row another node now holds (it took the visit over), or one at a later epoch, is left
    /// alone: false, and the caller is no longer the visit's host.
    pub async fn register_visit_host(&self, v: &VisitHostRow) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM visit_hosts WHERE conversation_id = $1 AND visit_id <> $2")
            .bind(&v.conversation_id)
            .bind(&v.visit_id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query(
            "INSERT INTO visit_hosts (visit_id, conversation_id, queue, patient, nurse, host_node, created_at, \
             state, recording, recording_id, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (visit_id) DO UPDATE SET state = excluded.state, recording = excluded.recording, \
             recording_id = excluded.recording_id, epoch = excluded.epoch \
             WHERE visit_hosts.host_node = excluded.host_node AND visit_hosts.epoch <= excluded.epoch",
        )
        .bind(&v.visit_id)
        .bind(&v.conversation_id)
        .bind(&v.queue)
        .bind(&v.patient)
        .bind(&v.nurse)
        .bind(&v.host_node)
        .bind(v.created_at)
        .bind(&v.state)
        .bind(&v.recording)
        .bind(&v.recording_id)
        .bind(v.epoch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Rows naming `node` are handed to nobody (`''`), so the failover job has them adopted: a node that starts
    /// again under the same id knows nothing of the visits its previous run hosted.
    pub async fn release_visits_of(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE visit_hosts SET host_node = '' WHERE host_node = $1")
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes a visit over from `from` (a drained or dead host): true for the one node whose update won.
    pub async fn take_visit_over(&self, visit_id: &str, from: &str, to: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE visit_hosts SET host_node = $1 WHERE visit_id = $2 AND host_node = $3")
            .bind(to)
            .bind(visit_id)
            .bind(from)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Visits whose host is no longer alive, with how long ago (ms) that host was last heard, if its row is left.
    pub async fn orphaned_visits(
        &self,
        alive_ms: i64,
    ) -> Result<Vec<(VisitHostRow, Option<i64>)>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS}, {DB_NOW} - n.heartbeat_at FROM visit_hosts h \
             LEFT JOIN cluster_nodes n ON n.node_id = h.host_node \
             WHERE n.node_id IS NULL OR n.heartbeat_at < {DB_NOW} - $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(alive_ms)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((visit_host_row(r)?, r.try_get(11)?)))
            .collect()
    }

    /// The visit's chat went to another nurse: the row names her, so her frames find the host.
    pub async fn set_visit_nurse(&self, visit_id: &str, nurse: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE visit_hosts SET nurse = $1 WHERE visit_id = $2")
            .bind(nurse)
            .bind(visit_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes a visit's row if `host` still holds it; false when another node took the visit over.
    pub async fn forget_visit_host(&self, visit_id: &str, host: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM visit_hosts WHERE visit_id = $1 AND host_node = $2")
            .bind(visit_id)
            .bind(host)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 1 {
            return Ok(true);
        }
        Ok(self.visit_host_node(visit_id).await?.is_none())
    }

    /// The live host of a visit, by visit id or by conversation id (`column`), with the visit id.
    async fn live_host(
        &self,
        column: &str,
        value: &str,
        alive_ms: i64,
    ) -> Result<Option<(String, HostRow)>, StoreError> {
        let sql = format!(
            "SELECT h.visit_id, n.node_id, n.internal_url FROM visit_hosts h \
             JOIN cluster_nodes n ON n.node_id = h.host_node \
             WHERE h.{column} = $1 AND n.heartbeat_at >= {DB_NOW} - $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(alive_ms)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
            .transpose()
    }

    pub async fn visit_host(&self, visit_id: &str, alive_ms: i64) -> Result<Option<HostRow>, StoreError> {
        Ok(self
            .live_host("visit_id", visit_id, alive_ms)
            .await?
            .map(|(_, h)| h))
    }

    /// The node a visit's row names, alive or not.
    pub async fn visit_host_node(&self, visit_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT host_node FROM visit_hosts WHERE visit_id = $1")
                .bind(visit_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Whether any row (alive host or not) names a visit of this conversation.
    pub async fn conversation_has_visit(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visit_hosts WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    pub async fn conversation_visit_host(
        &self,
        conversation_id: &str,
        alive_ms: i64,
    ) -> Result<Option<HostRow>, StoreError> {
        Ok(self
            .live_host("conversation_id", conversation_id, alive_ms)
            .await?
            .map(|(_, h)| h))
    }

    /// The live nodes hosting a visit `subject` takes part in.
    pub async fn visit_hosts_of(&self, subject: &str, alive_ms: i64) -> Result<Vec<HostRow>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT n.node_id, n.internal_url FROM visit_hosts h \
             JOIN cluster_nodes n ON n.node_id = h.host_node \
             WHERE (h.patient = $1 OR h.nurse = $1) AND n.heartbeat_at >= {DB_NOW} - $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(subject)
            .bind(alive_ms)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
