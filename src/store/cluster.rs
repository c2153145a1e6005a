//! Rows of a cluster: node membership and heartbeats, leases, the routing leader's rows (presence, offers,
//! chats it hands back to their queue), and the bus between nodes (PostgreSQL `LISTEN/NOTIFY`; on SQLite there is one node and no bus). Holds no rules: who
//! is dead, who leads and what an event means are decided by `cluster` and `messaging`.

use sqlx::Row;
use sqlx::postgres::PgListener;

use super::{Backend, Db, StoreError};

/// The database's clock in milliseconds (PostgreSQL): leases and heartbeats are stamped and compared with it, so
/// the nodes' own clocks need not agree.
const DB_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// The channel every node listens on.
const BUS_CHANNEL: &str = "examroom_bus";
/// Notifications per statement when publishing a batch.
const BUS_BATCH: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node_id: String,
    pub internal_url: String,
    pub media_addresses: String,
    pub sockets: i64,
    /// Video visits it hosts.
    pub live_visits: i64,
    /// It is draining: not ready, taking no new visits, about to leave.
    pub draining: bool,
    pub started_at: i64,
    /// When written, ignored (the database stamps it); when read, how long ago it was (ms).
    pub heartbeat_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    pub nurse: String,
    /// JSON array of skills.
    pub skills: String,
    pub node_id: String,
    pub since: i64,
}

