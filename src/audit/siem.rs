//! SIEM export: every audit event is POSTed to each configured webhook, in chain order, as JSON (or a FHIR R4
//! AuditEvent). Each request carries `X-Examroom-Event-Id` (the event's chain hash: a retry after a lost
//! response or a crash mid-post carries the same id, so a receiver keeps each event once) and `X-Examroom-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (receivers reject a signature outside their
//! replay window). The chain itself is the durable outbox: a per-webhook cursor advances only after a 2xx, so
//! nothing is lost while a SIEM is down; delivery retries with exponential backoff. TLS per webhook: a pinned CA
//! and a client certificate for receivers that require mutual TLS (`config::WebhookConfig::client`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::WebhookConfig;
use crate::store::{AuditRow, Db};

/// The webhook signature (`t=…,v1=…`) and its check, shared with node-to-node requests.
pub use crate::crypto::{signature, verify_signature as verify};

pub fn as_json(e: &AuditRow) -> Value {
    json!({
        "id": e.hash,
        "seq": e.seq,
        "at": crate::clock::timestamp(e.at_ms),
        "request_id": e.request_id,
        "actor": e.actor,
        "role": e.role,
        "action": e.action,
        "resource": e.resource,
        "outcome": e.outcome,
        "reason": e.reason,
        "prev_hash": e.prev_hash,
    })
}

/// A FHIR R4 AuditEvent for SIEMs that speak FHIR.
pub fn as_fhir(e: &AuditRow) -> Value {
    let outcome = match e.outcome.as_str() {
        "success" => "0",
        "denied" => "4",
        _ => "8",
    };
    json!({
        "resourceType": "AuditEvent",
        "id": e.hash,
        "type": {"system": "urn:examroom:audit", "code": e.action},
        "recorded": crate::clock::timestamp(e.at_ms),
        "outcome": outcome,
        "outcomeDesc": e.reason,
        "agent": [{"who": {"identifier": {"value": e.actor}}, "role": [{"text": e.role}], "requestor": true}],
        "source": {"observer": {"display": "examroom"}},
        "entity": [{"what": {"identifier": {"value": e.resource}}}],
    })
}

/// Delivers what each webhook has not acknowledged yet; runs until `stop`.
pub async fn run(db: Db, hooks: Vec<WebhookConfig>, stop: tokio::sync::watch::Receiver<bool>) {
    if hooks.is_empty() {
        return;
    }
    // One task per webhook, each with its own client (its pinned CA and client certificate): a receiver that is
    // down or slow delays only its own deliveries.
    let mut tasks = tokio::task::JoinSet::new();
    for hook in hooks {
        match hook.client() {
            Ok(http) => {
                tasks.spawn(deliver_forever(db.clone(), http, hook, stop.clone()));
            }
            // Validated at start; a certificate file that has since gone bad stops this webhook alone.
            Err((field, why)) => {
                tracing::error!(webhook = %hook.name, field, why, "SIEM client unusable: this webhook gets nothing");
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Delivers to one webhook whatever it has not acknowledged, every half second, backing off after failures.
async fn deliver_forever(
    db: Db,
    http: reqwest::Client,
    hook: WebhookConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Validated at start; a key that has since gone missing or empty stops this webhook rather than sign with
    // an empty key.
    let Some(secret) = std::fs::read_to_string(&hook.secret_file)
        .ok()
        .map(|k| k.trim().as_bytes().to_vec())
        .filter(|k| !k.is_empty())
    else {
        tracing::error!(webhook = %hook.name, "SIEM secret unreadable or empty: this webhook gets nothing");
        return;
    };
    const IDLE: Duration = Duration::from_millis(500);
    let mut wait = IDLE;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = match deliver(&db, &http, &hook, &secret, &stop).await {
            Ok(()) => IDLE,
            Err(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, "SIEM delivery failed; retrying later");
                // Exponential backoff up to a minute: the first retry comes after a second.
                (wait * 2).min(Duration::from_secs(60))
            }
        };
    }
}

/// Posts the events after the webhook's cursor in order, advancing it after each 2xx. A stop (the lease going to
/// another node, a drain) is heeded between events, never between a post and its cursor: a handover repeats
/// nothing unless a receiver is still answering when the lease's grace (one heartbeat) runs out, and a crash
/// mid-post can repeat the one event in flight; a repeat has the same id and body.
async fn deliver(
    db: &Db,
    http: &reqwest::Client,
    hook: &WebhookConfig,
    secret: &[u8],
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let mut cursor = db.siem_cursor(&hook.name).await.map_err(|e| e.to_string())?;
    loop {
        let events = db.audit_events(cursor, 100).await.map_err(|e| e.to_string())?;
        if events.is_empty() {
            return Ok(());
        }
        for e in &events {
            if *stop.borrow() {
                return Ok(());
            }
            let body = serde_json::to_vec(&if hook.format == "fhir" {
                as_fhir(e)
            } else {
                as_json(e)
            })
            .expect("JSON values serialise");
            let resp = http
                .post(&hook.url)
                .header(
                    "content-type",
                    if hook.format == "fhir" {
                        "application/fhir+json"
                    } else {
                        "application/json"
                    },
                )
                .header("x-examroom-event-id", &e.hash)
                .header(
                    "x-examroom-signature",
                    signature(secret, chrono::Utc::now().timestamp(), &body),
                )
                .body(body)
                .send()
                .await
                // Without the URL: a receiver's token in its query string must not reach the logs.
                .map_err(|err| format!("request failed: {}", err.without_url()))?;
            if !resp.status().is_success() {
                return Err(format!("receiver answered {}", resp.status()));
            }
            cursor = e.seq;
            db.set_siem_cursor(&hook.name, cursor)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_time_and_body_and_expire() {
        let h = signature(b"k", 1_000, b"{}");
        assert!(verify(b"k", &h, b"{}", 1_100, 300));
        assert!(!verify(b"k", &h, b"{ }", 1_100, 300), "another body");
        assert!(!verify(b"other", &h, b"{}", 1_100, 300), "another secret");
        assert!(!verify(b"k", &h, b"{}", 2_000, 300), "outside the replay window");
        assert!(!verify(b"k", "t=1000", b"{}", 1_000, 300));
    }
}
