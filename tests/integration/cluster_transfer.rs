//! Handing a chat on across two nodes of one PostgreSQL database: the patient and the first nurse on one node,
//! the colleague on the other. Warm: the colleague's offer (naming who asks) crosses the bus, her acceptance
//! moves the chat, the first nurse and the patient are told on their node, and the colleague reads and writes
//! it. Cold: she sends it back to the triage queue, the patient is told first in line, and the first nurse,
//! ready again on the other node, is offered it.

use serde_json::json;

use crate::chat::Ws;
use crate::demo::{patient_token, staff_cookie};

/// Ready, as the routing leader (maybe on the other node) has it: the first `presence` frame may be older.
async fn ready(nurse: &mut Ws) {
    nurse
        .send(json!({"v": 1, "type": "presence", "state": "ready"}))
        .await;
    nurse
        .wait("ready", |v| v["type"] == "presence" && v["state"] == "ready")
        .await;
}

#[tokio::test]
async fn a_chat_is_handed_to_a_colleague_on_another_node_and_back_to_a_queue() {
    let Some(database) = crate::storage::postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nodes =
        crate::cluster_support::two_nodes(&database, &data, &[("EXAMROOM_ROUTING__WRAP_UP_SECONDS", "0")]);
    let (one, two) = (nodes[0].url.clone(), nodes[1].url.clone());

    let mut patient = Ws::patient(&one, &patient_token(&one, &data, "patient").await).await;
    let mut nora = Ws::staff(&one, &staff_cookie(&one, &data, "nurse").await).await;
    let mut nico = Ws::staff(&two, &staff_cookie(&two, &data, "nurse2").await).await;
    nora.presence("ready").await;
    let chat = patient.start("triage", "k1").await;
    nora.offer_for(&chat).await;
    nora.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    patient
        .say(&chat, "m1", "Is there a nurse who speaks Spanish?")
        .await;
    ready(&mut nico).await;

    // Warm, across the nodes.
    nora.send(json!({"v": 1, "type": "colleagues", "conversation_id": chat}))
        .await;
    let nurses = nora.expect("colleagues").await["nurses"].clone();
    assert_eq!(nurses[0]["name"], "Nico Demo", "{nurses}");
    nora.send(json!({"v": 1, "type": "transfer", "conversation_id": chat, "nurse": nurses[0]["nurse"]}))
        .await;
    nora.expect("transfer_asked").await;
    let offer = nico.offer_for(&chat).await;
    assert_eq!(offer["from_nurse"], "Nora Demo", "{offer}");
    nico.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    assert_eq!(nora.expect("ended").await["reason"], "transferred");
    patient.expect("assigned").await;
    nico.expect("conversation").await;
    assert_eq!(nico.sync(&chat, 0).await.len(), 1);
    nico.say(&chat, "x1", "Hola, soy Nico").await;
    patient
        .wait("Nico's message", |v| {
            v["type"] == "message" && v["body"] == "Hola, soy Nico"
        })
        .await;

    // Cold, back to triage: the patient is told; Nora, ready again, is offered it on her node (Nico steps away
    // first, so that the offer can only be hers).
    ready(&mut nora).await;
    nico.send(json!({"v": 1, "type": "presence", "state": "away"}))
        .await;
    nico.wait("away", |v| v["type"] == "presence" && v["state"] == "away")
        .await;
    nico.send(json!({"v": 1, "type": "transfer", "conversation_id": chat, "queue": "triage"}))
        .await;
    assert_eq!(nico.expect("ended").await["reason"], "transferred");
    assert_eq!(patient.expect("requeued").await["reason"], "transferred");
    nora.offer_for(&chat).await;
    for n in &nodes {
        n.assert_no_panic();
    }
}
