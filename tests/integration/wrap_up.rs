//! Wrap-up as the nurse lives it: after she ends a chat she is in wrap-up (no offers), records a disposition
//! from the configured list and optional notes (sealed with the conversation, audited, written once), and "Ready" ends the
//! wrap-up early so the next patient is offered at once.

use serde_json::json;

use crate::chat::{FAST_ROUTING, Ws, query_db, start_dev};
use crate::demo::{patient_token, staff_cookie};

#[tokio::test]
async fn the_nurse_wraps_up_with_a_disposition_and_notes_and_ready_ends_wrap_up() {
    let mut env = FAST_ROUTING.to_vec();
    // Long enough that only "Ready" can end it within the test.
    env.push(("EXAMROOM_ROUTING__WRAP_UP_SECONDS", "300"));
    let (_dir, data, broker) = start_dev(&env);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let mut next = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;
    let chat = patient.start("triage", "k1").await;
    let mut nurse = Ws::connect(&url, Some(&staff_cookie(&url, &data, "nurse").await)).await;
    let welcome = nurse.expect("welcome").await;
    assert_eq!(welcome["wrap_up"]["seconds"], 300);
    assert_eq!(welcome["wrap_up"]["dispositions"][0], "Advice given", "{welcome}");
    nurse.presence("ready").await;
    nurse.offer_for(&chat).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;

    let wrap = |disposition: &str| {
        json!({"v": 1, "type": "wrap_up", "conversation_id": chat, "disposition": disposition,
               "notes": "Advised fluids and rest; call back if fever over 39"})
    };
    // Not while the chat is open.
    nurse.send(wrap("Advice given")).await;
    assert_eq!(nurse.expect("error").await["code"], "conversation_open");
    nurse
        .send(json!({"v": 1, "type": "end", "conversation_id": chat}))
        .await;
    patient.expect("ended").await;
    nurse
        .wait("wrap-up", |v| v["type"] == "presence" && v["state"] == "wrap_up")
        .await;

    // During wrap-up a new patient is not offered to her.
    let second = next.start("triage", "k2").await;
    nurse.quiet("offer", 1500).await;

    // A disposition that is not configured is refused; a configured one is stored, sealed.
    nurse.send(wrap("Cured by magic")).await;
    assert_eq!(nurse.expect("error").await["code"], "unknown_disposition");
    nurse.send(wrap("Advice given")).await;
    assert_eq!(
        nurse.expect("wrap_up_saved").await["conversation_id"],
        chat.as_str()
    );
    // Written once: a clinical note is not overwritten.
    nurse.send(wrap("Appointment booked")).await;
    assert_eq!(nurse.expect("error").await["code"], "already_wrapped_up");
    let rows: Vec<(String, String)> = query_db(&data, "SELECT nurse, sealed FROM conversation_wrapups").await;
    assert_eq!(rows.len(), 1);
    assert!(
        !rows[0].1.contains("fluids") && !rows[0].1.contains("Advice"),
        "sealed at rest"
    );

    // Another nurse may not write it.
    let mut other = Ws::staff(&url, &staff_cookie(&url, &data, "nurse2").await).await;
    other.send(wrap("Advice given")).await;
    assert_eq!(other.expect("error").await["code"], "forbidden");

    // "Ready now": wrap-up ends and the waiting patient is offered at once.
    nurse.presence("ready").await;
    nurse.offer_for(&second).await;

    let audited: Vec<(String,)> = query_db(
        &data,
        "SELECT outcome FROM audit_events WHERE action = 'conversation.wrap_up' ORDER BY seq",
    )
    .await;
    assert!(audited.iter().any(|r| r.0 == "success"), "{audited:?}");
    let logs = broker.stderr.lines().join("\n");
    assert!(!logs.contains("fluids"), "notes in the logs");
    broker.assert_no_panic();
}