impl Db {
    /// Registers this node or refreshes its heartbeat and load (stamped with the database's clock).
    pub async fn heartbeat(&self, n: &NodeRow) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO cluster_nodes (node_id, internal_url, media_addresses, sockets, live_visits, draining, \
             started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, {DB_NOW}) \
             ON CONFLICT (node_id) DO UPDATE SET internal_url = excluded.internal_url, \
             media_addresses = excluded.media_addresses, sockets = excluded.sockets, \
             live_visits = excluded.live_visits, draining = excluded.draining, \
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&n.node_id)
            .bind(&n.internal_url)
            .bind(&n.media_addresses)
            .bind(n.sockets)
            .bind(n.live_visits)
            .bind(i64::from(n.draining))
            .bind(n.started_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The nodes that heartbeat within the last `within_ms`, by id; `heartbeat_at` is returned as the age.
    pub async fn live_nodes(&self, within_ms: i64) -> Result<Vec<NodeRow>, StoreError> {
        self.nodes_within(Some(within_ms)).await
    }

    /// Every node row, the silent ones too (a node that crashed keeps its row; one that stopped removed it).
    pub async fn all_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.nodes_within(None).await
    }

    async fn nodes_within(&self, within_ms: Option<i64>) -> Result<Vec<NodeRow>, StoreError> {
        let filter = if within_ms.is_some() {
            format!("WHERE heartbeat_at >= {DB_NOW} - $1")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT node_id, internal_url, media_addresses, sockets, live_visits, draining, started_at, \
             {DB_NOW} - heartbeat_at FROM cluster_nodes {filter} ORDER BY node_id"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(ms) = within_ms {
            query = query.bind(ms);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.into_iter()
            .map(|r| {
                Ok(NodeRow {
                    node_id: r.try_get(0)?,
                    internal_url: r.try_get(1)?,
                    media_addresses: r.try_get(2)?,
                    sockets: r.try_get(3)?,
                    live_visits: r.try_get(4)?,
                    draining: r.try_get::<i64, _>(5)? != 0,
                    started_at: r.try_get(6)?,
                    heartbeat_at: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// The live node holding lease `name` and its internal URL (one round trip: a follower asks this for every
    /// call it forwards).
    pub async fn lease_holder_url(
        &self,
        name: &str,
        within_ms: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        let sql = format!(
            "SELECT n.node_id, n.internal_url FROM cluster_leases l JOIN cluster_nodes n ON n.node_id = l.holder \
             WHERE l.name = $1 AND l.expires_at >= {DB_NOW} AND n.heartbeat_at >= {DB_NOW} - $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(within_ms)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Removes the rows of nodes silent for `ms` (crashed long ago, never back under that id): until then
    /// `examroom cluster status` reports them as dead.
    pub async fn forget_silent_nodes(&self, ms: i64) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM cluster_nodes WHERE heartbeat_at < {DB_NOW} - $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn mark_node_draining(&self, node_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE cluster_nodes SET draining = 1 WHERE node_id = $1")
            .bind(node_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A node that stopped cleanly says so at once instead of waiting to be declared dead (its leased work
    /// releases its own leases as it stops).
    pub async fn leave_cluster(&self, node_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM cluster_nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes or renews the lease `name` for `holder` for `ttl_ms` (by the database's clock), if it is free,
    /// expired or already `holder`'s. Returns whether `holder` holds it.
    pub async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO cluster_leases (name, holder, expires_at) VALUES ($1, $2, {DB_NOW} + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_at < {DB_NOW}"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .bind(ttl_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease up (a node stopping), so another takes it at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM cluster_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every lease currently held, `(name, holder)`.
    pub async fn leases(&self) -> Result<Vec<(String, String)>, StoreError> {
        let sql =
            format!("SELECT name, holder FROM cluster_leases WHERE expires_at >= {DB_NOW} ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Every lease row: name, holder, and whether it is still current (not expired).
    pub async fn current_leases(&self) -> Result<Vec<(String, String, bool)>, StoreError> {
        let sql = format!(
            "SELECT name, holder, CASE WHEN expires_at >= {DB_NOW} THEN 1 ELSE 0 END FROM cluster_leases ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<i32, _>(2)? != 0)))
            .collect()
    }

    /// How many conversations wait in each queue (for `examroom cluster status`).
    pub async fn waiting_by_queue(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, COUNT(*) FROM conversations WHERE state = 'waiting' GROUP BY queue ORDER BY queue",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn set_presence(&self, p: &PresenceRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO routing_presence (nurse, skills, node_id, since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (nurse) DO UPDATE SET skills = excluded.skills, node_id = excluded.node_id, \
             since = excluded.since",
        )
        .bind(&p.nurse)
        .bind(&p.skills)
        .bind(&p.node_id)
        .bind(p.since)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn clear_presence(&self, nurse: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM routing_presence WHERE nurse = $1")
            .bind(nurse)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every nurse who is ready, oldest first (the order they became ready in).
    pub async fn presences(&self) -> Result<Vec<PresenceRow>, StoreError> {
        let rows =
            sqlx::query("SELECT nurse, skills, node_id, since FROM routing_presence ORDER BY since, nurse")
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PresenceRow {
                    nurse: r.try_get(0)?,
                    skills: r.try_get(1)?,
                    node_id: r.try_get(2)?,
                    since: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn record_offer(
        &self,
        conversation: &str,
        nurse: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO routing_offers (conversation_id, nurse, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (conversation_id) DO UPDATE SET nurse = excluded.nurse, expires_at = excluded.expires_at",
        )
        .bind(conversation)
        .bind(nurse)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn end_offer(&self, conversation: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM routing_offers WHERE conversation_id = $1")
            .bind(conversation)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes and returns every recorded offer `(conversation, nurse)`: a new leader ends them before routing.
    pub async fn take_offers(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("DELETE FROM routing_offers RETURNING conversation_id, nurse")
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// An assigned conversation back to its queue (its nurse stayed away): waiting, no nurse, its original
    /// enqueue time kept, its priority raised to at least `boost`. Whether it was still assigned.
    pub async fn requeue_conversation(
        &self,
        id: &crate::ids::ConversationId,
        boost: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET state = 'waiting', nurse = NULL, assigned_at = NULL, \
             priority_boost = CASE WHEN priority_boost < $2 THEN $2 ELSE priority_boost END \
             WHERE id = $1 AND state = 'assigned'",
        )
        .bind(id.as_str())
        .bind(boost)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A nurse's cold transfer: her assigned chat goes back to waiting, in `queue`, with at least `boost` (first
    /// in line there); it keeps its first enqueue time. False when it is no longer hers and assigned.
    pub async fn transfer_conversation(
        &self,
        id: &crate::ids::ConversationId,
        nurse: &str,
        queue: &str,
        boost: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET state = 'waiting', nurse = NULL, assigned_at = NULL, queue = $3, \
             priority_boost = CASE WHEN priority_boost < $4 THEN $4 ELSE priority_boost END \
             WHERE id = $1 AND state = 'assigned' AND nurse = $2",
        )
        .bind(id.as_str())
        .bind(nurse)
        .bind(queue)
        .bind(boost)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A nurse's warm transfer taken: her assigned chat becomes `to`'s, from `now`. False when it is no longer
    /// hers and assigned (it ended meanwhile).
    pub async fn hand_over_conversation(
        &self,
        id: &crate::ids::ConversationId,
        from: &str,
        to: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET nurse = $3, assigned_at = $4 WHERE id = $1 AND state = 'assigned' AND nurse = $2",
        )
        .bind(id.as_str())
        .bind(from)
        .bind(to)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Publishes events to every node's [`BusListener`] in this order (PostgreSQL; nothing on SQLite, where
    /// there is one node). Each payload must fit a notification (under 8000 bytes).
    pub async fn publish(&self, payloads: &[String]) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        for batch in payloads.chunks(BUS_BATCH) {
            // One statement: one round trip, one transaction, notifications delivered in this order.
            let calls: Vec<String> = (1..=batch.len())
                .map(|i| format!("pg_notify('{BUS_CHANNEL}', ${i})"))
                .collect();
            // Wrapped so the statement returns an integer: the `Any` driver maps no `void` column.
            let sql = format!("SELECT 1 FROM (SELECT {}) AS sent", calls.join(", "));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in batch {
                q = q.bind(p);
            }
            q.execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Listens to the bus (PostgreSQL only).
    pub async fn bus_listener(&self) -> Result<BusListener, StoreError> {
        if self.backend != Backend::Postgres {
            return Err(StoreError::Unavailable("the bus needs PostgreSQL"));
        }
        let mut listener = PgListener::connect(secrecy::ExposeSecret::expose_secret(&*self.url)).await?;
        // A lost link must be reported at once: by default the driver first reconnects (retrying for up to its
        // pool's 30 s while the database is down), and until then the node would still say it hears the others
        // (`/readyz`) and would come back ready before it listens again. The caller opens a new listener.
        listener.eager_reconnect(false);
        listener.listen(BUS_CHANNEL).await?;
        Ok(BusListener { listener })
    }
}

/// This node's subscription to the bus.
pub struct BusListener {
    listener: PgListener,
}

/// What the bus gave.
pub enum BusItem {
    Event(String),
    /// The connection was lost: notifications from now until a new listener listens are gone, so whatever
    /// was delivered from them must be re-read from the rows.
    Gap,
}

impl BusListener {
    pub async fn recv(&mut self) -> Result<BusItem, StoreError> {
        match self.listener.try_recv().await? {
            Some(n) => Ok(BusItem::Event(n.payload().to_string())),
            None => Ok(BusItem::Gap),
        }
    }
}
