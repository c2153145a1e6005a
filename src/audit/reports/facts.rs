//! What the bookkeeping events of the audit chain say about recordings, visits and assignments, as of a
//! moment, and which events count as access to patient data.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::audit::Outcome;
use crate::store::AuditRow;

/// Actions that read or take hold of patient data (the others on patient resources are the system's own
/// bookkeeping: a recording started, stored, deleted). A `conversation.preview` (who the patient is, shown with
/// every offer) is access too; the exposure table counts it inside the nurse's work (`tables.rs`).
pub const ACCESS_ACTIONS: &[&str] = &[
    "conversation.read",
    "conversation.preview",
    "conversation.wrap_up.view",
    "conversation.transcript.view",
    "conversation.accept",
    "recording.list",
    "recording.view",
    "recording.stream",
    "recording.download",
    "recording.legal_hold.set",
    "recording.legal_hold.release",
    "recording.pause",
    "recording.resume",
];

/// `kind:id` → the id, when the resource is of that kind.
fn id_of<'a>(resource: &'a str, kind: &str) -> Option<&'a str> {
    resource.strip_prefix(kind)?.strip_prefix(':')
}

/// `key:value` words of a bookkeeping reason (`visit:v1 policy:p consent:recorded`).
fn words(reason: &str) -> HashMap<&str, &str> {
    reason
        .split_whitespace()
        .filter_map(|w| w.split_once(':'))
        .collect()
}

#[derive(Debug, Default, Clone)]
pub(super) struct RecordingFacts {
    pub(super) visit: String,
    pub(super) conversation: Option<String>,
    pub(super) consent: String,
    pub(super) policies: String,
    pub(super) started_ms: i64,
    pub(super) retain_until_ms: Option<i64>,
    pub(super) held: bool,
    pub(super) deleted: Option<(i64, Value)>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct VisitFacts {
    pub(super) at_ms: i64,
    pub(super) flags: Value,
}

/// What the bookkeeping events say about recordings, visits and assignments.
#[derive(Default)]
pub(super) struct Facts {
    pub(super) recordings: BTreeMap<String, RecordingFacts>,
    pub(super) visits: BTreeMap<String, VisitFacts>,
    /// Each closed chat's flags (`conversation.classified`), by conversation.
    pub(super) chats: BTreeMap<String, VisitFacts>,
    /// When each actor first accepted each conversation.
    pub(super) assignments: BTreeMap<(String, String), i64>,
    /// Chats and visit records the retention sweep removed: (when, `conversation:…` or `visit:…`, receipt).
    pub(super) phi_removed: Vec<(i64, String, Value)>,
}

impl Facts {
    /// The facts as of `as_of`: later events (a hold released after the range, a deletion after it) do not
    /// rewrite what the range saw.
    pub(super) fn gather(events: &[AuditRow], as_of: i64) -> Facts {
        let mut f = Facts::default();
        for e in events {
            if e.outcome != Outcome::Success || e.at_ms >= as_of {
                continue;
            }
            match e.action.as_str() {
                "recording.start" => {
                    let Some(id) = id_of(&e.resource, "recording") else {
                        continue;
                    };
                    let w = words(&e.reason);
                    f.recordings.insert(
                        id.to_string(),
                        RecordingFacts {
                            visit: w.get("visit").unwrap_or(&"").to_string(),
                            conversation: w.get("conversation").map(|c| c.to_string()),
                            consent: w.get("consent").unwrap_or(&"unknown").to_string(),
                            policies: w.get("policy").unwrap_or(&"").to_string(),
                            started_ms: e.at_ms,
                            retain_until_ms: w.get("retain_until").and_then(|t| t.parse().ok()),
                            ..Default::default()
                        },
                    );
                }
                "recording.legal_hold.set" | "recording.legal_hold.release" => {
                    if let Some(r) = id_of(&e.resource, "recording").and_then(|id| f.recordings.get_mut(id)) {
                        r.held = e.action.ends_with(".set");
                    }
                }
                "recording.deleted" => {
                    if let Some(r) = id_of(&e.resource, "recording").and_then(|id| f.recordings.get_mut(id)) {
                        let receipt: Value = serde_json::from_str(&e.reason).unwrap_or(Value::Null);
                        if r.retain_until_ms.is_none() {
                            r.retain_until_ms = receipt["retain_until_ms"].as_i64();
                        }
                        r.deleted = Some((e.at_ms, receipt));
                    }
                }
                "retention.conversation_deleted" | "retention.visit_deleted" => {
                    let receipt: Value = serde_json::from_str(&e.reason).unwrap_or(Value::Null);
                    f.phi_removed.push((e.at_ms, e.resource.clone(), receipt));
                }
                "visit.classified" => {
                    if let Some(id) = id_of(&e.resource, "visit") {
                        let flags: Value = serde_json::from_str(&e.reason).unwrap_or(Value::Null);
                        f.visits.insert(
                            id.to_string(),
                            VisitFacts {
                                at_ms: e.at_ms,
                                flags,
                            },
                        );
                    }
                }
                "conversation.classified" => {
                    if let Some(id) = id_of(&e.resource, "conversation") {
                        let flags: Value = serde_json::from_str(&e.reason).unwrap_or(Value::Null);
                        f.chats.insert(
                            id.to_string(),
                            VisitFacts {
                                at_ms: e.at_ms,
                                flags,
                            },
                        );
                    }
                }
                "conversation.accept" => {
                    if let Some(c) = id_of(&e.resource, "conversation") {
                        f.assignments
                            .entry((e.actor.clone(), c.to_string()))
                            .or_insert(e.at_ms);
                    }
                }
                _ => {}
            }
        }
        f
    }

    /// The conversation a patient-data resource belongs to, when the chain says.
    pub(super) fn conversation_of(&self, resource: &str) -> Option<String> {
        if let Some(c) = id_of(resource, "conversation") {
            return Some(c.to_string());
        }
        if let Some(r) = id_of(resource, "recording") {
            return self.recordings.get(r)?.conversation.clone();
        }
        if let Some(v) = id_of(resource, "visit") {
            return self.visits.get(v)?.flags["conversation"]
                .as_str()
                .map(str::to_string);
        }
        None
    }
}

fn is_patient_resource(resource: &str) -> bool {
    ["conversation:", "recording:", "visit:"]
        .iter()
        .any(|p| resource.starts_with(p))
}

pub(super) fn is_access(e: &AuditRow) -> bool {
    is_patient_resource(&e.resource)
        && (ACCESS_ACTIONS.contains(&e.action.as_str()) || e.outcome == Outcome::Denied)
}
