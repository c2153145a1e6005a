//! A visit's recording as the console shows it: the first part's id, queue, consent, retention and hold; the
//! state, end, size and timeline of all its parts (a visit that moved between nodes has one per node); a short
//! reference, its length, who took part (staff by the name they signed in with, from the staff directory) and,
//! in detail, the parts and segments.

use std::collections::HashMap;

use serde_json::json;

use super::ApiError;
use crate::app::AppState;
use crate::recording::timeline::Participant;
use crate::visit::service::VisitRecording;

/// The staff id a participant is known by: a nurse's `staff_id`, an interpreter's or a physician's
/// `guest_id` (a guest's is opaque and names no one).
fn staff_id(p: &Participant) -> Option<&str> {
    match p.role.as_str() {
        "nurse" => p.staff_id.as_deref(),
        "interpreter" | "physician" => p.guest_id.as_deref(),
        _ => None,
    }
}

/// The names of the staff in these recordings, by id (each looked up once).
pub(super) async fn staff_names(
    app: &AppState,
    recs: &[&VisitRecording],
) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for rec in recs {
        let Some(manifest) = rec.timeline() else { continue };
        for p in &manifest.participants {
            let Some(id) = staff_id(p) else { continue };
            if seen.insert(id.to_string())
                && let Some(name) = app.db.staff_display_name(id).await?
            {
                out.insert(id.to_string(), name);
            }
        }
    }
    Ok(out)
}

/// A short reference to quote (a complaint, a request): the recording id's first 48 bits, grouped for reading
/// aloud (two recordings share one once in about sixteen million).
pub fn reference(id: &str) -> String {
    let hex = id.trim_start_matches('r').to_ascii_uppercase();
    let group = |n: usize| hex.get(n * 4..n * 4 + 4).unwrap_or_default().to_string();
    format!("REC-{}-{}-{}", group(0), group(1), group(2))
}

pub(super) fn view(
    rec: &VisitRecording,
    detail: bool,
    names: &HashMap<String, String>,
) -> Option<serde_json::Value> {
    let head = rec.parts.first()?;
    let timeline = rec.timeline();
    let mut manifest = serde_json::to_value(&timeline).unwrap_or_default();
    let mut nurses: Vec<String> = Vec::new();
    let mut roles: Vec<String> = Vec::new();
    let typed = timeline.iter().flat_map(|t| &t.participants);
    if let Some(people) = manifest["participants"].as_array_mut() {
        for (p, json) in typed.zip(people.iter_mut()) {
            let name = staff_id(p).and_then(|id| names.get(id)).cloned();
            if p.role == "nurse" {
                nurses.push(name.clone().unwrap_or_else(|| "a nurse".into()));
            }
            roles.push(p.role.clone());
            if let Some(name) = name {
                json["name"] = json!(name);
            }
        }
    }
    let duration_s = timeline
        .as_ref()
        .and_then(|t| Some((t.ended_ms? - t.started_ms) / 1000));
    let mut v = json!({
        "id": head.id,
        "reference": reference(&head.id),
        "visit_id": head.visit_id,
        "queue": head.queue,
        "policies": head.policies.split(',').collect::<Vec<_>>(),
        "consent": head.consent,
        "state": rec.state(),
        "started_at": crate::clock::timestamp(head.started_at),
        "ended_at": rec.parts.last().and_then(|p| p.ended_at).map(crate::clock::timestamp),
        "duration_s": duration_s,
        "nurses": nurses,
        "participants": roles,
        "retain_until": crate::clock::timestamp(head.retain_until),
        "legal_hold": head.legal_hold,
        "bytes": rec.bytes(),
        "manifest": manifest,
    });
    if detail {
        v["parts"] = rec
            .parts
            .iter()
            .map(|p| {
                json!({
                    "id": p.id,
                    "state": p.state,
                    "started_at": crate::clock::timestamp(p.started_at),
                    "ended_at": p.ended_at.map(crate::clock::timestamp),
                })
            })
            .collect();
        v["segments"] = rec
            .segments
            .iter()
            .map(|s| {
                json!({
                    "part": s.recording_id,
                    "seq": s.seq,
                    "start_ms": s.start_ms,
                    "end_ms": s.end_ms,
                    "bytes": s.sealed_bytes,
                    "stored": s.stored,
                })
            })
            .collect();
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reference_is_short_and_from_the_id() {
        assert_eq!(
            super::reference("r0a1b2c3d4e5f60718293a4b5"),
            "REC-0A1B-2C3D-4E5F"
        );
    }
}
