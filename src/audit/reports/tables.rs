//! The four reports as tables: a summary, the column order, and one row per event, visit, recording or staff
//! member.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::facts::{Facts, is_access};
use super::{ReportQuery, in_range, ts};
use crate::audit::Outcome;
use crate::store::AuditRow;

const DAY_MS: i64 = 86_400_000;

type Table = (Value, Vec<&'static str>, Vec<BTreeMap<&'static str, Value>>);

pub(super) fn access(q: &ReportQuery, events: &[AuditRow]) -> Table {
    let rows: Vec<BTreeMap<&'static str, Value>> = events
        .iter()
        .filter(|e| in_range(q, e.at_ms) && is_access(e))
        .map(|e| {
            BTreeMap::from([
                ("seq", json!(e.seq)),
                ("at", json!(ts(e.at_ms))),
                ("actor", json!(e.actor)),
                ("role", json!(e.role)),
                ("action", json!(e.action)),
                ("resource", json!(e.resource)),
                ("outcome", json!(e.outcome)),
                ("reason", json!(e.reason)),
                ("request_id", json!(e.request_id)),
            ])
        })
        .collect();
    let denied = rows
        .iter()
        .filter(|r| r["outcome"] == Outcome::Denied.as_str())
        .count();
    let actors: BTreeSet<&str> = rows.iter().filter_map(|r| r["actor"].as_str()).collect();
    (
        json!({"accesses": rows.len(), "denied": denied, "actors": actors.len()}),
        vec![
            "seq",
            "at",
            "actor",
            "role",
            "action",
            "resource",
            "outcome",
            "reason",
            "request_id",
        ],
        rows,
    )
}

/// Every access to one patient's chats (those they started, by the chain's `conversation.create`) and to the
/// recordings of those chats' visits, by anyone, with its purpose (the reason given) and outcome.
pub(super) fn accounting(q: &ReportQuery, events: &[AuditRow], f: &Facts) -> Table {
    let patient = q.patient.as_deref().unwrap_or_default();
    let chats: BTreeSet<String> = events
        .iter()
        .filter(|e| e.action == "conversation.create" && e.outcome == Outcome::Success && e.actor == patient)
        .map(|e| e.resource.clone())
        .collect();
    let recordings: BTreeSet<String> = f
        .recordings
        .iter()
        .filter(|(_, r)| {
            r.conversation
                .as_ref()
                .is_some_and(|c| chats.contains(&format!("conversation:{c}")))
        })
        .map(|(id, _)| format!("recording:{id}"))
        .collect();
    let (_, columns, rows) = access(q, events);
    let rows: Vec<BTreeMap<&'static str, Value>> = rows
        .into_iter()
        .filter(|r| {
            r["resource"]
                .as_str()
                .is_some_and(|res| chats.contains(res) || recordings.contains(res))
        })
        .collect();
    // People other than the patient (the broker's own jobs are bookkeeping, not disclosures).
    let by_others = rows
        .iter()
        .filter(|r| r["actor"] != patient && !r["actor"].as_str().unwrap_or_default().starts_with("system:"))
        .count();
    (
        json!({"patient": patient, "conversations": chats.len(), "recordings": recordings.len(),
               "accesses": rows.len(), "by_others": by_others}),
        columns,
        rows,
    )
}

