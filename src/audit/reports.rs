//! Compliance reports, computed from the audit chain alone and up to a stated chain head, so a report can be
//! recomputed later with the same parameters and head and come out identical (evidence that cannot be
//! reproduced is not evidence). Four reports: who accessed patient data (access), which visits were recorded
//! with or without consent (consent), whether retention was honoured (retention), and how much patient data
//! each staff member touched outside their own assignments (exposure). Pure functions over events: no
//! database, no HTTP; [`load_chain`] is the only I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use crate::store::{AuditHead, AuditRow, Db, StoreError};

/// Actions that read or take hold of patient data (the others on patient resources are the system's own
/// bookkeeping: a recording started, stored, deleted).
pub const ACCESS_ACTIONS: &[&str] = &[
    "conversation.read",
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

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Access,
    Consent,
    Retention,
    Exposure,
}

impl ReportKind {
    pub fn parse(s: &str) -> Option<ReportKind> {
        Some(match s {
            "access" => ReportKind::Access,
            "consent" => ReportKind::Consent,
            "retention" => ReportKind::Retention,
            "exposure" => ReportKind::Exposure,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Access => "access",
            ReportKind::Consent => "consent",
            ReportKind::Retention => "retention",
            ReportKind::Exposure => "exposure",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("{0}: expected an ISO 8601 time such as 2026-11-01T00:00:00Z or a date such as 2026-11-01")]
    BadTime(&'static str),
    #[error("from: must be before to")]
    EmptyRange,
    #[error("tz: not an IANA time zone (such as America/Chicago)")]
    BadTimeZone,
    #[error("head_seq: the chain has no event {0}")]
    BadHead(i64),
    #[error("report: one of access, consent, retention, exposure")]
    UnknownKind,
}

/// What a report was asked for; echoed in the report so that it can be run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportQuery {
    pub report: ReportKind,
    /// Inclusive start, UTC milliseconds.
    #[serde(skip)]
    pub from_ms: i64,
    /// Exclusive end, UTC milliseconds; also the "as of" instant of the retention report.
    #[serde(skip)]
    pub to_ms: i64,
    /// IANA zone for display only: every time is also shown in it; nothing is computed in it.
    pub time_zone: Option<String>,
    /// Staff exposure: distinct records outside one's assignments in any 24 hours above which a member is flagged.
    pub exposure_threshold: u32,
}

impl ReportQuery {
    pub fn new(
        report: &str,
        from: &str,
        to: &str,
        time_zone: Option<&str>,
        exposure_threshold: u32,
    ) -> Result<ReportQuery, ReportError> {
        let report = ReportKind::parse(report).ok_or(ReportError::UnknownKind)?;
        let from_ms = parse_time(from).ok_or(ReportError::BadTime("from"))?;
        let to_ms = parse_time(to).ok_or(ReportError::BadTime("to"))?;
        if from_ms >= to_ms {
            return Err(ReportError::EmptyRange);
        }
        if let Some(tz) = time_zone {
            jiff::tz::TimeZone::get(tz).map_err(|_| ReportError::BadTimeZone)?;
        }
        Ok(ReportQuery {
            report,
            from_ms,
            to_ms,
            time_zone: time_zone.map(str::to_string),
            exposure_threshold,
        })
    }
}

/// An RFC 3339 time (any offset, converted to UTC) or a bare date (midnight UTC).
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.timestamp_millis());
    }
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub report: &'static str,
    pub parameters: Value,
    /// The last event the report read: recompute with `head_seq` = this seq and the same parameters.
    pub chain_head: ChainHead,
    pub summary: Value,
    pub columns: Vec<&'static str>,
    pub rows: Vec<BTreeMap<&'static str, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// The chain up to `head_seq` (default: the current head), with the hash of that last event.
