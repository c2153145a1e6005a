//! A nurse transfers her chat to another queue (cold): refused with a precise error for a queue that does not
//! exist, or by anyone but her; then the chat waits first in line in the new queue,
//! the patient is told, the first nurse's part ends (she reads and writes it no more), the next nurse of that
//! queue is offered it and reads the whole conversation, and the transfer is audited.

use serde_json::json;

use crate::chat::{FAST_ROUTING, Ws, query_db, start_dev};
use crate::demo::{patient_token, staff_cookie};

#[tokio::test]
async fn a_chat_transferred_to_another_queue_waits_first_there_and_keeps_its_transcript() {
    let (_dir, data, broker) = start_dev(FAST_ROUTING);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let chat = patient.start("triage", "k1").await;
    patient
        .say(&chat, "m1", "I need someone who speaks Spanish")
        .await;
    let mut nora = Ws::connect(&url, Some(&staff_cookie(&url, &data, "nurse").await)).await;
    let welcome_queues = nora.expect("welcome").await["queues"].clone();
    assert_eq!(
        welcome_queues,
        json!(["triage", "spanish"]),
        "the queues a chat may go to"
    );
    nora.presence("ready").await;
    nora.offer_for(&chat).await;
    nora.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    nora.say(&chat, "n1", "One moment, I will find a colleague").await;

    // Someone else waits in Spanish already: the transferred chat goes ahead of them.
    let mut other = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;
    other
        .send(json!({"v": 1, "type": "start", "queue": "spanish", "idempotency_key": "s1"}))
        .await;
    other.expect("conversation").await;

    let transfer = |queue: &str| json!({"v": 1, "type": "transfer", "conversation_id": chat, "queue": queue});
    // Not to a queue that does not exist; not by another nurse or the patient.
    nora.send(transfer("cardiology")).await;
    assert_eq!(nora.expect("error").await["code"], "unknown_queue");
    let mut nico = Ws::staff(&url, &staff_cookie(&url, &data, "nurse2").await).await;
    nico.send(transfer("spanish")).await;
    assert_eq!(nico.expect("error").await["code"], "forbidden");
    patient.send(transfer("spanish")).await;
    assert_eq!(patient.expect("error").await["code"], "forbidden");

    // The transfer: Nora's part ends, the patient is told, the chat waits in Spanish ahead of the other.
    nora.send(transfer("spanish")).await;
    let ended = nora.expect("ended").await;
    assert_eq!(ended["reason"], "transferred", "{ended}");
    let told = patient.expect("requeued").await;
    assert_eq!(told["reason"], "transferred", "{told}");
    other
        .wait("second in line", |v| v["type"] == "waiting" && v["position"] == 2)
        .await;
    nora.send(json!({"v": 1, "type": "send", "conversation_id": chat, "idempotency_key": "n2", "body": "still here?"}))
        .await;
    assert_eq!(nora.expect("error").await["code"], "forbidden");
    nora.send(json!({"v": 1, "type": "sync", "conversation_id": chat, "after_seq": 0}))
        .await;
    assert_eq!(nora.expect("error").await["code"], "forbidden");

    // The Spanish-speaking nurse is offered it first, sees who and why, and reads everything said so far.
    nico.presence("ready").await;
    let offer = nico.offer_for(&chat).await;
    assert_eq!(offer["queue"], "spanish", "{offer}");
    nico.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    let transcript = nico.sync(&chat, 0).await;
    let bodies: Vec<&str> = transcript.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(
        bodies,
        [
            "I need someone who speaks Spanish",
            "One moment, I will find a colleague"
        ]
    );
    nico.say(&chat, "x1", "Hola, le atiendo yo").await;

    let rows: Vec<(String, String, String)> = query_db(
        &data,
        "SELECT role, outcome, reason FROM audit_events WHERE action = 'conversation.transfer' ORDER BY seq",
    )
    .await;
    let done: Vec<_> = rows.iter().filter(|r| r.1 == "success").collect();
    assert_eq!(done.len(), 1, "{rows:?}");
    assert_eq!(done[0].0, "nurse");
    assert_eq!(done[0].2, "cold from:triage to:spanish");
    assert_eq!(rows.iter().filter(|r| r.1 == "denied").count(), 2, "{rows:?}");
    broker.assert_no_panic();
}

