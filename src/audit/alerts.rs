//! Alerts for the compliance officer, raised by the broker itself rather than found in a report later: every
//! break-glass access, repeated refusals of one person (`alerts.denied_attempts` in ten minutes), and a staff
//! member crossing the exposure threshold (`reports.exposure_threshold` distinct records outside their own
//! assignments in the last 24 hours). Each is an `alert.*` audit event by `system:alerts`, so it reaches every
//! SIEM webhook like any event and the console lists it; [`detect`] is a pure function over the recent chain,
//! and each alert has a key (in its resource, `alert:<key>`) so that checking again, on this node or another,
//! never raises it twice.

use std::collections::{BTreeMap, BTreeSet};

use super::reports::{ChainHead, ReportQuery, compute};
use super::{AuditEvent, Auditor, Outcome};
use crate::store::{AuditRow, Db, StoreError};

/// How far back a check reads: the exposure window.
pub const WINDOW_MS: i64 = 24 * 3_600_000;
/// Refusals are counted in windows this long.
const DENIED_WINDOW_MS: i64 = 10 * 60_000;

#[derive(Debug, Clone, Copy)]
pub struct AlertRules {
    pub exposure_threshold: u32,
    /// Refusals of one person within ten minutes that raise an alert.
    pub denied_attempts: u32,
}

/// One alert to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `break_glass`, `denied_attempts` or `exposure`.
    pub kind: &'static str,
    /// What makes it this alert and no other (the same condition found again is the same key).
    pub key: String,
    /// Whom it is about.
    pub actor: String,
    pub detail: String,
}

/// The alerts `events` (the chain's last [`WINDOW_MS`] up to `now_ms`, oldest first) call for, whether raised
/// already or not.
pub fn detect(events: &[AuditRow], now_ms: i64, rules: AlertRules) -> Vec<Alert> {
    let mut out = Vec::new();
    for e in events
        .iter()
        .filter(|e| e.action == "access.break_glass" && e.outcome == Outcome::Success)
    {
        out.push(Alert {
            kind: "break_glass",
            key: format!("break_glass:{}", e.seq),
            actor: e.actor.clone(),
            detail: format!("break-glass access to {} by {} ({})", e.resource, e.actor, e.role),
        });
    }
    // Refusals of one signed-in person (not `anonymous`, which is every caller without a session, nor the
    // broker's own jobs): `denied_attempts` of them within ten minutes, keyed by the burst's first event.
    let mut denied: BTreeMap<&str, Vec<&AuditRow>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.outcome == Outcome::Denied && e.actor != "anonymous" && !e.actor.starts_with("system:"))
    {
        denied.entry(e.actor.as_str()).or_default().push(e);
    }
    let need = rules.denied_attempts.max(1) as usize;
    for (actor, list) in denied {
        let mut i = 0;
        while i + need <= list.len() {
            if list[i + need - 1].at_ms - list[i].at_ms <= DENIED_WINDOW_MS {
                out.push(Alert {
                    kind: "denied_attempts",
                    key: format!("denied_attempts:{actor}:{}", list[i].seq),
                    actor: actor.to_string(),
                    detail: format!("{need} refused attempts by {actor} within ten minutes"),
                });
                i += need;
            } else {
                i += 1;
            }
        }
    }
    let q = ReportQuery::new(
        "exposure",
        "1970-01-01",
        "1970-01-02",
        None,
        rules.exposure_threshold,
    )
    .map(|mut q| {
        q.from_ms = now_ms - WINDOW_MS;
        q.to_ms = now_ms;
        q
    });
    if let Ok(q) = q {
        let head = ChainHead {
            seq: events.last().map_or(0, |e| e.seq),
            hash: String::new(),
        };
        let last = head.seq;
        for row in compute(&q, head, events).rows {
            // Over the threshold itself (the report also flags break-glass, which has its own alert).
            let peak = row
                .get("max_outside_in_24h")
                .and_then(|p| p.as_u64())
                .unwrap_or(0);
            if peak <= rules.exposure_threshold as u64 {
                continue;
            }
            let actor = row.get("actor").and_then(|a| a.as_str()).unwrap_or_default();
            out.push(Alert {
                kind: "exposure",
                // One a day per person: `check` skips it while one for them is in the window.
                key: format!("exposure:{actor}:{last}"),
                actor: actor.to_string(),
                detail: format!(
                    "{actor} accessed more records outside their assignments in 24 hours than the threshold ({})",
                    rules.exposure_threshold
                ),
            });
        }
    }
    out
}

