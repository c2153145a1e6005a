//! Which node hosts each live video visit (`visit_hosts`), joined with the nodes that are alive so a lookup
//! never names a dead host. Written only when several nodes share the database; holds no rules (placement by
//! load is `visit::placement`).

use sqlx::Row;

use super::{Db, StoreError};

/// The database's clock in milliseconds, as in `store::cluster`.
const DB_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A live host: its node id and internal URL.
pub type HostRow = (String, String);

pub struct NewVisitHost<'a> {
    pub visit_id: &'a str,
    pub conversation_id: &'a str,
    pub patient: &'a str,
    pub nurse: &'a str,
    pub host_node: &'a str,
    pub created_at: i64,
}

impl Db {
    /// Records the host of a new visit, replacing a row its conversation kept from a host that died.
    pub async fn register_visit_host(&self, v: &NewVisitHost<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM visit_hosts WHERE conversation_id = $1")
            .bind(v.conversation_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO visit_hosts (visit_id, conversation_id, patient, nurse, host_node, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(v.visit_id)
        .bind(v.conversation_id)
        .bind(v.patient)
        .bind(v.nurse)
        .bind(v.host_node)
        .bind(v.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn forget_visit_host(&self, visit_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM visit_hosts WHERE visit_id = $1")
            .bind(visit_id)
            .execute(self.pool())
            .await?;
        Ok(())
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
