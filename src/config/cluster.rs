//! `[cluster]`: how a node takes part when several brokers share one PostgreSQL database (docs/cluster.md):
//! its name, the internal listener other nodes call (never the public one), the key that authenticates those
//! calls, how fast a silent node is declared dead, and how long a stopping node drains (the only key a single
//! node on SQLite uses).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::Problem;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster. Default: the host name and a random suffix (new at each start).
    pub node_id: Option<String>,
    /// Where other nodes reach this one (node-to-node requests only). Default `127.0.0.1:0` (one host).
    pub internal_listen: String,
    /// The URL other nodes use for `internal_listen`. Default `http://` and the bound address.
    pub internal_url: Option<String>,
    /// The key every node signs and checks node-to-node requests with (at least 32 bytes). Default: generated
    /// once at `<data_dir>/keys/cluster.key` (a single node only; a deployment on PostgreSQL names a file).
    pub key_file: Option<PathBuf>,
    /// How often a node refreshes its row and its leases.
    pub heartbeat_seconds: u64,
    /// A node silent this long is dead: its leases (the routing leader, the cluster's jobs) move to another.
    pub dead_after_seconds: u64,
    /// On SIGTERM or `examroom drain`, how long the node waits for its live visits to end before it ends them
    /// and exits (a process manager's stop timeout must be longer). Also used on a single node.
    pub drain_seconds: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            internal_listen: "127.0.0.1:0".into(),
            internal_url: None,
            key_file: None,
            heartbeat_seconds: 2,
            dead_after_seconds: 10,
            drain_seconds: 30,
        }
    }
}

impl ClusterConfig {
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if let Some(id) = &self.node_id
            && (id.is_empty()
                || id.len() > 64
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            p.push(Problem::new(
                "cluster.node_id",
                "1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if self.internal_listen.parse::<SocketAddr>().is_err() {
            p.push(Problem::new(
                "cluster.internal_listen",
                "must be an IP address and port, e.g. 10.0.0.5:9090",
            ));
        }
        if let Some(u) = &self.internal_url
            && !url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            p.push(Problem::new(
                "cluster.internal_url",
                "must be an absolute http(s) URL",
            ));
        }
        if !(1..=60).contains(&self.heartbeat_seconds) {
            p.push(Problem::new(
                "cluster.heartbeat_seconds",
                "must be between 1 and 60",
            ));
        }
        if !(1..=3600).contains(&self.drain_seconds) {
            p.push(Problem::new(
                "cluster.drain_seconds",
                "must be between 1 and 3600",
            ));
        }
        if self.dead_after_seconds < 3 * self.heartbeat_seconds || self.dead_after_seconds > 600 {
            p.push(Problem::new(
                "cluster.dead_after_seconds",
                "must be at least three heartbeats (3 × cluster.heartbeat_seconds) and at most 600",
            ));
        }
        p
    }

    /// The key file: the configured one or the data directory's.
    pub fn key_path(&self, data_dir: &std::path::Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("keys").join("cluster.key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(ClusterConfig::default().problems().is_empty());
        let bad = ClusterConfig {
            node_id: Some("a b".into()),
            internal_listen: "nowhere".into(),
            internal_url: Some("ftp://x".into()),
            heartbeat_seconds: 5,
            dead_after_seconds: 10,
            ..Default::default()
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "cluster.node_id",
                "cluster.internal_listen",
                "cluster.internal_url",
                "cluster.dead_after_seconds"
            ]
        );
    }
}