pub async fn load_chain(
    db: &Db,
    head_seq: Option<i64>,
) -> Result<Result<(ChainHead, Vec<AuditRow>), ReportError>, StoreError> {
    let AuditHead { seq: current, .. } = db.audit_head().await?;
    let head = head_seq.unwrap_or(current);
    if head < 0 || head > current {
        return Ok(Err(ReportError::BadHead(head)));
    }
    let mut events = Vec::new();
    let mut after = 0;
    while after < head {
        let page = db.audit_events(after, 1000.min(head - after)).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page.into_iter().filter(|e| e.seq <= head));
    }
    let hash = match events.last() {
        Some(e) => e.hash.clone(),
        None => super::GENESIS_HASH.to_string(),
    };
    Ok(Ok((ChainHead { seq: head, hash }, events)))
}

/// Computes a report over `events` (the chain up to `head`, oldest first).
pub fn compute(q: &ReportQuery, head: ChainHead, events: &[AuditRow]) -> Report {
    let facts = Facts::gather(events, q.to_ms);
    let (summary, columns, mut rows) = match q.report {
        ReportKind::Access => access(q, events),
        ReportKind::Consent => consent(q, &facts),
        ReportKind::Retention => retention(q, &facts),
        ReportKind::Exposure => exposure(q, events, &facts),
    };
    if let Some(tz) = q
        .time_zone
        .as_deref()
        .and_then(|z| jiff::tz::TimeZone::get(z).ok())
    {
        for row in &mut rows {
            let local: Vec<(&'static str, Value)> = row
                .iter()
                .filter_map(|(k, v)| Some((local_column(k)?, json!(local_time(v.as_str()?, &tz)?))))
                .collect();
            row.extend(local);
        }
    }
    let mut columns = columns;
    if q.time_zone.is_some() {
        let locals: Vec<&'static str> = columns.iter().filter_map(|c| local_column(c)).collect();
        columns.extend(locals);
    }
    Report {
        report: q.report.as_str(),
        parameters: json!({
            "report": q.report,
            "from": ts(q.from_ms),
            "to": ts(q.to_ms),
            "time_zone": q.time_zone,
            "exposure_threshold": q.exposure_threshold,
            "head_seq": head.seq,
        }),
        chain_head: head,
        summary,
        columns,
        rows,
    }
}

/// Time columns and the column that shows them in the display zone.
fn local_column(c: &str) -> Option<&'static str> {
    Some(match c {
        "at" => "at_local",
        "retain_until" => "retain_until_local",
        "deleted_at" => "deleted_at_local",
        "window_start" => "window_start_local",
        _ => return None,
    })
}

/// The same instant as local time in `tz`, with the zone's name: `2026-11-01T07:00:00.000-05:00[America/Chicago]`.
fn local_time(rfc3339: &str, tz: &jiff::tz::TimeZone) -> Option<String> {
    let utc = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    let offset = tz.to_offset(jiff::Timestamp::from_millisecond(utc.timestamp_millis()).ok()?);
    let local = utc.with_timezone(&chrono::FixedOffset::east_opt(offset.seconds())?);
    Some(format!(
        "{}[{}]",
        local.format("%Y-%m-%dT%H:%M:%S%.3f%:z"),
        tz.iana_name().unwrap_or("")
    ))
}

fn ts(ms: i64) -> String {
    crate::messaging::timestamp(ms)
}

fn in_range(q: &ReportQuery, at_ms: i64) -> bool {
    at_ms >= q.from_ms && at_ms < q.to_ms
}

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
struct RecordingFacts {
    visit: String,
    conversation: Option<String>,
    consent: String,
    policies: String,
    started_ms: i64,
    retain_until_ms: Option<i64>,
    held: bool,
    deleted: Option<(i64, Value)>,
}

#[derive(Debug, Default, Clone)]
struct VisitFacts {
    at_ms: i64,
    flags: Value,
}

/// What the bookkeeping events say about recordings, visits and assignments.
#[derive(Default)]
struct Facts {
    recordings: BTreeMap<String, RecordingFacts>,
    visits: BTreeMap<String, VisitFacts>,
    /// When each actor first accepted each conversation.
    assignments: BTreeMap<(String, String), i64>,
}