pub(super) fn consent(q: &ReportQuery, f: &Facts) -> Table {
    let mut rows = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (id, v) in &f.visits {
        if !in_range(q, v.at_ms) {
            continue;
        }
        let consent = v.flags["consent"].as_str().unwrap_or("unknown").to_string();
        *counts.entry(consent.clone()).or_default() += 1;
        rows.push(BTreeMap::from([
            ("at", json!(ts(v.at_ms))),
            ("visit", json!(id)),
            ("queue", v.flags["queue"].clone()),
            ("interaction_type", v.flags["interaction_type"].clone()),
            ("consent", json!(consent)),
            ("recording_status", v.flags["recording_status"].clone()),
            ("data_classification", v.flags["data_classification"].clone()),
            ("recording", v.flags["recording"].clone()),
            ("conversation", v.flags["conversation"].clone()),
            ("agent_authorized", v.flags["agent_authorized"].clone()),
        ]));
    }
    let visits = rows.len();
    // Chat-only interactions: classified too, with nothing recorded and so nothing to consent to. A chat that
    // went to video is in the rows of its visits.
    for (id, c) in &f.chats {
        if !in_range(q, c.at_ms) || c.flags["interaction_type"] != "chat" {
            continue;
        }
        rows.push(BTreeMap::from([
            ("at", json!(ts(c.at_ms))),
            ("visit", Value::Null),
            ("queue", c.flags["queue"].clone()),
            ("interaction_type", c.flags["interaction_type"].clone()),
            ("consent", c.flags["consent"].clone()),
            ("recording_status", c.flags["recording_status"].clone()),
            ("data_classification", c.flags["data_classification"].clone()),
            ("recording", Value::Null),
            ("conversation", json!(id)),
            ("agent_authorized", c.flags["agent_authorized"].clone()),
        ]));
    }
    let not_authorized = rows
        .iter()
        .filter(|r| r["agent_authorized"] == json!(false))
        .count();
    // A recording is without consent when its own start says so, or when the visit it belongs to was
    // classified as declined or never answered.
    let without: Vec<Value> = f
        .recordings
        .iter()
        .filter(|(_, r)| in_range(q, r.started_ms))
        .filter(|(_, r)| {
            let visit_consent = f.visits.get(&r.visit).and_then(|v| v.flags["consent"].as_str());
            !matches!(r.consent.as_str(), "recorded" | "not_required")
                || matches!(visit_consent, Some("declined") | Some("pending"))
        })
        .map(|(id, r)| json!({"recording": id, "visit": r.visit, "consent": r.consent}))
        .collect();
    let count =
        |states: &[&str]| -> u64 { states.iter().map(|c| counts.get(*c).copied().unwrap_or(0)).sum() };
    let recorded = f
        .recordings
        .values()
        .filter(|r| in_range(q, r.started_ms))
        .count();
    (
        json!({
            "visits": visits,
            "chat_only_interactions": rows.len() - visits,
            // Seed 003's agent-authorization flag: a nurse without the queue's skills or grant took part.
            "agents_not_authorized": not_authorized,
            "by_consent": counts,
            "with_recording_consent": counts.get("given").copied().unwrap_or(0),
            // Asked and not given; visits whose policy records without asking, or records nothing, are apart.
            "without_recording_consent": count(&["declined", "pending"]),
            "consent_not_asked": count(&["not_required", "not_applicable"]),
            "recordings": recorded,
            "recordings_without_consent": without.len(),
            "recordings_without_consent_ids": without,
        }),
        vec![
            "at",
            "visit",
            "queue",
            "interaction_type",
            "consent",
            "recording_status",
            "data_classification",
            "recording",
            "conversation",
            "agent_authorized",
        ],
        rows,
    )
}

pub(super) fn retention(q: &ReportQuery, f: &Facts) -> Table {
    let as_of = q.to_ms;
    let mut rows = Vec::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (id, r) in &f.recordings {
        let deleted_in_range = r.deleted.as_ref().is_some_and(|(at, _)| in_range(q, *at));
        // The receipt's deletion time is the sweep's clock (which `--now` can set); the event's is when it ran.
        let deleted_ms = r
            .deleted
            .as_ref()
            .map(|(at, receipt)| receipt["deleted_at_ms"].as_i64().unwrap_or(*at));
        let status = match (&r.deleted, r.retain_until_ms) {
            (Some(_), Some(until)) if deleted_in_range && deleted_ms.is_some_and(|d| d < until) => {
                "deleted_before_retention_ended"
            }
            (Some(_), _) if deleted_in_range => "deleted",
            (Some(_), _) => continue,
            (None, _) if r.started_ms >= q.to_ms => continue,
            (None, _) if r.held => "legal_hold",
            (None, Some(until)) if until <= as_of => "past_retention_not_deleted",
            (None, Some(_)) => "retained",
            (None, None) => "retention_unknown",
        };
        *counts.entry(status).or_default() += 1;
        let (deleted_at, receipt) = match &r.deleted {
            Some((at, receipt)) => (json!(ts(*at)), receipt.clone()),
            None => (Value::Null, Value::Null),
        };
        rows.push(BTreeMap::from([
            ("class", json!("recording")),
            ("record", json!(format!("recording:{id}"))),
            ("recording", json!(id)),
            ("policies", json!(r.policies)),
            ("at", json!(ts(r.started_ms))),
            (
                "retain_until",
                r.retain_until_ms.map(|t| json!(ts(t))).unwrap_or(Value::Null),
            ),
            ("legal_hold", json!(r.held)),
            ("status", json!(status)),
            ("deleted_at", deleted_at),
            ("receipt", receipt),
        ]));
    }
    // Chats, wrap-ups and visit records removed in the range, each with its receipt.
    let mut phi = 0;
    for (at, record, receipt) in f.phi_removed.iter().filter(|(at, _, _)| in_range(q, *at)) {
        phi += 1;
        rows.push(BTreeMap::from([
            ("class", receipt["class"].clone()),
            ("record", json!(record)),
            ("recording", Value::Null),
            ("policies", Value::Null),
            ("at", json!(ts(*at))),
            ("retain_until", Value::Null),
            ("legal_hold", json!(false)),
            ("status", json!("deleted")),
            ("deleted_at", json!(ts(*at))),
            ("receipt", receipt.clone()),
        ]));
    }
    (
        json!({
            "as_of": ts(as_of),
            "chats_and_visit_records_removed": phi,
            "past_retention_not_deleted": counts.get("past_retention_not_deleted").copied().unwrap_or(0),
            "legal_holds": counts.get("legal_hold").copied().unwrap_or(0),
            "deleted": counts.get("deleted").copied().unwrap_or(0),
            "deleted_before_retention_ended": counts.get("deleted_before_retention_ended").copied().unwrap_or(0),
            "retained": counts.get("retained").copied().unwrap_or(0),
        }),
        vec![
            "class",
            "record",
            "recording",
            "policies",
            "at",
            "retain_until",
            "legal_hold",
            "status",
            "deleted_at",
            "receipt",
        ],
        rows,
    )
}

