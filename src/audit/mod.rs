//! The audit trail: who did what to which resource, when, why, and with what outcome. Events are append-only
//! and hash-chained (each event's hash covers its contents and the previous hash), so an edited, deleted,
//! reordered or truncated history is detected by [`verify::verify_chain`]. Events name resources by opaque ids
//! and carry reason codes, never message text or other PHI.

pub mod alerts;
pub mod checkpoint;
pub mod evidence;
pub mod reports;
pub mod schedule;
pub mod siem;
pub mod signed;
pub mod verify;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::auth::{Principal, Role};
use crate::clock::now_ms;
use crate::ids::RequestId;
pub use crate::store::Outcome;
use crate::store::{AuditHead, AuditRow, Db, StoreError};

/// Hash that precedes the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to record. `resource` is a type and an opaque id (`session:ab12…`), never a name.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: String,
    pub role: Role,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
    pub reason: String,
    pub request_id: Option<RequestId>,
}

impl AuditEvent {
    pub fn new(action: impl Into<String>, resource: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            actor: "anonymous".into(),
            role: Role::Anonymous,
            action: action.into(),
            resource: resource.into(),
            outcome,
            reason: String::new(),
            request_id: None,
        }
    }
    /// An event of the broker's own work, no person acting: the actor is `system:<job>` (the recorder, the
    /// retention sweep, …), so a reviewer reads which part of the broker did it rather than `anonymous`.
    pub fn system(
        job: &str,
        action: impl Into<String>,
        resource: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self::new(action, resource, outcome).actor(format!("system:{job}"), Role::System)
    }
    pub fn by(mut self, principal: &Principal) -> Self {
        self.actor = principal.subject.as_str().to_string();
        self.role = principal.primary_role();
        self
    }
    pub fn actor(mut self, actor: impl Into<String>, role: Role) -> Self {
        self.actor = actor.into();
        self.role = role;
        self
    }
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }
    pub fn request(mut self, id: Option<&RequestId>) -> Self {
        self.request_id = id.cloned();
        self
    }
}

/// Appends events to the chain.
/// The process's one audit writer; clones share it (the lock included), so every component appends through the
/// same queue.
#[derive(Clone)]
pub struct Auditor {
    db: Db,
    /// One append at a time within a node; across nodes the database lock on the head row orders appends.
    lock: std::sync::Arc<Mutex<()>>,
    appended: prometheus::IntCounterVec,
}

impl Auditor {
    pub fn new(db: Db, appended: prometheus::IntCounterVec) -> Self {
        Self {
            db,
            lock: std::sync::Arc::new(Mutex::new(())),
            appended,
        }
    }

    pub async fn record(&self, event: AuditEvent) -> Result<AuditRow, StoreError> {
        // Background work has no HTTP request: each of its events gets an id of its own, so every row (and the
        // SIEM record made from it) can be correlated with the log line that names it.
        let request_id = event.request_id.clone().unwrap_or_else(RequestId::random);
        let _guard = self.lock.lock().await;
        let row = self
            .db
            .append_audit(|head: &AuditHead| {
                let mut row = AuditRow {
                    seq: head.seq + 1,
                    // Stamped while the head is held: with several writers (nodes) times follow the chain's order.
                    at_ms: now_ms(),
                    request_id: request_id.as_str().to_string(),
                    actor: event.actor.clone(),
                    role: event.role,
                    action: event.action.clone(),
                    resource: event.resource.clone(),
                    outcome: event.outcome,
                    reason: event.reason.clone(),
                    prev_hash: head.hash.clone(),
                    hash: String::new(),
                };
                row.hash = event_hash(&row);
                row
            })
            .await?;
        self.appended.with_label_values(&[row.outcome.as_str()]).inc();
        Ok(row)
    }

    /// Records an event where failing to audit must not fail the caller's response (e.g. the audit of a refused
    /// request): the failure is logged loudly instead.
    pub async fn record_or_log(&self, event: AuditEvent) {
        let action = event.action.clone();
        if let Err(e) = self.record(event).await {
            tracing::error!(%action, error = %e, "could not write audit event");
        }
    }
}

/// SHA-256 over the previous hash and every field, each length-prefixed so that no two different events
/// serialise to the same bytes.
pub fn event_hash(row: &AuditRow) -> String {
    let mut h = Sha256::new();
    h.update(b"examroom-audit-v1");
    let seq = row.seq.to_string();
    let at = row.at_ms.to_string();
    for field in [
        row.prev_hash.as_str(),
        &seq,
        &at,
        &row.request_id,
        &row.actor,
        row.role.as_str(),
        &row.action,
        &row.resource,
        row.outcome.as_str(),
        &row.reason,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}
