//! SIEM export to real HTTP receivers started by the test: every audit event arrives signed (HMAC-SHA256 over
//! timestamp and body, checked with a replay window), in JSON and as FHIR AuditEvents; while a receiver is
//! down nothing is lost, and once it is back every event arrives, each id kept once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

use crate::common::Broker;

#[derive(Default)]
pub struct Receiver {
    pub up: bool,
    /// Events by id: the first body and how many times the id arrived.
    pub seen: HashMap<String, (Value, u32)>,
    /// Ids that arrived again with a different body (never allowed).
    pub changed: Vec<String>,
    bad_signatures: u32,
    /// Process the next event but answer 500, as if the response were lost.
    lose_next_response: bool,
}

pub type Shared = Arc<Mutex<Receiver>>;
pub const SECRET: &str = "siem-shared-secret";

async fn hook(State(r): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut r = r.lock().unwrap();
    if !r.up {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let sig = headers
        .get("x-examroom-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !examroom::audit::siem::verify(SECRET.as_bytes(), sig, &body, chrono::Utc::now().timestamp(), 300) {
        r.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers
        .get("x-examroom-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let event: Value = serde_json::from_slice(&body).unwrap();
    let entry = r.seen.entry(id.clone()).or_insert((event.clone(), 0));
    entry.1 += 1;
    if entry.0 != event {
        r.changed.push(id);
    }
    if std::mem::take(&mut r.lose_next_response) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

pub async fn receiver() -> (Shared, u16) {
    let shared: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, port)
}

async fn chain(data: &std::path::Path) -> Vec<String> {
    let pool = crate::storage::pool(data).await;
    let hashes: Vec<(String,)> = sqlx::query_as("SELECT hash FROM audit_events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    hashes.into_iter().map(|(h,)| h).collect()
}

async fn delivered(rx: &Shared, hashes: &[String]) -> bool {
    for _ in 0..150 {
        if hashes.iter().all(|h| rx.lock().unwrap().seen.contains_key(h)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn every_event_reaches_the_siem_signed_and_once_per_id_despite_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = dir.path().join("siem-secret");
    std::fs::write(&secret, SECRET).unwrap();
    let (json_rx, json_port) = receiver().await;
    let (fhir_rx, fhir_port) = receiver().await;
    fhir_rx.lock().unwrap().up = true;
    // The FHIR receiver loses its first response: the event comes again, with the same id and body.
    fhir_rx.lock().unwrap().lose_next_response = true;
    let hooks = format!(
        r#"[{{name = "soc", url = "http://127.0.0.1:{json_port}/hook", secret_file = "{s}"}}, {{name = "fhir", url = "http://127.0.0.1:{fhir_port}/hook", secret_file = "{s}", format = "fhir"}}]"#,
        s = secret.display()
    );
    let env = [("EXAMROOM_SIEM__WEBHOOKS", hooks.as_str())];
    let mut broker = Broker::dev(&data, &env);
    for user in ["nurse", "compliance"] {
        crate::demo::staff_cookie(&broker.url, &data, user).await;
    }
    // The SOC receiver is down, and stays down across a broker restart: nothing is acknowledged, nothing lost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(json_rx.lock().unwrap().seen.is_empty());
    assert!(broker.terminate().success());
    let broker = Broker::dev(&data, &env);
    for user in ["supervisor", "helpdesk"] {
        crate::demo::staff_cookie(&broker.url, &data, user).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    json_rx.lock().unwrap().up = true;

    let hashes = chain(&data).await;
    assert!(hashes.len() >= 4, "sign-ins are audited");
    for (name, rx) in [("json", &json_rx), ("fhir", &fhir_rx)] {
        assert!(delivered(rx, &hashes).await, "{name}: every event delivered");
        let r = rx.lock().unwrap();
        assert_eq!(r.bad_signatures, 0, "{name}: every signature verifies");
        assert!(
            r.changed.is_empty(),
            "{name}: a repeated id always carries the same event"
        );
        for h in &hashes {
            let (event, _) = &r.seen[h];
            match name {
                "json" => assert_eq!(event["id"].as_str(), Some(h.as_str())),
                _ => {
                    assert_eq!(event["resourceType"], "AuditEvent");
                    assert_eq!(event["id"].as_str(), Some(h.as_str()));
                }
            }
        }
        assert_eq!(
            r.seen.len(),
            hashes.len(),
            "{name}: nothing but the chain's events"
        );
    }
    // Only a lost response causes a repeat; the outage itself (503s) delivered nothing twice.
    let repeats = |rx: &Shared| rx.lock().unwrap().seen.values().filter(|(_, n)| *n > 1).count();
    assert_eq!(
        repeats(&fhir_rx),
        1,
        "the event whose response was lost came again"
    );
    assert_eq!(repeats(&json_rx), 0);
    broker.assert_no_panic();
}
