//! Where a visit lives when several nodes share the database. A visit's SFU room and recording are on one node,
//! its host, chosen by load when the nurse asks for video (the live node that is not draining with the fewest
//! live visits; this node on a tie, so a visit between two people on one node stays there). A participant whose
//! socket is on another node has their video frames relayed to the host over the signed node-to-node channel;
//! the host's frames reach them over the bus. This module decides and remembers; `http` carries the frames.
//! On SQLite every visit is here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::cluster::{Cluster, ClusterError};
use crate::ids::{RequestId, SubjectId};
use crate::store::{Db, NewVisitHost, StoreError};
use crate::visit::Visit;

/// A node hosting a visit, as other nodes call it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Remote {
    pub node: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Here,
    Node(Remote),
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// One node's candidates for a new visit: (node id, live visits, draining).
pub fn choose<'a>(me: &str, nodes: impl IntoIterator<Item = (&'a str, i64, bool)>) -> Option<&'a str> {
    nodes
        .into_iter()
        .filter(|(_, _, draining)| !draining)
        .min_by_key(|(id, visits, _)| (*visits, *id != me, *id))
        .map(|(id, ..)| id)
}

pub struct Placement {
    cluster: Arc<Cluster>,
    db: Db,
    alive_ms: i64,
    /// Per socket of this node, the hosts its frames were relayed to (told when the socket closes).
    relayed: Mutex<HashMap<RequestId, HashSet<Remote>>>,
}

impl Placement {
    pub fn new(cluster: Arc<Cluster>, db: Db, alive_ms: i64) -> Self {
        Self {
            cluster,
            db,
            alive_ms,
            relayed: Mutex::default(),
        }
    }

    pub fn shared(&self) -> bool {
        self.cluster.is_shared()
    }

    fn host(&self, row: Option<(String, String)>) -> Host {
        match row {
            Some((node, url)) if node != self.cluster.node_id() => Host::Node(Remote { node, url }),
            _ => Host::Here,
        }
    }

    /// Where a visit's frames go: its live host, or here (an unknown visit is refused here as ever).
    pub async fn host_of_visit(&self, visit_id: &str) -> Result<Host, PlacementError> {
        if !self.shared() {
            return Ok(Host::Here);
        }
        Ok(self.host(self.db.visit_host(visit_id, self.alive_ms).await?))
    }

    /// Where a request for video in this conversation goes: the live host of its visit, or the least loaded
    /// live node that is not draining.
    pub async fn host_for_conversation(&self, conversation: &str) -> Result<Host, PlacementError> {
        if !self.shared() {
            return Ok(Host::Here);
        }
        if let Some(row) = self
            .db
            .conversation_visit_host(conversation, self.alive_ms)
            .await?
        {
            return Ok(self.host(Some(row)));
        }
        let nodes = self.cluster.live_nodes().await?;
        let me = self.cluster.node_id();
        let chosen = choose(
            me,
            nodes
                .iter()
                .map(|n| (n.node_id.as_str(), n.live_visits, n.draining)),
        );
        Ok(self.host(chosen.and_then(|id| {
            nodes
                .iter()
                .find(|n| n.node_id == id)
                .map(|n| (n.node_id.clone(), n.internal_url.clone()))
        })))
    }

    /// The other nodes hosting a visit `subject` takes part in (a socket that opens here asks them).
    pub async fn remote_hosts_of(&self, subject: &SubjectId) -> Result<Vec<Remote>, PlacementError> {
        if !self.shared() {
            return Ok(Vec::new());
        }
        let rows = self.db.visit_hosts_of(subject.as_str(), self.alive_ms).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match self.host(Some(row)) {
                Host::Node(r) => Some(r),
                Host::Here => None,
            })
            .collect())
    }

    /// This node hosts `v` (when shared): recorded before anyone is told of it.
    pub async fn register(&self, v: &Visit) {
        if !self.shared() {
            return;
        }
        let row = NewVisitHost {
            visit_id: v.id.as_str(),
            conversation_id: v.conversation.as_str(),
            patient: v.patient.as_str(),
            nurse: v.nurse.as_str(),
            host_node: self.cluster.node_id(),
            created_at: v.created_ms,
        };
        if let Err(e) = self.db.register_visit_host(&row).await {
            tracing::error!(error = %e, "visit host could not be recorded: participants on other nodes cannot reach it");
        }
    }

    pub async fn forget(&self, v: &Visit) {
        if self.shared()
            && let Err(e) = self.db.forget_visit_host(v.id.as_str()).await
        {
            tracing::warn!(error = %e, "visit host row not removed (replaced by the next request)");
        }
    }

    /// A signed call to a host; the answer's body.
    pub async fn call(&self, to: &Remote, path: &str, body: Vec<u8>) -> Result<Vec<u8>, PlacementError> {
        Ok(self.cluster.call(&to.node, &to.url, path, body).await?)
    }

    /// Remembers that `socket`'s frames went to `to`.
    pub fn relayed(&self, socket: &RequestId, to: &Remote) {
        self.relayed
            .lock()
            .expect("placement lock")
            .entry(socket.clone())
            .or_default()
            .insert(to.clone());
    }

    /// The hosts `socket` relayed to, forgotten (the socket closed).
    pub fn socket_closed(&self, socket: &RequestId) -> Vec<Remote> {
        self.relayed
            .lock()
            .expect("placement lock")
            .remove(socket)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn the_least_loaded_live_node_that_is_not_draining_hosts_and_a_tie_stays_here() {
        assert_eq!(choose("b", [("a", 0, false), ("b", 0, false)]), Some("b"));
        assert_eq!(choose("b", [("a", 0, false), ("b", 1, false)]), Some("a"));
        assert_eq!(choose("b", [("a", 0, true), ("b", 3, false)]), Some("b"));
        assert_eq!(choose("c", [("b", 2, false), ("a", 2, false)]), Some("a"));
        assert_eq!(choose("a", [("a", 0, true)]), None);
    }
}
