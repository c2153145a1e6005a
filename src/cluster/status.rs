//! `examroom cluster status`: the cluster as its database sees it — each node (how long since its heartbeat, its
//! sockets and live visits, whether it is draining, the leases it holds), who holds each lease, and how many
//! patients wait in each queue — and whether it is degraded. Degraded means an operator should look: a node
//! that stopped heartbeating without leaving (it crashed or lost the database), a lease whose holder is not
//! alive, nobody leading the waiting room, or no live node at all. The assessment is a pure function.

use serde::Serialize;

use crate::store::{Db, NodeRow, StoreError};

/// The leases a healthy cluster always has a live holder for (docs/cluster.md, "Leases"); `siem-delivery` too
/// when SIEM webhooks are configured (its job ends, and lets go of its lease, when there are none).
pub const REQUIRED_LEASES: &[&str] = &["routing", "audit-checkpoints", "housekeeping", "visit-failover"];
pub const SIEM_LEASE: &str = "siem-delivery";

/// The leases `config` needs held.
pub fn required_leases(config: &crate::config::Config) -> Vec<&'static str> {
    let mut leases = REQUIRED_LEASES.to_vec();
    if !config.siem.webhooks.is_empty() {
        leases.push(SIEM_LEASE);
    }
    leases
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: String,
    pub alive: bool,
    pub draining: bool,
    /// Milliseconds since its last heartbeat (the database's clock).
    pub heartbeat_age_ms: i64,
    pub sockets: i64,
    pub live_visits: i64,
    pub leases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaseStatus {
    pub name: String,
    pub holder: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueDepth {
    pub queue: String,
    pub waiting: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// False on SQLite: one node, no membership rows.
    pub clustered: bool,
    pub nodes: Vec<NodeStatus>,
    pub leases: Vec<LeaseStatus>,
    pub queues: Vec<QueueDepth>,
    /// Why the cluster is degraded; empty when it is not.
    pub problems: Vec<String>,
}

impl Status {
    pub fn degraded(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The status as an operator reads it in a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.clustered {
            out.push_str("one node (SQLite): no cluster membership\n");
        } else {
            out.push_str("NODE                 STATE     HEARTBEAT  SOCKETS  VISITS  LEASES\n");
            for n in &self.nodes {
                let state = match (n.alive, n.draining) {
                    (false, _) => "dead",
                    (true, true) => "draining",
                    (true, false) => "ready",
                };
                out.push_str(&format!(
                    "{:<20} {:<9} {:>8.1}s {:>8} {:>7}  {}\n",
                    n.node_id,
                    state,
                    n.heartbeat_age_ms as f64 / 1000.0,
                    n.sockets,
                    n.live_visits,
                    if n.leases.is_empty() {
                        "-".to_string()
                    } else {
                        n.leases.join(",")
                    }
                ));
            }
        }
        out.push_str("\nQUEUE                WAITING\n");
        for q in &self.queues {
            out.push_str(&format!("{:<20} {:>7}\n", q.queue, q.waiting));
        }
        if self.queues.is_empty() {
            out.push_str("(nobody waiting)\n");
        }
        if self.degraded() {
            out.push_str("\nDEGRADED:\n");
            for p in &self.problems {
                out.push_str(&format!("  - {p}\n"));
            }
        } else {
            out.push_str("\nhealthy\n");
        }
        out
    }
}

/// Judges the rows: which nodes are alive, who holds each lease, and what is wrong.
pub fn assess(
    rows: &[NodeRow],
    leases: &[(String, String, bool)],
    required: &[&str],
    queues: Vec<QueueDepth>,
    dead_after_ms: i64,
) -> Status {
    let mut problems = Vec::new();
    let alive = |id: &str| {
        rows.iter()
            .any(|n| n.node_id == id && n.heartbeat_at < dead_after_ms)
    };
    let nodes: Vec<NodeStatus> = rows
        .iter()
        .map(|n| NodeStatus {
            node_id: n.node_id.clone(),
            alive: n.heartbeat_at < dead_after_ms,
            draining: n.draining,
            heartbeat_age_ms: n.heartbeat_at,
            sockets: n.sockets,
            live_visits: n.live_visits,
            leases: leases
                .iter()
                .filter(|(_, holder, current)| *current && holder == &n.node_id)
                .map(|(name, ..)| name.clone())
                .collect(),
        })
        .collect();
    for n in nodes.iter().filter(|n| !n.alive) {
        problems.push(format!(
            "node {} has not heartbeat for {} s and did not leave (crashed, or cut off from the database)",
            n.node_id,
            n.heartbeat_age_ms / 1000
        ));
    }
    let none_alive = !nodes.iter().any(|n| n.alive);
    if none_alive {
        problems.push("no live node".to_string());
    }
    let mut lease_status = Vec::new();
    for name in required {
        let holder = leases
            .iter()
            .find(|(n, holder, current)| n == name && *current && alive(holder))
            .map(|(_, holder, _)| holder.clone());
        if holder.is_none() && !none_alive {
            problems.push(match *name {
                "routing" => "nobody leads the waiting room (lease `routing` has no live holder)".to_string(),
                other => format!("lease `{other}` has no live holder"),
            });
        }
        lease_status.push(LeaseStatus {
            name: name.to_string(),
            holder,
        });
    }
    Status {
        clustered: true,
        nodes,
        leases: lease_status,
        queues,
        problems,
    }
}

/// Reads the cluster's rows and judges them. On SQLite there is one node and nothing to judge but the queues.
pub async fn status(db: &Db, required: &[&str], dead_after_ms: i64) -> Result<Status, StoreError> {
    let queues = db
        .waiting_by_queue()
        .await?
        .into_iter()
        .map(|(queue, waiting)| QueueDepth { queue, waiting })
        .collect();
    if db.backend() != crate::store::Backend::Postgres {
        return Ok(Status {
            clustered: false,
            nodes: Vec::new(),
            leases: Vec::new(),
            queues,
            problems: Vec::new(),
        });
    }
    let rows = db.all_nodes().await?;
    let leases = db.current_leases().await?;
    Ok(assess(&rows, &leases, required, queues, dead_after_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, age_ms: i64) -> NodeRow {
        NodeRow {
            node_id: id.into(),
            internal_url: String::new(),
            media_addresses: String::new(),
            sockets: 3,
            live_visits: 1,
            draining: false,
            started_at: 0,
            heartbeat_at: age_ms,
        }
    }

    fn all_leases(holder: &str) -> Vec<(String, String, bool)> {
        REQUIRED_LEASES
            .iter()
            .map(|l| (l.to_string(), holder.to_string(), true))
            .collect()
    }

    #[test]
    fn a_cluster_whose_nodes_live_and_leases_are_held_is_healthy() {
        let s = assess(
            &[node("a", 500), node("b", 1_500)],
            &all_leases("a"),
            REQUIRED_LEASES,
            vec![],
            10_000,
        );
        assert!(!s.degraded(), "{:?}", s.problems);
        assert_eq!(s.nodes[0].leases.len(), REQUIRED_LEASES.len());
        assert!(s.render().contains("healthy"));
    }

    #[test]
    fn a_silent_node_and_its_orphaned_leases_are_degraded() {
        let s = assess(
            &[node("a", 500), node("b", 20_000)],
            &all_leases("b"),
            REQUIRED_LEASES,
            vec![],
            10_000,
        );
        assert!(s.degraded());
        assert!(
            s.problems.iter().any(|p| p.contains("node b")),
            "{:?}",
            s.problems
        );
        assert!(
            s.problems
                .iter()
                .any(|p| p.contains("nobody leads the waiting room")),
            "{:?}",
            s.problems
        );
        assert!(s.render().contains("DEGRADED"));
    }

    #[test]
    fn an_expired_lease_or_no_node_at_all_is_degraded() {
        let mut leases = all_leases("a");
        leases[0].2 = false;
        let s = assess(&[node("a", 500)], &leases, REQUIRED_LEASES, vec![], 10_000);
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert!(
            assess(&[], &[], REQUIRED_LEASES, vec![], 10_000)
                .problems
                .iter()
                .any(|p| p == "no live node")
        );
        // With SIEM webhooks configured, their delivery lease is required too.
        let siem = assess(
            &[node("a", 500)],
            &all_leases("a"),
            &["routing", SIEM_LEASE],
            vec![],
            10_000,
        );
        assert!(
            siem.problems.iter().any(|p| p.contains(SIEM_LEASE)),
            "{:?}",
            siem.problems
        );
    }
}