impl Facts {
    /// The facts as of `as_of`: later events (a hold released after the range, a deletion after it) do not
    /// rewrite what the range saw.
    fn gather(events: &[AuditRow], as_of: i64) -> Facts {
        let mut f = Facts::default();
        for e in events {
            if e.outcome != "success" || e.at_ms >= as_of {
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
    fn conversation_of(&self, resource: &str) -> Option<String> {
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

fn is_access(e: &AuditRow) -> bool {
    is_patient_resource(&e.resource) && (ACCESS_ACTIONS.contains(&e.action.as_str()) || e.outcome == "denied")
}

type Table = (Value, Vec<&'static str>, Vec<BTreeMap<&'static str, Value>>);

fn access(q: &ReportQuery, events: &[AuditRow]) -> Table {
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
    let denied = rows.iter().filter(|r| r["outcome"] == "denied").count();
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

fn consent(q: &ReportQuery, f: &Facts) -> Table {
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
        ]));
    }
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
            "visits": rows.len(),
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
        ],
        rows,
    )
}

fn retention(q: &ReportQuery, f: &Facts) -> Table {
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
    (
        json!({
            "as_of": ts(as_of),
            "past_retention_not_deleted": counts.get("past_retention_not_deleted").copied().unwrap_or(0),
            "legal_holds": counts.get("legal_hold").copied().unwrap_or(0),
            "deleted": counts.get("deleted").copied().unwrap_or(0),
            "deleted_before_retention_ended": counts.get("deleted_before_retention_ended").copied().unwrap_or(0),
            "retained": counts.get("retained").copied().unwrap_or(0),
        }),
        vec![
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

fn exposure(q: &ReportQuery, events: &[AuditRow], f: &Facts) -> Table {
    #[derive(Default)]
    struct Member {
        role: String,
        records: BTreeSet<String>,
        outside: BTreeSet<String>,
        /// (time, record) of each access outside the member's assignments.
        outside_at: Vec<(i64, String)>,
        denied: u64,
    }
    let mut staff: BTreeMap<String, Member> = BTreeMap::new();
    for e in events.iter().filter(|e| in_range(q, e.at_ms) && is_access(e)) {
        if !matches!(
            e.role.as_str(),
            "nurse" | "supervisor" | "compliance_officer" | "it_helpdesk" | "service"
        ) {
            continue;
        }
        let m = staff.entry(e.actor.clone()).or_default();
        m.role = e.role.clone();
        if e.outcome == "denied" {
            m.denied += 1;
            continue;
        }
        if e.outcome != "success" || e.resource.ends_with(":*") {
            continue;
        }
        m.records.insert(e.resource.clone());
        let assigned = f
            .conversation_of(&e.resource)
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
            let is_flagged = peak > q.exposure_threshold as usize;
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
                ("flagged", json!(is_flagged)),
            ])
        })
        .collect();
    (
        json!({"staff": rows.len(), "flagged": flagged, "threshold_per_24h": q.exposure_threshold}),
        vec![
            "actor",
            "role",
            "records_accessed",
            "outside_assignments",
            "max_outside_in_24h",
            "window_start",
            "denied_attempts",
            "flagged",
        ],
        rows,
    )
}

impl Report {
    /// CSV of the rows (quoted as RFC 4180 says), preceded by `#` comment lines carrying the parameters, the
    /// chain head and the summary, so a CSV on its own still says how to reproduce it (tell your CSV reader
    /// that `#` starts a comment).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("# examroom {} report\r\n", self.report));
        out.push_str(&format!("# parameters: {}\r\n", self.parameters));
        out.push_str(&format!(
            "# chain_head: seq={} hash={}\r\n",
            self.chain_head.seq, self.chain_head.hash
        ));
        out.push_str(&format!("# summary: {}\r\n", self.summary));
        out.push_str(
            &self
                .columns
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
        for row in &self.rows {
            let fields: Vec<String> = self
                .columns
                .iter()
                .map(|c| match row.get(c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => csv_field(s),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                    Some(v) => csv_field(&v.to_string()),
                })
                .collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    // A cell a spreadsheet would run as a formula (a reason typed as `=HYPERLINK(…)`) is kept as text.
    let s = &if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            role: role.into(),
            action: action.into(),
            resource: resource.into(),
            outcome: outcome.into(),
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
}
