//! A supervisor follows chats in progress from the board: the list of live chats (no patient data, each saying
//! whether the policy lets her read it), one chat's transcript read-only while it is live, each read audited,
//! and nothing once it has ended; nobody else reads what is not theirs. The pages each staff member is offered
//! come from the policy (`/api/v1/me` `places`).

use serde_json::Value;

use crate::chat::{FAST_ROUTING, Ws, query_db, start_dev};
use crate::common::client;
use crate::demo::{patient_token, staff_cookie};

async fn get(url: &str, path: &str, cookie: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{url}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_supervisor_reads_a_live_chat_audited_and_nothing_once_it_ends() {
    let (_dir, data, broker) = start_dev(FAST_ROUTING);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let chat = patient.start("triage", "k1").await;
    patient.say(&chat, "m1", "My throat is sore since Monday").await;
    let nurse_cookie = staff_cookie(&url, &data, "nurse").await;
    let mut nurse = Ws::staff(&url, &nurse_cookie).await;
    nurse.presence("ready").await;
    nurse.offer_for(&chat).await;
    nurse
        .send(serde_json::json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    patient.expect("assigned").await;
    nurse.say(&chat, "n1", "Any fever?").await;

    // The board's list: the live chat, its nurse by name, readable by the supervisor; no patient data.
    let sup = staff_cookie(&url, &data, "supervisor").await;
    let (code, list) = get(&url, "/api/v1/conversations", &sup).await;
    assert_eq!(code, 200, "{list}");
    let row = list["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation_id"] == chat.as_str())
        .unwrap_or_else(|| panic!("the live chat is listed: {list}"))
        .clone();
    assert_eq!(row["state"], "assigned");
    assert_eq!(row["queue"], "triage");
    assert_eq!(row["readable"], true);
    assert!(row["nurse"].as_str().is_some_and(|n| !n.is_empty()), "{row}");
    let listed = list.to_string();
    for phi in ["Pat Demo", "sore", "1980-04-02"] {
        assert!(!listed.contains(phi), "{phi} in the board's list");
    }

    // The transcript, read-only, paged by sequence number.
    let path = format!("/api/v1/conversations/{chat}/messages");
    let (code, read) = get(&url, &path, &sup).await;
    assert_eq!(code, 200, "{read}");
    let bodies: Vec<&str> = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["My throat is sore since Monday", "Any fever?"]);
    let last = read["last_seq"].as_i64().unwrap();
    let (_, later) = get(&url, &format!("{path}?after_seq={last}"), &sup).await;
    assert_eq!(later["messages"].as_array().unwrap().len(), 0, "{later}");
    assert_eq!(later["more"], false);
    nurse.say(&chat, "n2", "Drink warm water").await;
    let (_, newer) = get(&url, &format!("{path}?after_seq={last}"), &sup).await;
    assert_eq!(newer["messages"][0]["body"], "Drink warm water", "{newer}");
    let (code, _) = get(&url, &format!("{path}?after_seq=x"), &sup).await;
    assert_eq!(code, 400, "a bad after_seq is a precise 400");

    // Nobody else: a nurse not on the chat, the helpdesk (neither the list nor the chat), an unknown id.
    let other = staff_cookie(&url, &data, "nurse2").await;
    assert_eq!(get(&url, &path, &other).await.0, 403);
    let help = staff_cookie(&url, &data, "helpdesk").await;
    assert_eq!(get(&url, &path, &help).await.0, 403);
    assert_eq!(get(&url, "/api/v1/conversations", &help).await.0, 403);
    assert_eq!(
        get(&url, "/api/v1/conversations/cunknown/messages", &sup).await.0,
        403
    );

    // Ended, the chat is a record: the supervisor reads it no more (break-glass is the way), and it leaves the list.
    nurse
        .send(serde_json::json!({"v": 1, "type": "end", "conversation_id": chat}))
        .await;
    patient.expect("ended").await;
    assert_eq!(get(&url, &path, &sup).await.0, 403);
    let (_, list) = get(&url, "/api/v1/conversations", &sup).await;
    assert!(
        !list["chats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["conversation_id"] == chat.as_str()),
        "{list}"
    );

    // Each read audited as the supervisor's: the opening one and the one that brought a message (the empty poll
    // between them is not), each refusal too.
    let rows: Vec<(String, String, String)> = query_db(
        &data,
        "SELECT role, outcome, resource FROM audit_events WHERE action = 'conversation.read' ORDER BY seq",
    )
    .await;
    let mine = format!("conversation:{chat}");
    let reads = rows
        .iter()
        .filter(|r| r.0 == "supervisor" && r.1 == "success" && r.2 == mine)
        .count();
    assert_eq!(reads, 2, "{rows:?}");
    let refused = rows.iter().filter(|r| r.1 == "denied").count();
    assert_eq!(
        refused, 4,
        "nurse2, helpdesk, the unknown id, after the end: {rows:?}"
    );
    let logs = broker.stderr.lines().join("\n");
    assert!(!logs.contains("sore since Monday"), "a message in the logs");
    broker.assert_no_panic();
}

#[tokio::test]
async fn each_staff_member_is_offered_the_pages_the_policy_lets_them_work_in() {
    let (_dir, data, broker) = start_dev(&[]);
    let url = broker.url.clone();
    for (user, places) in [
        ("nurse", vec!["workspace"]),
        ("supervisor", vec!["supervisor", "status"]),
        ("compliance", vec!["compliance"]),
        ("helpdesk", vec!["status"]),
    ] {
        let cookie = staff_cookie(&url, &data, user).await;
        let (code, me) = get(&url, "/api/v1/me", &cookie).await;
        assert_eq!(code, 200, "{me}");
        assert_eq!(me["places"], serde_json::json!(places), "{user}: {me}");
    }
    broker.assert_no_panic();
}
