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
use crate::store::{Db, StoreError, VisitHostRow};
use crate::visit::Visit;

/// Where a node asks another to take a visit over (internal listener).
pub const ADOPT_PATH: &str = "/internal/v1/video/adopt";

/// A visit to take over: its row as its host last wrote it, why, and for a failover since when it was lost.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Adoption {
    pub row: VisitHostRow,
    /// `drain` or `failover`.
    pub reason: String,
    pub outage_since_ms: Option<i64>,
}

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
    /// The visit's host is gone and another node has not taken it over yet (a few seconds).
    #[error("the visit is moving to another node")]
    Moving,
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
        match self.db.visit_host(visit_id, self.alive_ms).await? {
            Some(row) => Ok(self.host(Some(row))),
            None => match self.db.visit_host_node(visit_id).await? {
                Some(node) if node != self.cluster.node_id() => Err(PlacementError::Moving),
                _ => Ok(Host::Here),
            },
        }
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
        // A visit of this conversation whose host died is being taken over: not a second visit meanwhile.
        if self.db.conversation_has_visit(conversation).await? {
            return Err(PlacementError::Moving);
        }
        Ok(self.host(self.least_loaded(true).await?))
    }

    /// The least loaded live node that is not draining (this one too when `include_me`): id and internal URL.
    async fn least_loaded(&self, include_me: bool) -> Result<Option<(String, String)>, PlacementError> {
        let nodes = self.cluster.live_nodes().await?;
        let me = self.cluster.node_id();
        let candidates = nodes
            .iter()
            .filter(|n| include_me || n.node_id != me)
            .map(|n| (n.node_id.as_str(), n.live_visits, n.draining));
        Ok(choose(me, candidates).and_then(|id| {
            nodes
                .iter()
                .find(|n| n.node_id == id)
                .map(|n| (n.node_id.clone(), n.internal_url.clone()))
        }))
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

    pub fn node_id(&self) -> &str {
        self.cluster.node_id()
    }

    /// How recent a heartbeat must be for its node to count as alive (ms).
    pub fn alive_ms(&self) -> i64 {
        self.alive_ms
    }

    /// This node hosts the visit `row` describes (when shared): written before anyone is told of it, and again
    /// as it changes, so that another node can take it over. False when another node holds the visit now (it
    /// took it over while this one was cut off): this node must let it go without telling anyone.
    pub async fn register(&self, row: VisitHostRow) -> bool {
        if !self.shared() {
            return true;
        }
        match self.db.register_visit_host(&row).await {
            Ok(ours) => ours,
            Err(e) => {
                tracing::error!(error = %e, "visit host could not be recorded: participants on other nodes cannot reach it");
                true
            }
        }
    }

    /// Whether this node still holds the visit (always on one node; a database error counts as yes).
    pub async fn holds(&self, visit_id: &str) -> bool {
        if !self.shared() {
            return true;
        }
        match self.db.visit_host_node(visit_id).await {
            Ok(Some(node)) => node == self.cluster.node_id(),
            Ok(None) => true,
            Err(_) => true,
        }
    }

    /// Where a visit this node must give up goes: the least loaded other live node that is not draining.
    pub async fn successor(&self) -> Result<Option<Remote>, PlacementError> {
        if !self.shared() {
            return Ok(None);
        }
        Ok(self
            .least_loaded(false)
            .await?
            .map(|(node, url)| Remote { node, url }))
    }

    /// Where an orphaned visit goes: the least loaded live node that is not draining (maybe this one).
    pub async fn adopter(&self) -> Result<Option<Host>, PlacementError> {
        Ok(self.least_loaded(true).await?.map(|row| self.host(Some(row))))
    }

    /// Visits whose host drained away or died, with how long ago it was last heard (ms) when known.
    pub async fn orphans(&self) -> Result<Vec<(VisitHostRow, Option<i64>)>, PlacementError> {
        Ok(self.db.orphaned_visits(self.alive_ms).await?)
    }

    /// Claims `visit` from `from` for this node; false when another node claimed it first.
    pub async fn take_over(&self, visit: &str, from: &str) -> Result<bool, PlacementError> {
        Ok(self
            .db
            .take_visit_over(visit, from, self.cluster.node_id())
            .await?)
    }

    /// The visit's nurse changed (its chat was handed on): its row names the new one.
    pub async fn nurse_changed(&self, v: &Visit) {
        if self.shared()
            && let Err(e) = self.db.set_visit_nurse(v.id.as_str(), v.nurse.as_str()).await
        {
            tracing::warn!(error = %e, "visit host row keeps the nurse before the transfer");
        }
    }

    /// The visit ended here: its row goes, unless another node holds it now.
    pub async fn forget(&self, v: &Visit) {
        if self.shared()
            && let Err(e) = self
                .db
                .forget_visit_host(v.id.as_str(), self.cluster.node_id())
                .await
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
