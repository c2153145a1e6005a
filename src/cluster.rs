//! Several brokers, one clinic (docs/cluster.md). Nodes sharing one PostgreSQL database find each other through
//! their rows (a heartbeat every `cluster.heartbeat_seconds`; silent for `cluster.dead_after_seconds` is dead,
//! both by the database's clock),
//! divide the cluster's work through leases (one holder per name: the routing leader and each cluster-wide job,
//! which move when their holder stops or dies), and call each other on an internal listener with requests signed
//! by the shared cluster key. There is no consensus or gossip here: the database decides. On SQLite there is one
//! node: it holds every lease without asking and never calls another.

pub mod status;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretBox};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{Backend, Db, NodeRow, StoreError};

/// The header naming the calling node, and the one carrying its signature of the body.
pub const NODE_HEADER: &str = "x-examroom-node";
pub const SIGNATURE_HEADER: &str = "x-examroom-signature";
/// How long a crashed node's row stays (shown as dead by `examroom cluster status`) before it is removed.
const FORGET_DEAD_NODES_MS: i64 = 10 * 60 * 1000;
/// How far a signed request's time may be from ours.
const SIGNATURE_WINDOW_SECONDS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.key_file: {0}")]
    Key(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("node {node} did not answer: {reason}")]
    Call { node: String, reason: String },
}

/// This node's place in the cluster.
pub struct Cluster {
    node_id: String,
    db: Db,
    key: SecretBox<Vec<u8>>,
    /// Where other nodes reach this one, known once the internal listener is bound.
    internal_url: OnceLock<String>,
    heartbeat: Duration,
    dead_after: Duration,
    http: reqwest::Client,
    started_at: i64,
}

/// What a node reports about itself with each heartbeat.
pub struct NodeLoad {
    pub sockets: i64,
    pub live_visits: i64,
    pub draining: bool,
}

