//! Who is really there, over real sockets with short graces: a waiting patient whose connection dropped is
//! offered to nobody, then leaves the queue as abandoned (audited, counted in the queue statistics); the nurse
//! of an assigned chat sees her patient reconnecting and back; a nurse whose browser is gone past the grace
//! loses the chat to the front of the queue, the patient is told, and the next nurse reads the conversation.
//! A patient whose network goes silent (the socket open, nothing answered) is seen reconnecting too: the broker
//! pings every socket and closes one it has not heard from for 12 s.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, query_db};
use crate::common::SendJson;
use crate::demo::{patient_token, staff_cookie};
use crate::test_app::TestApp;

const GRACES: &[(&str, &str)] = &[
    ("EXAMROOM_ROUTING__PATIENT_GRACE_SECONDS", "2"),
    ("EXAMROOM_ROUTING__STRANDED_GRACE_SECONDS", "2"),
];

async fn state_of(data: &std::path::Path, conversation: &str) -> String {
    let rows: Vec<(String, String)> = query_db(data, "SELECT id, state FROM conversations").await;
    rows.into_iter().find(|(id, _)| id == conversation).unwrap().1
}

#[tokio::test]
async fn patients_who_leave_are_not_offered_and_nurses_who_leave_hand_their_chats_back() {
    let env: Vec<(&str, &str)> = FAST_ROUTING.iter().chain(GRACES).copied().collect();
    let app = TestApp::spawn(&env).await;
    let (url, data) = (app.url.clone(), app.data.clone());

    // A patient starts a chat and closes the tab before any nurse is ready.
    let token = patient_token(&url, &data, "patient").await;
    let mut gone = Ws::patient(&url, &token).await;
    let ghost = gone.start("triage", "ghost").await;
    drop(gone);
    let cookie = staff_cookie(&url, &data, "nurse").await;
    let mut nurse = Ws::staff(&url, &cookie).await;
    nurse.presence("ready").await;
    nurse.quiet("offer", 1500).await;
    // Past the grace: out of the queue, audited, counted.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(state_of(&data, &ghost).await, "abandoned");
    let audited: Vec<(String, String)> = query_db(
        &data,
        "SELECT action, reason FROM audit_events WHERE action = 'conversation.abandoned'",
    )
    .await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let supervisor = staff_cookie(&url, &data, "supervisor").await;
    let stats: Value = crate::common::client()
        .get(format!("{url}/api/v1/queues/stats"))
        .header("cookie", &supervisor)
        .json_body()
        .await;
    let triage = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "triage")
        .unwrap()
        .clone();
    assert_eq!(triage["abandoned"]["under_1_minute"], 1, "{stats}");

    // A patient who is there is offered; the nurse sees them drop and come back.
    let token2 = patient_token(&url, &data, "patient2").await;
    let mut patient = Ws::patient(&url, &token2).await;
    let chat = patient.start("triage", "present").await;
    nurse.offer_for(&chat).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    // Taking the chat, the nurse hears where its patient is: online.
    let first = presence(&mut nurse, &chat, "online at acceptance", 5).await;
    assert_eq!(first["state"], "online");
    patient
        .say(&chat, "m1", "I have had a fever since yesterday")
        .await;
    drop(patient);
    let seen = presence(&mut nurse, &chat, "reconnecting", 5).await;
    assert_eq!(seen["state"], "reconnecting");
    let mut patient = Ws::patient(&url, &token2).await;
    let seen = presence(&mut nurse, &chat, "online", 5).await;
    assert_eq!(seen["state"], "online");

    // The nurse's browser goes away: past the grace the chat is back in the queue, first in line.
    drop(nurse);
    let requeued = patient
        .wait_within("requeued", 6, |v| v["type"] == "requeued")
        .await;
    assert_eq!(requeued["conversation_id"], chat.as_str());
    assert_eq!(state_of(&data, &chat).await, "waiting");
    let cookie2 = staff_cookie(&url, &data, "nurse2").await;
    let mut next = Ws::staff(&url, &cookie2).await;
    next.presence("ready").await;
    next.offer_for(&chat).await;
    next.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    let transcript = next.sync(&chat, 0).await;
    assert_eq!(
        transcript.len(),
        1,
        "the next nurse reads the conversation so far"
    );
}

#[tokio::test]
async fn a_patient_whose_network_goes_silent_is_seen_reconnecting() {
    let app = TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let token = patient_token(&url, &data, "patient").await;
    let mut patient = Ws::patient(&url, &token).await;
    let chat = patient.start("triage", "silent").await;
    let cookie = staff_cookie(&url, &data, "nurse").await;
    let mut nurse = Ws::staff(&url, &cookie).await;
    nurse.presence("ready").await;
    nurse.offer_for(&chat).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    let first = presence(&mut nurse, &chat, "online at acceptance", 5).await;
    assert_eq!(first["state"], "online");

    // The patient's phone loses its network: its socket stays open, but no pong comes back.
    patient.stop_reading();
    let seen = presence(&mut nurse, &chat, "the patient reconnecting", 20).await;
    assert_eq!(seen["state"], "reconnecting");
    // The nurse's socket, which answers the pings, was all the while open and still is.
    nurse.send(json!({"v": 1, "type": "ping"})).await;
    nurse.expect("pong").await;
}

/// The next `patient_presence` frame the nurse hears about `chat`, within `secs`.
async fn presence(nurse: &mut Ws, chat: &str, what: &str, secs: u64) -> Value {
    let c = chat.to_string();
    nurse
        .wait_within(what, secs, move |v| {
            v["type"] == "patient_presence" && v["conversation_id"] == c.as_str()
        })
        .await
}
