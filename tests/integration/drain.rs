//! Draining one node (SQLite, the real binary): on SIGTERM it reports not-ready, refuses new visits, asks its
//! sockets outside a visit to reconnect (close code 4012), waits for the live visit to end and then exits; a
//! visit that outlives `cluster.drain_seconds` is ended for both as `server_restart` (its recording stored) and
//! the node exits anyway. The cluster's side (`examroom drain`, `examroom cluster status`) is in `cluster.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::chat::{FAST_ROUTING, Ws, start_dev};
use crate::common::Broker;
use crate::demo::{patient_token, staff_cookie};

/// A broker with an active (accepted) visit between `patient` and `nurse`, and `patient2` waiting.
async fn visit_and_a_waiting_patient(
    broker: &Broker,
    data: &std::path::Path,
) -> (Ws, Ws, Ws, String, String) {
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, data, "patient").await).await;
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, data, "nurse").await).await;
    let (conversation, visit) =
        crate::media_peers::chat_then_video_request(&mut patient, &mut nurse, "d1").await;
    patient
        .send(
            json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true,
                     "recording_consent": true}),
        )
        .await;
    nurse.expect("video_started").await;
    let mut waiting = Ws::patient(&url, &patient_token(&url, data, "patient2").await).await;
    waiting.start("triage", "d2").await;
    (patient, nurse, waiting, conversation, visit)
}

fn sigterm(broker: &Broker) {
    let pid = broker.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

async fn exited_within(broker: &mut Broker, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = broker.child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "still running after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_drains_sockets_waits_for_the_live_visit_then_exits() {
    let env: Vec<(&str, &str)> = FAST_ROUTING
        .iter()
        .copied()
        .chain([("EXAMROOM_CLUSTER__DRAIN_SECONDS", "60")])
        .collect();
    let (_dir, data, mut broker) = start_dev(&env);
    let (mut patient, mut nurse, mut waiting, conversation, visit) =
        visit_and_a_waiting_patient(&broker, &data).await;

    sigterm(&broker);
    // Not ready at once: the balancer sends new connections elsewhere.
    let http = crate::common::client();
    let mut ready = None;
    for _ in 0..40 {
        let r = http.get(format!("{}/readyz", broker.url)).send().await.unwrap();
        if r.status() == 503 {
            ready = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready.expect("503 while draining")["status"], "draining");
    // The waiting patient is sent elsewhere (within the two-second jitter); the visit's sockets stay.
    assert_eq!(waiting.close_code().await, 4012);
    nurse
        .send(
            json!({"v": 1, "type": "video_request", "conversation_id": conversation,
                     "device_check": {"camera": true, "microphone": true}}),
        )
        .await;
    assert_eq!(nurse.expect("error").await["code"], "node_draining");
    assert!(broker.child.try_wait().unwrap().is_none(), "waits for the visit");
    assert!(
        broker
            .stderr
            .wait_for("draining: waiting for live visits to end", Duration::from_secs(5))
            .is_some()
    );

    // The visit ends: the node finishes and exits cleanly.
    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    assert_eq!(patient.expect("video_ended").await["reason"], "nurse_ended");
    let status = exited_within(&mut broker, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    assert!(
        broker
            .stderr
            .lines()
            .iter()
            .any(|l| l.contains("drained: no live visits"))
    );
    broker.assert_no_panic();
}

#[tokio::test]
async fn a_visit_that_outlives_the_drain_limit_is_ended_and_the_node_exits() {
    let env: Vec<(&str, &str)> = FAST_ROUTING
        .iter()
        .copied()
        .chain([("EXAMROOM_CLUSTER__DRAIN_SECONDS", "2")])
        .collect();
    let (_dir, data, mut broker) = start_dev(&env);
    let (mut patient, mut nurse, _waiting, _conversation, _visit) =
        visit_and_a_waiting_patient(&broker, &data).await;
    let started = Instant::now();
    sigterm(&broker);
    for ws in [&mut patient, &mut nurse] {
        let ended = ws.expect("video_ended").await;
        assert_eq!(ended["reason"], "server_restart");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the limit"
    );
    let status = exited_within(&mut broker, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    assert!(
        broker
            .stderr
            .lines()
            .iter()
            .any(|l| l.contains("drain limit reached"))
    );
    // The ended visit's recording was stored, not left in a spool.
    let rows: Vec<(String,)> = crate::chat::query_db(&data, "SELECT state FROM recordings").await;
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, "recording", "{rows:?}");
    broker.assert_no_panic();
}