type BoxedJob = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Cluster {
    pub fn new(config: &Config, db: Db) -> Result<Self, ClusterError> {
        let c = &config.cluster;
        let path = c.key_path(&config.server.data_dir);
        if c.key_file.is_none() {
            crate::crypto::Keyring::create_key_file(&path).map_err(|e| ClusterError::Key(e.to_string()))?;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ClusterError::Key(format!("{}: {e}", path.display())))?;
        let key = hex::decode(text.trim())
            .ok()
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| {
                ClusterError::Key(format!("{} must hold at least 32 bytes as hex", path.display()))
            })?;
        let node_id = c.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            let host: String = host
                .trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(40)
                .collect();
            let host = if host.is_empty() { "node".to_string() } else { host };
            format!("{host}-{}", crate::ids::random_hex(3))
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClusterError::Http(e.to_string()))?;
        Ok(Self {
            node_id,
            db,
            key: SecretBox::new(Box::new(key)),
            internal_url: OnceLock::new(),
            heartbeat: Duration::from_secs(c.heartbeat_seconds),
            dead_after: Duration::from_secs(c.dead_after_seconds),
            http,
            started_at: now_ms(),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether other nodes may share the database (PostgreSQL): only then are there leases to take and nodes
    /// to call.
    pub fn is_shared(&self) -> bool {
        self.db.backend() == Backend::Postgres
    }

    /// Records where the internal listener was bound (once).
    pub fn set_internal_url(&self, url: String) {
        let _ = self.internal_url.set(url);
    }

    /// Says at once that this node drains (its next heartbeat would say it too), so no visit is placed on it.
    pub async fn mark_draining(&self) -> Result<(), ClusterError> {
        if self.is_shared() {
            self.db.mark_node_draining(&self.node_id).await?;
        }
        Ok(())
    }

    /// Visits a previous run of this node hosted (it crashed and came back under the same id) are released for
    /// adoption: this run knows nothing of them.
    pub async fn release_old_visits(&self) -> Result<(), ClusterError> {
        if self.is_shared() {
            self.db.release_visits_of(&self.node_id).await?;
        }
        Ok(())
    }

    /// The nodes whose heartbeat is recent (by the database's clock), by id; `heartbeat_at` is its age.
    pub async fn live_nodes(&self) -> Result<Vec<NodeRow>, ClusterError> {
        Ok(self.db.live_nodes(self.dead_after.as_millis() as i64).await?)
    }

    /// The ids of [`Cluster::live_nodes`].
    pub async fn live_node_ids(&self) -> Result<Vec<String>, ClusterError> {
        Ok(self.live_nodes().await?.into_iter().map(|n| n.node_id).collect())
    }

    /// The live node holding `lease` and its internal URL, if any.
    pub async fn holder_url(&self, lease: &str) -> Result<Option<(String, String)>, ClusterError> {
        Ok(self
            .db
            .lease_holder_url(lease, self.dead_after.as_millis() as i64)
            .await?)
    }

    /// Every held lease `(name, holder)`, for the status page.
    pub async fn leases(&self) -> Result<Vec<(String, String)>, ClusterError> {
        Ok(self.db.leases().await?)
    }

    /// Keeps this node's row fresh (address, media addresses, its `load()`) until `stop`, then removes it. On
    /// SQLite the only node holds every lease's work: the gauge says so (an alert on a missing leader is not
    /// set off by a single-node deployment).
    pub async fn run_membership(
        self: Arc<Self>,
        media_addresses: String,
        load: Arc<dyn Fn() -> NodeLoad + Send + Sync>,
        gauges: (prometheus::IntGauge, prometheus::IntGaugeVec),
        mut stop: watch::Receiver<bool>,
    ) {
        if !self.is_shared() {
            for name in crate::cluster::status::REQUIRED_LEASES
                .iter()
                .chain([&crate::cluster::status::SIEM_LEASE])
            {
                gauges.1.with_label_values(&[name]).set(1);
            }
            return;
        }
        loop {
            let load = load();
            let row = NodeRow {
                node_id: self.node_id.clone(),
                internal_url: self.internal_url.get().cloned().unwrap_or_default(),
                media_addresses: media_addresses.clone(),
                sockets: load.sockets,
                live_visits: load.live_visits,
                draining: load.draining,
                started_at: self.started_at,
                heartbeat_at: 0,
            };
            if let Err(e) = self.db.heartbeat(&row).await {
                tracing::warn!(error = %e, "cluster heartbeat failed");
            }
            // A crashed node is reported dead (degraded) for a while, then forgotten.
            if let Err(e) = self.db.forget_silent_nodes(FORGET_DEAD_NODES_MS).await {
                tracing::debug!(error = %e, "dead nodes could not be forgotten");
            }
            if let (Ok(nodes), Ok(leases)) = (self.live_node_ids().await, self.leases().await) {
                gauges.0.set(nodes.len() as i64);
                gauges.1.reset();
                for (name, _) in leases.iter().filter(|(_, holder)| *holder == self.node_id) {
                    gauges.1.with_label_values(&[name.as_str()]).set(1);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if let Err(e) = self.db.leave_cluster(&self.node_id).await {
            tracing::warn!(error = %e, "could not leave the cluster cleanly; the others will declare this node dead");
        }
    }

    /// `work` as a worker that runs only while this node holds the lease `name` (at most one node at a time):
    /// it waits for the lease, starts `work`, renews every heartbeat, and stops `work` (its stop signal) when
    /// the lease is lost, to wait for it again. On stop it releases the lease so another node takes it at once.
    /// On SQLite `work` simply runs.
    pub fn leased<F, Fut>(
        self: &Arc<Self>,
        name: &'static str,
        work: F,
    ) -> impl FnOnce(watch::Receiver<bool>) -> BoxedJob + use<F, Fut>
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cluster = self.clone();
        move |stop| Box::pin(async move { cluster.hold(name, work, stop).await })
    }

    async fn try_lease(&self, name: &str) -> Result<bool, StoreError> {
        self.db
            .acquire_lease(name, &self.node_id, self.dead_after.as_millis() as i64)
            .await
    }

    async fn hold<F, Fut>(&self, name: &'static str, work: F, mut stop: watch::Receiver<bool>)
    where
        F: Fn(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if !self.is_shared() {
            return work(stop).await;
        }
        loop {
            loop {
                match self.try_lease(name).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(lease = name, error = %e, "lease not renewable"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.heartbeat) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            tracing::info!(lease = name, node = %self.node_id, "lease taken");
            let (job_stop, job_stop_rx) = watch::channel(false);
            let taken = tokio::time::Instant::now();
            let mut job = tokio::spawn(work(job_stop_rx));
            // Ours until one heartbeat before it could expire (the renewal's own round trip included): past that
            // another node may take it, so the work is stopped first.
            let margin = self.dead_after.saturating_sub(self.heartbeat);
            let mut valid_until = taken + margin;
            enum Turn {
                Renew,
                Expiring,
                Stop,
                Ended(Result<(), tokio::task::JoinError>),
            }
            let (lost, ended) = loop {
                // Decided first, acted on after: the stop signal's guard must not live across an await.
                let turn = tokio::select! {
                    _ = tokio::time::sleep(self.heartbeat) => Turn::Renew,
                    _ = tokio::time::sleep_until(valid_until) => Turn::Expiring,
                    _ = stop.wait_for(|s| *s) => Turn::Stop,
                    result = &mut job => Turn::Ended(result),
                };
                let asked = tokio::time::Instant::now();
                match turn {
                    Turn::Stop => break (false, None),
                    Turn::Ended(result) => break (false, Some(result)),
                    Turn::Expiring => {
                        tracing::warn!(lease = name, "lease could not be renewed in time");
                        break (true, None);
                    }
                    // A renewal that hangs (the database unreachable) must not outlast the lease.
                    // Counted from before the call: the database's new expiry is no earlier than that.
                    Turn::Renew => match tokio::time::timeout_at(valid_until, self.try_lease(name)).await {
                        Ok(Ok(true)) => valid_until = asked + margin,
                        Ok(Ok(false)) => break (true, None),
                        Ok(Err(e)) => {
                            tracing::warn!(lease = name, error = %e, "lease renewal failed; retrying")
                        }
                        Err(_) => {
                            tracing::warn!(lease = name, "lease could not be renewed in time");
                            break (true, None);
                        }
                    },
                }
            };
            let result = match ended {
                Some(result) => result,
                None => {
                    let _ = job_stop.send(true);
                    // Within the heartbeat of margin left: a job that does not stop by then is aborted.
                    match tokio::time::timeout(self.heartbeat, &mut job).await {
                        Ok(result) => result,
                        Err(_) => {
                            job.abort();
                            Ok(())
                        }
                    }
                }
            };
            if lost {
                tracing::warn!(lease = name, node = %self.node_id, "lease lost; waiting to take it again");
                continue;
            }
            if let Err(e) = self.db.release_lease(name, &self.node_id).await {
                tracing::warn!(lease = name, error = %e, "lease not released; it expires on its own");
            }
            if let Err(e) = result
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
            return;
        }
    }

    /// A signed request to another node's internal listener; the answer's body.
    pub async fn call(
        &self,
        node: &str,
        url: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, ClusterError> {
        let failed = |reason: String| ClusterError::Call {
            node: node.to_string(),
            reason,
        };
        // reqwest's message alone ("error sending request") hides the cause.
        let chain = |e: reqwest::Error| {
            let e = e.without_url();
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        };
        let signature = crate::crypto::signature(
            self.key.expose_secret(),
            now_ms() / 1000,
            &signed(&self.node_id, path, &body),
        );
        let response = self
            .http
            .post(format!("{}{path}", url.trim_end_matches('/')))
            .header(NODE_HEADER, &self.node_id)
            .header(SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| failed(chain(e)))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| failed(chain(e)))?;
        if !status.is_success() {
            return Err(failed(format!("status {status}")));
        }
        Ok(bytes.to_vec())
    }

    /// Whether a request to the internal listener at `path` was signed by `node` with the cluster key within the
    /// window (a copy replayed within it is possible: the calls it carries are idempotent or refused twice).
    pub fn verify(&self, node: Option<&str>, path: &str, signature: Option<&str>, body: &[u8]) -> bool {
        let (Some(node), Some(signature)) = (node, signature) else {
            return false;
        };
        crate::crypto::verify_signature(
            self.key.expose_secret(),
            signature,
            &signed(node, path, body),
            now_ms() / 1000,
            SIGNATURE_WINDOW_SECONDS,
        )
    }
}

/// What a node-to-node signature covers: the calling node, the route and the body.
fn signed(node: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{node}\n{path}\n").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
