//! Break-glass: a supervisor refused a conversation and a recording outside their role types a justification,
//! gets a grant for exactly that resource, reads it; the grant is audited with its reason (so the SIEM has it) and
//! flags the supervisor in the exposure report. The grant opens nothing else and nothing for anyone else. Bad
//! requests get precise errors; a patient gets no grant.

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::client;
use crate::demo::{patient_token, staff_cookie};
use crate::test_app::TestApp;

const RECORDING: &str = "r0000000000000000000000b1";
const WHY: &str = "patient collapsed during the visit; reviewing what was said for the ED team";

async fn seed_recording(data: &std::path::Path) {
    let url = secrecy::SecretString::from(crate::storage::database_url(data));
    let db = examroom::store::Db::connect(&url, Some(1)).await.unwrap();
    db.insert_recording(&examroom::store::NewRecording {
        id: RECORDING,
        visit_id: "v0000000000000000000000b1",
        queue: "triage",
        policies: "video-visits",
        consent: "recorded",
        kek_id: "k",
        wrapped_key: "wrapped",
        spool_kek_id: "k",
        spool_wrapped_key: "wrapped",
        started_at: 1_000,
        retain_until: i64::MAX / 2,
        writer: "node-test",
        origin_ms: 1_000,
    })
    .await
    .unwrap();
    db.close().await;
}

