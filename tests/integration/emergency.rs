//! Emergency and crisis detection end to end: what a patient writes in their own words (English or Spanish)
//! shows them the notice in that language (the crisis line for self-harm), moves the chat to the front, and
//! flags it to the supervisor's table and to the nurse's offer and chat; then an idle chat expires.

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, start_dev};
use crate::demo::{patient_token, staff_cookie};

#[tokio::test]
async fn emergencies_jump_the_queue_and_idle_chats_expire() {
    let mut env = FAST_ROUTING.to_vec();
    env.push(("EXAMROOM_MESSAGING__IDLE_EXPIRY_SECONDS", "3"));
    env.push(("EXAMROOM_MESSAGING__IDLE_WARNING_SECONDS", "2"));
    let (_dir, data, broker) = start_dev(&env);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let mut other = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;
    let calm = patient.start("triage", "calm").await;
    let urgent = other.start("triage", "urgent").await;
    assert_eq!(other.expect("waiting").await["position"], 2);

    // Emergency symptoms in the patient's own words: the notice at once, and the conversation moves to the
    // front (the sentence table is `src/triage/tests.rs`).
    other
        .say(&urgent, "e1", "My chest hurts and I feel short of breath")
        .await;
    let notice = other.expect("emergency").await;
    assert_eq!(
        (&notice["kind"], &notice["language"]),
        (&json!("emergency"), &json!("en"))
    );
    assert!(notice["text"].as_str().unwrap().contains("911"), "{notice}");
    other
        .wait("front of the line", |v| {
            v["type"] == "waiting" && v["position"] == 1
        })
        .await;
    patient
        .wait("moved back", |v| v["type"] == "waiting" && v["position"] == 2)
        .await;
    use crate::common::SendJson;
    // The supervisor's table counts the flag; the nurse's offer and chat carry it.
    let supervisor = staff_cookie(&url, &data, "supervisor").await;
    let stats: Value = crate::common::client()
        .get(format!("{url}/api/v1/queues/stats"))
        .header("cookie", &supervisor)
        .json_body()
        .await;
    assert_eq!(stats["queues"][1]["queue"], "triage", "{stats}");
    assert_eq!(stats["queues"][1]["emergencies"], 1, "{stats}");
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nurse.presence("ready").await;
    assert_eq!(nurse.offer_for(&urgent).await["emergency"], true);
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": urgent}))
        .await;
    let chat = nurse.expect("conversation").await;
    assert_eq!(chat["conversation"]["emergency"], true, "{chat}");
    other.expect("assigned").await;

    // Thoughts of self-harm, in Spanish: the crisis line, in Spanish.
    patient.say(&calm, "c1", "A veces quiero morirme").await;
    let crisis = patient.expect("emergency").await;
    assert_eq!(
        (&crisis["kind"], &crisis["language"]),
        (&json!("crisis"), &json!("es"))
    );
    assert!(crisis["text"].as_str().unwrap().contains("988"), "{crisis}");
    let transcript = nurse.sync(&urgent, 0).await;
    assert_eq!(transcript.len(), 1);

    // Nobody writes: a warning first, then the conversation closes as idle.
    let warning = other.expect("idle_warning").await;
    assert_eq!(warning["conversation_id"], urgent.as_str());
    let ended = other.expect("ended").await;
    assert_eq!(ended["reason"], "idle");
    let _ = calm;

    // The nurse's transcript read was audited; message text never reached the logs.
    let pool = crate::storage::pool(&data).await;
    let reads: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'conversation.read' AND outcome = 'success' AND role = 'nurse'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(reads >= 1, "staff reads are audited");
    let logs = broker.stderr.lines().join("\n");
    for said in ["chest hurts", "morirme"] {
        assert!(!logs.to_lowercase().contains(said), "message text in logs");
    }
    broker.assert_no_panic();
}

#[tokio::test]
async fn an_emergency_in_the_reason_flags_the_offer_and_one_after_acceptance_reaches_the_nurse() {
    let (_dir, data, broker) = start_dev(FAST_ROUTING);
    let url = broker.url.clone();
    // The reason typed at start is read like a message.
    let mut first = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    first
        .send(json!({"v": 1, "type": "start", "queue": "triage", "idempotency_key": "r1", "reason": "I can't breathe"}))
        .await;
    let notice = first.expect("emergency").await;
    assert_eq!(notice["kind"], "emergency", "{notice}");
    let chat = first.expect("conversation").await["conversation"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nurse.presence("ready").await;
    assert_eq!(nurse.offer_for(&chat).await["emergency"], true);
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    first.expect("assigned").await;
    nurse.expect("conversation").await;
    nurse
        .send(json!({"v": 1, "type": "end", "conversation_id": chat}))
        .await;
    first.expect("ended").await;

    // A chat that was calm when accepted: the patient's alarm reaches the nurse who has it.
    let mut second = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;
    let calm = second.start("triage", "c1").await;
    nurse.presence("ready").await;
    assert_eq!(nurse.offer_for(&calm).await["emergency"], false);
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": calm}))
        .await;
    second.expect("assigned").await;
    let c = calm.clone();
    nurse
        .wait("the calm chat", move |v| {
            v["type"] == "conversation" && v["conversation"]["conversation_id"] == c.as_str()
        })
        .await;
    second.say(&calm, "m1", "Suddenly my chest hurts a lot").await;
    second.expect("emergency").await;
    let c = calm.clone();
    let flagged = nurse
        .wait("the flag", move |v| {
            v["type"] == "conversation"
                && v["conversation"]["conversation_id"] == c.as_str()
                && v["conversation"]["emergency"] == true
        })
        .await;
    assert_eq!(flagged["conversation"]["state"], "assigned");
    broker.assert_no_panic();
}
