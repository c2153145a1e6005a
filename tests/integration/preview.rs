//! What the nurse sees before accepting: the patient's verified name and birth date (from the portal's ID
//! token), the reason typed when starting and the first message, under the policy's `conversation.preview`
//! (the nurse the chat is offered to, or assigned to), each look audited, none of it in the logs.

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, query_db, start_dev};
use crate::demo::{patient_token, staff_cookie};

async fn preview(nurse: &mut Ws, conversation: &str) -> Value {
    nurse
        .send(json!({"v": 1, "type": "preview", "conversation_id": conversation}))
        .await;
    let c = conversation.to_string();
    nurse
        .wait("preview or error", move |v| {
            (v["type"] == "preview" && v["conversation_id"] == c.as_str()) || v["type"] == "error"
        })
        .await
}

#[tokio::test]
async fn the_offered_nurse_sees_who_and_why_before_accepting_and_nobody_else_does() {
    let (_dir, data, broker) = start_dev(FAST_ROUTING);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    // A reason longer than the limit is refused with a precise error, and nothing is opened.
    let long = "x".repeat(301);
    patient
        .send(json!({"v": 1, "type": "start", "queue": "triage", "idempotency_key": "k0", "reason": long}))
        .await;
    assert_eq!(patient.expect("error").await["code"], "reason_too_long");
    patient
        .send(json!({"v": 1, "type": "start", "queue": "triage", "idempotency_key": "k1", "reason": "Itchy rash on my arm"}))
        .await;
    let started = patient.expect("conversation").await;
    let chat = started["conversation"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    patient.say(&chat, "m1", "It started after a new soap").await;

    // Before any offer nobody may look, not even a nurse who works the queue.
    let mut other = Ws::staff(&url, &staff_cookie(&url, &data, "nurse2").await).await;
    assert_eq!(preview(&mut other, &chat).await["code"], "forbidden");

    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nurse.presence("ready").await;
    nurse.offer_for(&chat).await;
    let p = preview(&mut nurse, &chat).await;
    assert_eq!(p["type"], "preview", "{p}");
    assert_eq!(p["name"], "Pat Demo");
    assert_eq!(p["birthdate"], "1980-04-02");
    assert_eq!(p["reason"], "Itchy rash on my arm");
    assert_eq!(p["first_message"], "It started after a new soap");
    assert_eq!(p["emergency"], false);
    // The other nurse still may not, and the patient has no such action.
    assert_eq!(preview(&mut other, &chat).await["code"], "forbidden");
    assert_eq!(preview(&mut patient, &chat).await["code"], "forbidden");

    // Once accepted, the chat's nurse keeps it at the top of the chat.
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    assert_eq!(preview(&mut nurse, &chat).await["name"], "Pat Demo");

    // Every look is audited, allowed or not; none of it reached the logs.
    let rows: Vec<(String, String, String)> = query_db(
        &data,
        "SELECT role, outcome, resource FROM audit_events WHERE action = 'conversation.preview' ORDER BY seq",
    )
    .await;
    let allowed = rows.iter().filter(|r| r.1 == "success" && r.0 == "nurse").count();
    let denied = rows.iter().filter(|r| r.1 != "success").count();
    assert_eq!((allowed, denied), (2, 3), "{rows:?}");
    assert!(
        rows.iter().all(|r| r.2 == format!("conversation:{chat}")),
        "{rows:?}"
    );
    let logs = broker.stderr.lines().join("\n");
    for phi in ["Pat Demo", "1980-04-02", "Itchy rash", "new soap"] {
        assert!(!logs.contains(phi), "{phi} in the logs");
    }
    // At rest, the patient's name and birth date are sealed in their session row (the preview above opened
    // them with the session's token); staff names stay readable.
    let stored: Vec<(String, Option<String>, Option<String>)> = query_db(
        &data,
        "SELECT kind, display_name, birthdate FROM sessions ORDER BY created_at",
    )
    .await;
    for (kind, name, born) in &stored {
        let cells = format!("{name:?} {born:?}");
        assert!(
            !cells.contains("Pat Demo") && !cells.contains("1980-04-02"),
            "{kind}: {cells}"
        );
        if kind == "patient" {
            assert!(
                name.as_deref().is_some_and(|n| n.starts_with("sealed:")),
                "{cells}"
            );
        }
    }
    assert!(
        stored
            .iter()
            .any(|(k, n, _)| k == "staff" && n.as_deref() == Some("Nora Demo"))
    );
    broker.assert_no_panic();
}

#[tokio::test]
async fn a_declined_offer_takes_the_preview_away() {
    let (_dir, data, broker) = start_dev(FAST_ROUTING);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let chat = patient.start("triage", "k1").await;
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nurse.presence("ready").await;
    nurse.offer_for(&chat).await;
    assert_eq!(preview(&mut nurse, &chat).await["type"], "preview");
    nurse
        .send(json!({"v": 1, "type": "decline", "conversation_id": chat}))
        .await;
    nurse.wait("offer ended", |v| v["type"] == "offer_ended").await;
    assert_eq!(preview(&mut nurse, &chat).await["code"], "forbidden");
    broker.assert_no_panic();
}