#[tokio::test]
async fn a_declared_emergency_opens_one_resource_and_is_reported() {
    // A SIEM receiver, and the alert check every second: the grants below must raise alerts that reach it.
    let (siem, port) = crate::siem::receiver().await;
    siem.lock().unwrap().up = true;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), crate::siem::SECRET).unwrap();
    let hooks = format!(
        r#"[{{name = "soc", url = "http://127.0.0.1:{port}/hook", secret_file = "{}"}}]"#,
        secret.path().display()
    );
    let mut env = FAST_ROUTING.to_vec();
    env.extend([
        ("EXAMROOM_SIEM__WEBHOOKS", hooks.as_str()),
        ("EXAMROOM_ALERTS__CHECK_SECONDS", "1"),
        // The supervisor opens two records outside her assignments: over a threshold of one.
        ("EXAMROOM_REPORTS__EXPOSURE_THRESHOLD", "1"),
    ]);
    let app = TestApp::spawn(&env).await;
    let url = app.url.clone();
    seed_recording(&app.data).await;
    let token = patient_token(&url, &app.data, "patient").await;
    let mut patient = Ws::patient(&url, &token).await;
    let conversation = patient.start("triage", "bg-1").await;
    // Ended, the chat is a record: a supervisor may follow a live chat, but read an ended one only under
    // break-glass.
    patient
        .send(json!({"v": 1, "type": "end", "conversation_id": conversation}))
        .await;
    patient.expect("ended").await;

    let supervisor = staff_cookie(&url, &app.data, "supervisor").await;
    let mut socket = Ws::staff(&url, &supervisor).await;
    let sync = json!({"v": 1, "type": "sync", "conversation_id": conversation, "after_seq": 0});
    socket.send(sync.clone()).await;
    let refused = socket.expect("error").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let metadata = format!("{url}/api/v1/recordings/{RECORDING}?reason=review");
    let get = |u: &str| client().get(u).header("cookie", &supervisor).send();
    assert_eq!(
        get(&metadata).await.unwrap().status(),
        403,
        "outside the supervisor's role"
    );

    let ask = |resource: &str, justification: &str| {
        client()
            .post(format!("{url}/api/v1/break-glass"))
            .header("cookie", &supervisor)
            .header("origin", &url)
            .json(&json!({"resource": resource, "justification": justification}))
            .send()
    };
    let code = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        (
            status,
            resp.json::<Value>().await.unwrap()["error"]["code"].clone(),
        )
    };
    let target = format!("conversation:{conversation}");
    assert_eq!(
        code(ask(&target, "urgent").await.unwrap()).await,
        (400, json!("justification_required"))
    );
    assert_eq!(
        code(ask("conversation:../x", WHY).await.unwrap()).await,
        (400, json!("invalid_resource"))
    );
    let unknown = format!("conversation:{}", "0".repeat(32));
    assert_eq!(
        code(ask(&unknown, WHY).await.unwrap()).await,
        (404, json!("not_found"))
    );
    let by_patient = client()
        .post(format!("{url}/api/v1/break-glass"))
        .bearer_auth(&token)
        .json(&json!({"resource": target, "justification": WHY}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_patient.status(), 403);

    // Granted: the conversation, then (a second grant) the recording, open to the supervisor.
    let granted = ask(&target, WHY).await.unwrap();
    assert_eq!(granted.status(), 201);
    let body: Value = granted.json().await.unwrap();
    assert_eq!(body["resource"], target.as_str());
    assert!(
        body["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    socket.send(sync.clone()).await;
    socket.expect("synced").await;
    // The grant is that person's and that resource's only: a colleague is still refused the chat, and the
    // supervisor the recording.
    let nurse2 = staff_cookie(&url, &app.data, "nurse2").await;
    let mut colleague = Ws::staff(&url, &nurse2).await;
    colleague.send(sync).await;
    assert_eq!(colleague.expect("error").await["code"], "forbidden");
    assert_eq!(get(&metadata).await.unwrap().status(), 403);
    assert_eq!(
        ask(&format!("recording:{RECORDING}"), WHY)
            .await
            .unwrap()
            .status(),
        201
    );
    let opened = get(&metadata).await.unwrap();
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.json::<Value>().await.unwrap()["id"], RECORDING);

    // Audited with the justification (the SIEM export reads the same chain) and flagged for compliance.
    let grants: Vec<(String, String, String)> = crate::chat::query_db(
        &app.data,
        "SELECT resource, role, reason FROM audit_events WHERE action = 'access.break_glass' AND outcome = 'success' ORDER BY seq",
    )
    .await;
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[0], (target.clone(), "supervisor".into(), WHY.into()));
    let compliance = staff_cookie(&url, &app.data, "compliance").await;
    let report: Value = client()
        .get(format!(
            "{url}/api/v1/reports/exposure?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"
        ))
        .header("cookie", &compliance)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["summary"]["break_glass"], 2, "{report}");
    let rows = report["rows"].as_array().unwrap();
    let flagged = rows
        .iter()
        .find(|r| r["break_glass"] == 2)
        .expect("the supervisor's row");
    assert_eq!(
        (flagged["role"].as_str(), flagged["flagged"].as_bool()),
        (Some("supervisor"), Some(true))
    );

    // Alerts, without anyone asking: each grant and the supervisor's exposure raise one within seconds, the
    // SIEM receives them like any event, and the console's list has them, once each.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let alert_actions = || -> Vec<String> {
        siem.lock()
            .unwrap()
            .seen
            .values()
            .filter_map(|(e, _)| {
                e["action"]
                    .as_str()
                    .filter(|a| a.starts_with("alert."))
                    .map(String::from)
            })
            .collect()
    };
    loop {
        let seen = alert_actions();
        if seen.iter().filter(|a| *a == "alert.break_glass").count() == 2
            && seen.iter().any(|a| a == "alert.exposure")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alerts at the SIEM: {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let listed: Value = client()
        .get(format!("{url}/api/v1/alerts"))
        .header("cookie", &compliance)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "break_glass").count(),
        2,
        "once each: {listed}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "exposure").count(),
        1,
        "once: {listed}"
    );
    for a in listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "break_glass")
    {
        assert!(a["detail"].as_str().unwrap().ends_with("(supervisor)"), "{a}");
    }
    let bad = client()
        .get(format!("{url}/api/v1/alerts?days=0"))
        .header("cookie", &compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let by_nurse = client()
        .get(format!("{url}/api/v1/alerts"))
        .header("cookie", &nurse2)
        .send()
        .await
        .unwrap();
    assert_eq!(by_nurse.status(), 403);
}