#[tokio::test]
async fn a_warm_transfer_moves_the_chat_only_when_the_colleague_accepts() {
    let (_dir, data, broker) = start_dev(FAST_ROUTING);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let chat = patient.start("triage", "k1").await;
    patient.say(&chat, "m1", "My daughter has a rash").await;
    let mut nora = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nora.presence("ready").await;
    nora.offer_for(&chat).await;
    nora.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    let mut nico = Ws::staff(&url, &staff_cookie(&url, &data, "nurse2").await).await;
    nico.presence("ready").await;

    // Who could take it: Nico, by name (not Nora herself).
    nora.send(json!({"v": 1, "type": "colleagues", "conversation_id": chat}))
        .await;
    let list = nora.expect("colleagues").await;
    let nurses = list["nurses"].as_array().unwrap();
    assert_eq!(nurses.len(), 1, "{list}");
    assert_eq!(nurses[0]["name"], "Nico Demo");
    let nico_id = nurses[0]["nurse"].clone();
    let ask = json!({"v": 1, "type": "transfer", "conversation_id": chat, "nurse": nico_id});
    // Naming both a queue and a nurse, or neither, is refused precisely.
    nora.send(json!({"v": 1, "type": "transfer", "conversation_id": chat}))
        .await;
    assert_eq!(nora.expect("error").await["code"], "transfer_target");

    // Asked, Nico declines: the chat stays Nora's, and she is told.
    nora.send(ask.clone()).await;
    assert_eq!(nora.expect("transfer_asked").await["colleague"], "Nico Demo");
    let offer = nico.offer_for(&chat).await;
    assert_eq!(offer["from_nurse"], "Nora Demo", "{offer}");
    // While the colleague is asked, no video starts in this chat (a chat in a visit is never handed over).
    nora.send(json!({"v": 1, "type": "video_request", "conversation_id": chat,
        "device_check": {"camera": true, "microphone": true}}))
        .await;
    assert_eq!(nora.expect("error").await["code"], "transfer_pending");
    // The colleague asked may see who and why before she takes it (audited as any preview).
    nico.send(json!({"v": 1, "type": "preview", "conversation_id": chat}))
        .await;
    assert_eq!(
        nico.expect("preview").await["first_message"],
        "My daughter has a rash"
    );
    nico.send(json!({"v": 1, "type": "decline", "conversation_id": chat}))
        .await;
    let ended = nora.expect("transfer_ended").await;
    assert_eq!(ended["reason"], "declined", "{ended}");
    assert_eq!(ended["colleague"], "Nico Demo");
    nora.say(&chat, "n1", "Still with you").await;

    // Asked again, Nico accepts: the chat is his, Nora's part ends, the patient keeps a nurse throughout.
    nora.send(ask).await;
    nico.offer_for(&chat).await;
    nico.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    assert_eq!(nora.expect("ended").await["reason"], "transferred");
    nico.expect("conversation").await;
    patient.expect("assigned").await;
    let transcript = nico.sync(&chat, 0).await;
    assert_eq!(transcript.len(), 2, "{transcript:?}");
    nico.say(&chat, "x1", "Hello, I am taking over").await;
    patient
        .wait("the new nurse's message", |v| {
            v["type"] == "message" && v["body"] == "Hello, I am taking over"
        })
        .await;
    nora.send(
        json!({"v": 1, "type": "send", "conversation_id": chat, "idempotency_key": "n2", "body": "bye"}),
    )
    .await;
    assert_eq!(nora.expect("error").await["code"], "forbidden");
    let rows: Vec<(String,)> = query_db(
        &data,
        "SELECT reason FROM audit_events WHERE action = 'conversation.transfer' AND outcome = 'success' ORDER BY seq",
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.0.starts_with("warm to:")), "{rows:?}");
    broker.assert_no_panic();
}
