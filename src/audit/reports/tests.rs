//! The reports over one scripted day of a small clinic.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::csv::csv_field;
use super::*;
use crate::store::AuditRow;

fn event(
    seq: i64,
    at_ms: i64,
    who: &str,
    action: &str,
    resource: &str,
    outcome: &str,
    reason: &str,
) -> AuditRow {
    // `actor/role`
    let (actor, role) = who.split_once('/').unwrap();
    AuditRow {
        seq,
        at_ms,
        request_id: format!("req{seq}"),
        actor: actor.into(),
        role: role.parse().unwrap(),
        action: action.into(),
        resource: resource.into(),
        outcome: crate::store::Outcome::parse(outcome).unwrap(),
        reason: reason.into(),
        prev_hash: String::new(),
        hash: format!("h{seq}"),
    }
}

const H: i64 = 3_600_000;

/// One day of a small clinic: a consented recorded visit, a declined one, a nurse reading her own chat, a
/// nurse refused another's recording list, compliance viewing, a hold, a deletion.
fn day() -> Vec<AuditRow> {
    let flags = |c: &str, consent: &str, status: &str, rec: Option<&str>| {
        json!({"conversation": c, "queue": "triage", "interaction_type": "video", "consent": consent,
               "recording_status": status, "data_classification": "phi.chat+media", "recording": rec})
        .to_string()
    };
    vec![
        event(
            1,
            H,
            "n1/nurse",
            "conversation.accept",
            "conversation:c1",
            "success",
            "",
        ),
        event(
            2,
            2 * H,
            "n1/nurse",
            "conversation.read",
            "conversation:c1",
            "success",
            "",
        ),
        event(
            3,
            3 * H,
            "system/anonymous",
            "recording.start",
            "recording:r1",
            "success",
            &format!(
                "visit:v1 policy:standard consent:recorded conversation:c1 retain_until:{}",
                10 * H
            ),
        ),
        event(
            4,
            4 * H,
            "system/anonymous",
            "visit.classified",
            "visit:v1",
            "success",
            &flags("c1", "given", "enabled", Some("r1")),
        ),
        event(
            5,
            5 * H,
            "system/anonymous",
            "visit.classified",
            "visit:v2",
            "success",
            &flags("c1", "declined", "disabled_by_consent", None),
        ),
        event(
            6,
            6 * H,
            "n2/nurse",
            "recording.list",
            "recording:*",
            "denied",
            "role may not view recordings",
        ),
        event(
            7,
            7 * H,
            "co/compliance_officer",
            "recording.download",
            "recording:r1",
            "success",
            "incident 42",
        ),
        event(
            8,
            8 * H,
            "n1/nurse",
            "conversation.read",
            "conversation:c9",
            "success",
            "",
        ),
        event(
            9,
            9 * H,
            "co/compliance_officer",
            "recording.legal_hold.set",
            "recording:r1",
            "success",
            "litigation",
        ),
        event(
            10,
            11 * H,
            "co/compliance_officer",
            "recording.legal_hold.release",
            "recording:r1",
            "success",
            "settled",
        ),
        event(
            11,
            12 * H,
            "system/anonymous",
            "recording.deleted",
            "recording:r1",
            "success",
            &json!({"recording": "r1", "retain_until_ms": 10 * H, "deleted_at_ms": 12 * H}).to_string(),
        ),
    ]
}

fn q(kind: &str, from: i64, to: i64, threshold: u32) -> ReportQuery {
    ReportQuery {
        report: ReportKind::parse(kind).unwrap(),
        from_ms: from,
        to_ms: to,
        time_zone: None,
        exposure_threshold: threshold,
        patient: None,
    }
}

fn head() -> ChainHead {
    ChainHead {
        seq: 11,
        hash: "h11".into(),
    }
}

#[test]
fn access_lists_reads_and_denials_in_range_only() {
    let r = compute(&q("access", 0, 24 * H, 0), head(), &day());
    let actions: Vec<&str> = r.rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "conversation.accept",
            "conversation.read",
            "recording.list",
            "recording.download",
            "conversation.read",
            "recording.legal_hold.set",
            "recording.legal_hold.release"
        ]
    );
    assert_eq!(r.summary["denied"], 1);
    let narrow = compute(&q("access", 6 * H, 7 * H, 0), head(), &day());
    assert_eq!(narrow.rows.len(), 1, "from inclusive, to exclusive");
    assert_eq!(narrow.rows[0]["outcome"], "denied");
}