/// Reads the recent chain and raises the alerts not raised yet; returns how many.
pub async fn check(db: &Db, audit: &Auditor, rules: AlertRules, now_ms: i64) -> Result<usize, StoreError> {
    let events = db.audit_events_since(now_ms - WINDOW_MS).await?;
    let raised: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.action.starts_with("alert."))
        .filter_map(|e| e.resource.strip_prefix("alert:"))
        .collect();
    let exposed: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.action == "alert.exposure")
        .filter_map(|e| {
            e.resource
                .strip_prefix("alert:exposure:")?
                .rsplit_once(':')
                .map(|(a, _)| a)
        })
        .collect();
    let mut n = 0;
    for a in detect(&events, now_ms, rules) {
        if raised.contains(a.key.as_str()) || (a.kind == "exposure" && exposed.contains(a.actor.as_str())) {
            continue;
        }
        audit
            .record_or_log(
                AuditEvent::system(
                    "alerts",
                    format!("alert.{}", a.kind),
                    format!("alert:{}", a.key),
                    Outcome::Success,
                )
                .reason(a.detail),
            )
            .await;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        seq: i64,
        at_ms: i64,
        actor: &str,
        role: &str,
        action: &str,
        resource: &str,
        outcome: &str,
    ) -> AuditRow {
        AuditRow {
            seq,
            at_ms,
            request_id: String::new(),
            actor: actor.into(),
            role: role.parse().unwrap(),
            action: action.into(),
            resource: resource.into(),
            outcome: Outcome::parse(outcome).unwrap(),
            reason: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn break_glass_repeated_refusals_and_exposure_each_raise_one_alert() {
        let rules = AlertRules {
            exposure_threshold: 1,
            denied_attempts: 3,
        };
        let now = 10 * WINDOW_MS;
        let mut events = vec![event(
            1,
            now - 1000,
            "s1",
            "supervisor",
            "access.break_glass",
            "conversation:c1",
            "success",
        )];
        // Three refusals of n2 within ten minutes; two of n3.
        for i in 0..3 {
            events.push(event(
                2 + i,
                now - 60_000 + i,
                "n2",
                "nurse",
                "recording.list",
                "recording:*",
                "denied",
            ));
        }
        for i in 0..2 {
            events.push(event(
                5 + i,
                now - 60_000 + i,
                "n3",
                "nurse",
                "recording.list",
                "recording:*",
                "denied",
            ));
        }
        // n4 reads two chats that are not hers (threshold 1).
        for (i, c) in ["conversation:c7", "conversation:c8"].into_iter().enumerate() {
            events.push(event(
                7 + i as i64,
                now - 30_000,
                "n4",
                "nurse",
                "conversation.read",
                c,
                "success",
            ));
        }
        // Refusals without a session are everyone's, not one person's.
        for i in 0..5 {
            events.push(event(
                20 + i,
                now - 50_000 + i,
                "anonymous",
                "anonymous",
                "auth.request",
                "session:*",
                "denied",
            ));
        }
        let alerts = detect(&events, now, rules);
        let kinds: Vec<(&str, &str)> = alerts.iter().map(|a| (a.kind, a.actor.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("break_glass", "s1"),
                ("denied_attempts", "n2"),
                ("exposure", "n4")
            ],
            "not n3 (two refusals), not anonymous, and no exposure alert for s1's break-glass"
        );
        // A minute later the same events give the same break-glass and refusal keys (raised once).
        let later = detect(&events, now + 60_000, rules);
        assert_eq!(alerts[..2], later[..2]);
        // Refusals spread over more than ten minutes are not a burst.
        let spread: Vec<AuditRow> = (0..3)
            .map(|i| {
                event(
                    30 + i,
                    now - i * 6 * 60_000,
                    "n5",
                    "nurse",
                    "recording.list",
                    "recording:*",
                    "denied",
                )
            })
            .rev()
            .collect();
        assert!(detect(&spread, now, rules).is_empty());
    }
}
