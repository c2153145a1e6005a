//! Compliance reports, computed from the audit chain alone and up to a stated chain head, so a report can be
//! recomputed later with the same parameters and head and come out identical (evidence that cannot be
//! reproduced is not evidence). Four reports: who accessed patient data (access), which visits were recorded
//! with or without consent (consent), whether retention was honoured (retention), how much patient data
//! each staff member touched outside their own assignments (exposure), and every access to one patient's chats
//! and recordings (accounting, HIPAA's accounting of disclosures). Pure functions over events: no
//! database, no HTTP; [`load_chain`] is the only I/O, and [`produce`] adds one display column from the staff
//! directory (`actor_name`: a renamed person shows their name now; the rows, the head and the parameters are the
//! evidence a recomputation must match). `facts` reads the bookkeeping events, `tables` computes the
//! four reports, `csv` writes them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::store::{AuditHead, AuditRow, Db, StoreError};

mod csv;
mod facts;
mod tables;
#[cfg(test)]
mod tests;

pub use facts::ACCESS_ACTIONS;
use facts::Facts;
use tables::{access, accounting, consent, exposure, retention};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Access,
    Consent,
    Retention,
    Exposure,
    /// One patient's accounting of disclosures: every access to their chats and recordings, by anyone.
    Accounting,
}

impl ReportKind {
    pub fn parse(s: &str) -> Option<ReportKind> {
        Some(match s {
            "access" => ReportKind::Access,
            "consent" => ReportKind::Consent,
            "retention" => ReportKind::Retention,
            "exposure" => ReportKind::Exposure,
            "accounting" => ReportKind::Accounting,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Access => "access",
            ReportKind::Consent => "consent",
            ReportKind::Retention => "retention",
            ReportKind::Exposure => "exposure",
            ReportKind::Accounting => "accounting",
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
    #[error("report: one of access, consent, retention, exposure, accounting")]
    UnknownKind,
    #[error(
        "patient: the accounting report is for one patient (their portal subject), and only it takes one"
    )]
    Patient,
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
    /// Accounting: whose record (the patient's portal subject).
    pub patient: Option<String>,
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
            patient: None,
        })
    }

    /// The patient an accounting report is for: required by it, refused by the others.
    pub fn with_patient(mut self, patient: Option<&str>) -> Result<ReportQuery, ReportError> {
        let patient = patient.map(str::trim).filter(|p| !p.is_empty());
        if patient.is_some() != (self.report == ReportKind::Accounting) {
            return Err(ReportError::Patient);
        }
        self.patient = patient.map(str::to_string);
        Ok(self)
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

/// Loads the chain up to `head_seq`, computes the report and names its actors (from the staff directory):
/// what the API and the command line both run.
pub async fn produce(
    db: &Db,
    q: &ReportQuery,
    head_seq: Option<i64>,
) -> Result<Result<Report, ReportError>, StoreError> {
    let (head, events) = match load_chain(db, head_seq).await? {
        Ok(chain) => chain,
        Err(e) => return Ok(Err(e)),
    };
    let mut report = compute(q, head, &events);
    let actors: std::collections::BTreeSet<&str> = report
        .rows
        .iter()
        .filter_map(|r| r.get("actor")?.as_str())
        .collect();
    let actors: Vec<&str> = actors.into_iter().collect();
    let names = db.staff_names(&actors).await?;
    report.name_actors(&names);
    Ok(Ok(report))
}

impl Report {
    /// Names each row's actor beside its id (`actor_name`, after `actor`): staff as the directory knows them,
    /// the broker's own jobs as `system (<job>)`; patients and unknown subjects keep their id only. Names are
    /// display, not evidence: the rows, the head and the parameters are what a recomputation must match.
    pub fn name_actors(&mut self, staff: &std::collections::HashMap<String, String>) {
        let Some(at) = self.columns.iter().position(|c| *c == "actor") else {
            return;
        };
        self.columns.insert(at + 1, "actor_name");
        for row in &mut self.rows {
            let actor = row.get("actor").and_then(Value::as_str).unwrap_or_default();
            let name = match actor.strip_prefix("system:") {
                Some(job) => format!("system ({job})"),
                None => staff.get(actor).cloned().unwrap_or_default(),
            };
            row.insert("actor_name", json!(name));
        }
    }

    /// The audit event of reading this report; the caller says who read it.
    pub fn read_event(&self) -> super::AuditEvent {
        super::AuditEvent::new("audit.report", "audit_log:*", super::Outcome::Success)
            .reason(format!("{} {}", self.report, self.parameters))
    }
}

/// Computes a report over `events` (the chain up to `head`, oldest first).
pub fn compute(q: &ReportQuery, head: ChainHead, events: &[AuditRow]) -> Report {
    let facts = Facts::gather(events, q.to_ms);
    let (summary, columns, mut rows) = match q.report {
        ReportKind::Access => access(q, events),
        ReportKind::Consent => consent(q, &facts),
        ReportKind::Retention => retention(q, &facts),
        ReportKind::Exposure => exposure(q, events, &facts),
        ReportKind::Accounting => accounting(q, events, &facts),
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
    let mut parameters = json!({
        "report": q.report,
        "from": ts(q.from_ms),
        "to": ts(q.to_ms),
        "time_zone": q.time_zone,
        "exposure_threshold": q.exposure_threshold,
        "head_seq": head.seq,
    });
    // Only the accounting report names a patient.
    if let Some(p) = &q.patient {
        parameters["patient"] = json!(p);
    }
    Report {
        report: q.report.as_str(),
        parameters,
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

pub(super) fn ts(ms: i64) -> String {
    crate::clock::timestamp(ms)
}

pub(super) fn in_range(q: &ReportQuery, at_ms: i64) -> bool {
    at_ms >= q.from_ms && at_ms < q.to_ms
}