#[test]
fn consent_counts_visits_and_finds_recordings_without_consent() {
    let r = compute(&q("consent", 0, 24 * H, 0), head(), &day());
    assert_eq!(r.summary["visits"], 2);
    assert_eq!(r.summary["with_recording_consent"], 1);
    assert_eq!(r.summary["recordings_without_consent"], 0);
    let mut bad = day();
    bad[3].reason = bad[3].reason.replace("\"given\"", "\"declined\"");
    let r = compute(&q("consent", 0, 24 * H, 0), head(), &bad);
    assert_eq!(
        r.summary["recordings_without_consent"], 1,
        "a recording of a declined visit is caught"
    );
}

#[test]
fn chat_only_interactions_are_consent_rows_with_their_agent_flag() {
    // As `messaging::classify` writes them (the audit layer does not reach up to messaging).
    let chat = |seq: i64, c: &str, kind: &str, authorized: bool| {
        let chat_only = kind == "chat";
        let flags = json!({"conversation": c, "queue": "spanish", "interaction_type": kind,
            "visits": if chat_only { 0 } else { 1 }, "consent": if chat_only { "not_applicable" } else { "see_visits" },
            "recording_status": if chat_only { "none" } else { "see_visits" }, "data_classification": "phi.chat",
            "agent_authorized": authorized, "ended": "finished"});
        event(
            seq,
            11 * H,
            "system:classifier/system",
            "conversation.classified",
            &format!("conversation:{c}"),
            "success",
            &flags.to_string(),
        )
    };
    let mut events = day();
    let next = events.len() as i64 + 1;
    events.extend([
        chat(next, "c7", "chat", false),
        chat(next + 1, "c1", "video", true),
    ]);
    let r = compute(&q("consent", 0, 24 * H, 0), head(), &events);
    assert_eq!(r.summary["visits"], 2, "visits are counted apart");
    assert_eq!(
        r.summary["chat_only_interactions"], 1,
        "a chat with video is in its visits' rows"
    );
    assert_eq!(r.summary["agents_not_authorized"], 1);
    let row = r.rows.iter().find(|r| r["conversation"] == "c7").unwrap();
    assert_eq!(
        (
            &row["interaction_type"],
            &row["consent"],
            &row["visit"],
            &row["agent_authorized"]
        ),
        (
            &json!("chat"),
            &json!("not_applicable"),
            &Value::Null,
            &json!(false)
        )
    );
    assert!(r.columns.contains(&"agent_authorized"));
}

#[test]
fn retention_as_of_the_end_of_the_range() {
    let before_expiry = compute(&q("retention", 0, 9 * H, 0), head(), &day()[..8]);
    assert_eq!(before_expiry.rows[0]["status"], "retained");
    let overdue = compute(&q("retention", 0, 10 * H + 1, 0), head(), &day()[..8]);
    assert_eq!(overdue.summary["past_retention_not_deleted"], 1);
    let held = compute(&q("retention", 0, 10 * H + 1, 0), head(), &day()[..9]);
    assert_eq!(held.rows[0]["status"], "legal_hold", "a hold is not overdue");
    let done = compute(&q("retention", 0, 24 * H, 0), head(), &day());
    assert_eq!(done.rows[0]["status"], "deleted");
    assert_eq!(done.rows[0]["receipt"]["deleted_at_ms"], 12 * H);
    assert_eq!(done.summary["past_retention_not_deleted"], 0);
    // Later events do not rewrite what a range saw: read from the whole chain, as of 10:00 the hold (set at
    // 9:00, released at 11:00) was on, and as of 11:30 the recording was overdue (deleted only at 12:00).
    let as_of_ten = compute(&q("retention", 0, 10 * H + 1, 0), head(), &day());
    assert_eq!(as_of_ten.rows[0]["status"], "legal_hold");
    let as_of_half_past_eleven = compute(&q("retention", 0, 11 * H + H / 2, 0), head(), &day());
    assert_eq!(
        as_of_half_past_eleven.rows[0]["status"],
        "past_retention_not_deleted"
    );
    let mut early = day();
    early[10].reason =
        json!({"recording": "r1", "retain_until_ms": 10 * H, "deleted_at_ms": 8 * H}).to_string();
    let early = compute(&q("retention", 0, 24 * H, 0), head(), &early);
    assert_eq!(early.rows[0]["status"], "deleted_before_retention_ended");
}

#[test]
fn exposure_separates_own_assignments_and_flags_above_the_threshold() {
    let r = compute(&q("exposure", 0, 24 * H, 1), head(), &day());
    let by: HashMap<&str, &BTreeMap<&str, Value>> = r
        .rows
        .iter()
        .map(|row| (row["actor"].as_str().unwrap(), row))
        .collect();
    assert_eq!(by["n1"]["records_accessed"], 2, "c1 and c9");
    assert_eq!(by["n1"]["outside_assignments"], 1, "c9 was never assigned to her");
    assert_eq!(by["n1"]["flagged"], false, "one is not above a threshold of one");
    assert_eq!(by["n2"]["denied_attempts"], 1);
    assert_eq!(by["co"]["outside_assignments"], 1);
    // A read before the accept is outside the assignment, even though the nurse accepted later.
    let mut late = day();
    late.swap(0, 1);
    (late[0].at_ms, late[1].at_ms) = (H, 2 * H);
    let r = compute(&q("exposure", 0, 24 * H, 5), head(), &late);
    let n1 = r.rows.iter().find(|row| row["actor"] == "n1").unwrap();
    assert_eq!(n1["outside_assignments"], 2, "c1 read before its accept, and c9");
    let strict = compute(&q("exposure", 0, 24 * H, 0), head(), &day());
    assert_eq!(strict.summary["flagged"], 2);
}