pub(super) fn exposure(q: &ReportQuery, events: &[AuditRow], f: &Facts) -> Table {
    #[derive(Default)]
    struct Member {
        role: String,
        records: BTreeSet<String>,
        outside: BTreeSet<String>,
        /// (time, record) of each access outside the member's assignments.
        outside_at: Vec<(i64, String)>,
        denied: u64,
        /// Break-glass grants taken: each one is shown and flags the member for review.
        break_glass: u64,
    }
    let mut staff: BTreeMap<String, Member> = BTreeMap::new();
    let mut break_glass = 0u64;
    for e in events
        .iter()
        .filter(|e| in_range(q, e.at_ms) && e.action == "access.break_glass" && e.outcome == Outcome::Success)
    {
        let m = staff.entry(e.actor.clone()).or_default();
        m.role = e.role.as_str().to_string();
        m.break_glass += 1;
        break_glass += 1;
    }
    for e in events.iter().filter(|e| in_range(q, e.at_ms) && is_access(e)) {
        // The workforce and machine clients; patients' own reads, refused callers and the broker are not staff.
        if !(e.role.is_staff() || e.role == crate::role::Role::Service) {
            continue;
        }
        let m = staff.entry(e.actor.clone()).or_default();
        m.role = e.role.as_str().to_string();
        if e.outcome == Outcome::Denied {
            m.denied += 1;
            continue;
        }
        if e.outcome != Outcome::Success || e.resource.ends_with(":*") {
            continue;
        }
        m.records.insert(e.resource.clone());
        // A preview is of a chat the routing offered her (the policy allows nothing else): inside her work.
        let assigned = e.action == "conversation.preview"
            || f.conversation_of(&e.resource)
                .and_then(|c| f.assignments.get(&(e.actor.clone(), c)))
                .is_some_and(|accepted| *accepted <= e.at_ms);
        if !assigned {
            m.outside.insert(e.resource.clone());
            m.outside_at.push((e.at_ms, e.resource.clone()));
        }
    }
    let mut flagged = 0;
    let rows: Vec<BTreeMap<&'static str, Value>> = staff
        .into_iter()
        .map(|(actor, m)| {
            // The busiest 24 hours: distinct records outside assignments in a window opening at each access.
            let (mut peak, mut window_start) = (0usize, None);
            for (start, _) in &m.outside_at {
                let n = m
                    .outside_at
                    .iter()
                    .filter(|(t, _)| *t >= *start && *t < start + DAY_MS)
                    .map(|(_, r)| r)
                    .collect::<BTreeSet<_>>()
                    .len();
                if n > peak {
                    (peak, window_start) = (n, Some(*start));
                }
            }
            let is_flagged = peak > q.exposure_threshold as usize || m.break_glass > 0;
            flagged += usize::from(is_flagged);
            BTreeMap::from([
                ("actor", json!(actor)),
                ("role", json!(m.role)),
                ("records_accessed", json!(m.records.len())),
                ("outside_assignments", json!(m.outside.len())),
                ("max_outside_in_24h", json!(peak)),
                (
                    "window_start",
                    window_start.map(|t| json!(ts(t))).unwrap_or(Value::Null),
                ),
                ("denied_attempts", json!(m.denied)),
                ("break_glass", json!(m.break_glass)),
                ("flagged", json!(is_flagged)),
            ])
        })
        .collect();
    (
        json!({"staff": rows.len(), "flagged": flagged, "break_glass": break_glass, "threshold_per_24h": q.exposure_threshold}),
        vec![
            "actor",
            "role",
            "records_accessed",
            "outside_assignments",
            "max_outside_in_24h",
            "window_start",
            "denied_attempts",
            "break_glass",
            "flagged",
        ],
        rows,
    )
}