#[test]
fn time_zone_is_for_display_and_csv_carries_the_head() {
    let mut query = ReportQuery::new(
        "access",
        "1970-01-01",
        "1970-01-02T00:00:00Z",
        Some("America/Chicago"),
        0,
    )
    .unwrap();
    let r = compute(&query, head(), &day());
    assert_eq!(r.rows[0]["at"], "1970-01-01T01:00:00.000Z");
    assert_eq!(
        r.rows[0]["at_local"],
        "1969-12-31T19:00:00.000-06:00[America/Chicago]"
    );
    query.time_zone = None;
    let utc = compute(&query, head(), &day());
    assert_eq!(utc.rows.len(), r.rows.len(), "the zone changes no row");
    let csv = r.to_csv();
    assert!(csv.contains("# chain_head: seq=11 hash=h11"));
    assert!(csv.contains("\r\nseq,at,actor,"));
    assert_eq!(
        ReportQuery::new("access", "x", "2026-01-01", None, 0),
        Err(ReportError::BadTime("from"))
    );
    assert_eq!(
        ReportQuery::new("access", "2026-01-02", "2026-01-01", None, 0),
        Err(ReportError::EmptyRange)
    );
    assert_eq!(
        ReportQuery::new("access", "2026-01-01", "2026-01-02", Some("Mars/Olympus"), 0),
        Err(ReportError::BadTimeZone)
    );
    assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_eq!(csv_field("@sum"), "'@sum");
}

#[test]
fn actors_are_named_beside_their_ids() {
    let mut r = super::Report {
        report: "access",
        parameters: serde_json::json!({}),
        chain_head: super::ChainHead {
            seq: 1,
            hash: String::new(),
        },
        summary: serde_json::json!({}),
        columns: vec!["at", "actor", "action"],
        rows: ["nurse-1", "system:retention", "patient-9"]
            .into_iter()
            .map(|a| [("actor", serde_json::json!(a))].into_iter().collect())
            .collect(),
    };
    let staff = [("nurse-1".to_string(), "Nora Demo".to_string())]
        .into_iter()
        .collect();
    r.name_actors(&staff);
    assert_eq!(r.columns, ["at", "actor", "actor_name", "action"]);
    let names: Vec<&str> = r
        .rows
        .iter()
        .map(|row| row["actor_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Nora Demo", "system (retention)", ""]);
}

#[test]
fn the_accounting_lists_every_access_to_one_patients_chats_and_their_recordings() {
    let mut events = vec![event(
        0,
        0,
        "p1/patient",
        "conversation.create",
        "conversation:c1",
        "success",
        "",
    )];
    events.extend(day());
    let q = q("accounting", 0, 24 * H, 0).with_patient(Some("p1")).unwrap();
    let r = compute(&q, head(), &events);
    let seen: Vec<(&str, &str)> = r
        .rows
        .iter()
        .map(|row| (row["action"].as_str().unwrap(), row["resource"].as_str().unwrap()))
        .collect();
    // The nurse's read of c1 and the officer's acts on r1 (c1's recording); not the read of c9, nor the
    // refused list of every recording.
    assert_eq!(
        seen,
        [
            ("conversation.accept", "conversation:c1"),
            ("conversation.read", "conversation:c1"),
            ("recording.download", "recording:r1"),
            ("recording.legal_hold.set", "recording:r1"),
            ("recording.legal_hold.release", "recording:r1"),
        ]
    );
    assert_eq!(r.summary["by_others"], 5);
    assert_eq!(r.parameters["patient"], "p1");
    // Someone else's accounting is empty; the report needs its patient, and only it takes one.
    let other = q.clone().with_patient(Some("p2")).unwrap();
    assert!(compute(&other, head(), &events).rows.is_empty());
    assert!(
        super::ReportQuery::new("accounting", "2026-01-01", "2026-01-02", None, 0)
            .unwrap()
            .with_patient(None)
            .is_err()
    );
    assert!(
        super::ReportQuery::new("access", "2026-01-01", "2026-01-02", None, 0)
            .unwrap()
            .with_patient(Some("p1"))
            .is_err()
    );
}
