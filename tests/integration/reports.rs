//! Compliance reports against a scripted scenario on a real broker: a recorded visit with consent, a second
//! visit whose recording was declined, a chat-only interaction, a nurse reading her own chat, a nurse refused the recordings, a
//! compliance officer downloading one, and the retention sweep deleting it. Each report's contents are
//! checked; a report recomputed at its stated chain head (over HTTP and through the CLI) is identical even
//! after more events; only compliance officers may run reports.

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, start_dev};
use crate::demo::staff_cookie;
use crate::media_peers::active_visit_with;

fn day(offset_days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(offset_days))
        .format("%Y-%m-%d")
        .to_string()
}

async fn end_video(nurse: &mut Ws, patient: &mut Ws, visit: &str) -> String {
    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    let ended = patient.expect("video_ended").await;
    ended["conversation_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn reports_match_a_scripted_scenario_and_reproduce_at_their_head() {
    let mut env = FAST_ROUTING.to_vec();
    env.push(("EXAMROOM_REPORTS__EXPOSURE_THRESHOLD", "0"));
    let (_dir, data, broker) = start_dev(&env);
    let url = broker.url.clone();
    let http = crate::common::client();
    let nurse = staff_cookie(&url, &data, "nurse").await;
    let compliance = staff_cookie(&url, &data, "compliance").await;

    // Visit 1: recording consent given. Visit 2, same chat: recording declined.
    let (mut patient_ws, mut nurse_ws, visit1) = active_visit_with(&broker, &data, &nurse, Some(true)).await;
    let conversation = end_video(&mut nurse_ws, &mut patient_ws, &visit1).await;
    nurse_ws
        .send(json!({"v": 1, "type": "video_request", "device_check": {"camera": true, "microphone": true}, "conversation_id": conversation}))
        .await;
    let visit2 = patient_ws.expect("video_proposed").await["visit_id"]
        .as_str()
        .unwrap()
        .to_string();
    patient_ws
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit2, "accept": true, "recording_consent": false}))
        .await;
    patient_ws.expect("video_started").await;
    end_video(&mut nurse_ws, &mut patient_ws, &visit2).await;
    // The nurse reads her own chat; she is refused the recordings.
    nurse_ws.sync(&conversation, 0).await;
    let get = |path: String, cookie: &str| {
        http.get(format!("{url}{path}"))
            .header("cookie", cookie.to_string())
            .send()
    };
    assert_eq!(
        get("/api/v1/recordings?reason=curious".into(), &nurse)
            .await
            .unwrap()
            .status(),
        403
    );
    // Compliance downloads the recording with a reason.
    let list = crate::recording_peers::recordings_once_stored(&url, &compliance).await;
    assert_eq!(
        list["recordings"].as_array().unwrap().len(),
        1,
        "the declined visit was not recorded: {list}"
    );
    let recording = list["recordings"][0]["id"].as_str().unwrap().to_string();
    let download = get(
        format!("/api/v1/recordings/{recording}/download?reason=incident%2042"),
        &compliance,
    )
    .await
    .unwrap();
    assert_eq!(download.status(), 200);

    // The chat ends; then a chat-only interaction with a second patient, accepted and finished by the nurse.
    nurse_ws
        .send(json!({"v": 1, "type": "end", "conversation_id": conversation}))
        .await;
    patient_ws.expect("ended").await;
    let token2 = crate::demo::patient_token(&url, &data, "patient2").await;
    let mut patient2 = Ws::patient(&url, &token2).await;
    let chat_only = patient2.start("triage", "chat-only").await;
    nurse_ws.offer_for(&chat_only).await;
    nurse_ws
        .send(json!({"v": 1, "type": "accept", "conversation_id": chat_only}))
        .await;
    patient2.expect("assigned").await;
    nurse_ws
        .send(json!({"v": 1, "type": "end", "conversation_id": chat_only}))
        .await;
    patient2.expect("ended").await;

    let report = |kind: &str, extra: &str, cookie: &str| {
        http.get(format!(
            "{url}/api/v1/reports/{kind}?from={}&to={}{extra}",
            day(-1),
            day(1)
        ))
        .header("cookie", cookie.to_string())
        .send()
    };
    let json_report = |kind: &'static str, extra: String| {
        let r = report(kind, &extra, &compliance);
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), 200, "{kind}");
            r.json::<Value>().await.unwrap()
        }
    };

    // Access: the download with its reason, the refusal, the nurse's own read.
    let access = json_report("access", String::new()).await;
    let rows = access["rows"].as_array().unwrap();
    let has = |action: &str, outcome: &str| {
        rows.iter()
            .any(|r| r["action"] == action && r["outcome"] == outcome)
    };
    assert!(has("recording.download", "success"), "{access}");
    assert!(has("recording.list", "denied"), "{access}");
    assert!(has("conversation.read", "success"), "{access}");
    let dl = rows.iter().find(|r| r["action"] == "recording.download").unwrap();
    assert_eq!(dl["reason"], "incident 42");
    assert_eq!(dl["role"], "compliance_officer");
    // Named beside the id, as the staff directory knows her from her sign-in.
    assert_eq!(dl["actor_name"], "Cora Demo", "{dl}");
    assert_eq!(access["columns"][3], "actor_name", "{access}");
    assert_eq!(dl["resource"], format!("recording:{recording}"));
    assert!(access["summary"]["denied"].as_u64().unwrap() >= 1);
    assert_eq!(access["parameters"]["from"], format!("{}T00:00:00.000Z", day(-1)));

    // Consent: two visits, one recorded with consent, one declined; no recording without consent.
    let consent = json_report("consent", String::new()).await;
    assert_eq!(consent["summary"]["visits"], 2, "{consent}");
    assert_eq!(
        consent["summary"]["by_consent"],
        json!({"declined": 1, "given": 1})
    );
    assert_eq!(consent["summary"]["recordings"], 1);
    assert_eq!(consent["summary"]["recordings_without_consent"], 0);
    let by_visit = |v: &str| {
        consent["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["visit"] == v)
            .unwrap()
            .clone()
    };
    let (v1, v2) = (by_visit(&visit1), by_visit(&visit2));
    assert_eq!(
        (
            v1["consent"].as_str(),
            v1["recording_status"].as_str(),
            v1["data_classification"].as_str()
        ),
        (Some("given"), Some("enabled"), Some("phi.chat+media"))
    );
    assert_eq!(v1["recording"], recording.as_str());
    assert_eq!(
        (
            v2["consent"].as_str(),
            v2["recording_status"].as_str(),
            v2["data_classification"].as_str()
        ),
        (Some("declined"), Some("disabled_by_consent"), Some("phi.chat"))
    );
    assert_eq!(v2["interaction_type"], "video");
    // Every interaction is classified: the chat-only one too, and the nurse held the queue's skills and grant.
    assert_eq!(consent["summary"]["chat_only_interactions"], 1, "{consent}");
    assert_eq!(consent["summary"]["agents_not_authorized"], 0);
    let chat_row = consent["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["conversation"] == chat_only.as_str())
        .expect("the chat-only interaction has a row");
    assert_eq!(
        (
            chat_row["interaction_type"].as_str(),
            chat_row["consent"].as_str(),
            chat_row["data_classification"].as_str()
        ),
        (Some("chat"), Some("not_applicable"), Some("phi.chat"))
    );
    for row in [&v1, &v2, chat_row] {
        assert_eq!(row["agent_authorized"], true, "{row}");
    }
    assert_eq!(v1["conversation"], conversation.as_str());
    let flags = consent.to_string();
    for planted in ["patient", "Pat ", "@"] {
        assert!(!flags.contains(planted), "no identifiers in the flags: {planted}");
    }

    // Exposure (threshold 0): the compliance officer's recording is outside any assignment of hers; the
    // nurse's chat is her own, and her refusal is counted.
    let exposure = json_report("exposure", String::new()).await;
    let member = |role: &str| {
        exposure["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == role)
            .unwrap()
            .clone()
    };
    let (co, n) = (member("compliance_officer"), member("nurse"));
    assert_eq!(co["outside_assignments"], 1, "{exposure}");
    assert_eq!(co["flagged"], true);
    // Her two chats (the visits' and the chat-only one), both her own.
    assert_eq!(n["records_accessed"], 2, "{exposure}");
    assert_eq!(n["outside_assignments"], 0);
    assert_eq!(n["denied_attempts"], 1);
    assert_eq!(n["flagged"], false);
    assert_eq!(n["actor_name"], "Nora Demo", "{exposure}");
    assert_eq!(exposure["summary"]["threshold_per_24h"], 0);

    // Accounting of disclosures for the patient: the officer's download and the nurse's reads of the chat, each
    // with its purpose; someone else's accounting has none of it; the report needs its patient.
    let chats: Vec<(String, String)> =
        crate::chat::query_db(&data, "SELECT id, patient FROM conversations").await;
    let subject = chats
        .iter()
        .find(|c| c.0 == conversation)
        .expect("the chat")
        .1
        .clone();
    let accounting = json_report("accounting", format!("&patient={}", urlencode(&subject))).await;
    let disclosed = accounting["rows"].as_array().unwrap();
    let dl = disclosed
        .iter()
        .find(|r| r["action"] == "recording.download")
        .unwrap_or_else(|| panic!("the download in {accounting}"));
    assert_eq!(dl["reason"], "incident 42");
    assert_eq!(dl["actor_name"], "Cora Demo");
    assert!(
        disclosed
            .iter()
            .any(|r| r["role"] == "nurse" && r["resource"] == format!("conversation:{conversation}")),
        "the nurse's read: {accounting}"
    );
    assert_eq!(accounting["summary"]["recordings"], 1, "{accounting}");
    assert!(accounting["summary"]["by_others"].as_u64().unwrap() >= 2);
    let nobody = json_report("accounting", "&patient=someone-else".into()).await;
    assert_eq!(nobody["rows"], json!([]), "{nobody}");
    assert_eq!(report("accounting", "", &compliance).await.unwrap().status(), 400);
    assert_eq!(
        report("access", "&patient=x", &compliance)
            .await
            .unwrap()
            .status(),
        400
    );

    // Retention as of twenty years on: overdue; the sweep then deletes it with a receipt.
    let future = (chrono::Utc::now() + chrono::Duration::days(20 * 366)).to_rfc3339();
    let retention_as_of = |to: &str| {
        let r = http
            .get(format!(
                "{url}/api/v1/reports/retention?from={}&to={}",
                day(-1),
                urlencode(to)
            ))
            .header("cookie", compliance.clone())
            .send();
        async move { r.await.unwrap().json::<Value>().await.unwrap() }
    };
    let overdue = retention_as_of(&future).await;
    assert_eq!(overdue["summary"]["past_retention_not_deleted"], 1, "{overdue}");
    let d = data.to_str().unwrap();
    let (code, out) = crate::common::examroom(&["retention", "sweep", "--data-dir", d, "--now", &future]);
    assert_eq!(code, Some(0), "{out}");
    let retention = retention_as_of(&future).await;
    assert_eq!(retention["summary"]["deleted"], 1, "{retention}");
    assert_eq!(retention["summary"]["past_retention_not_deleted"], 0);
    let row = &retention["rows"][0];
    assert_eq!(row["status"], "deleted");
    assert_eq!(row["receipt"]["recording"], recording.as_str());

    // Reproducible: the access report at its head, after more events, over HTTP and through the CLI.
    let head = access["chain_head"]["seq"].as_i64().unwrap();
    let again = json_report("access", format!("&head_seq={head}")).await;
    assert_eq!(again, access, "same parameters and head, same report");
    let now = json_report("access", String::new()).await;
    assert!(now["chain_head"]["seq"].as_i64().unwrap() > head);
    let (code, out) = crate::common::examroom(&[
        "report",
        "access",
        "--from",
        &day(-1),
        "--to",
        &day(1),
        "--head-seq",
        &head.to_string(),
        "--exposure-threshold",
        "0",
        "--data-dir",
        d,
    ]);
    assert_eq!(code, Some(0), "{out}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli, access, "the CLI computes the same report");

    // CSV carries the same rows, the parameters and the head; a display zone adds local times only.
    let csv = report("access", &format!("&format=csv&head_seq={head}"), &compliance)
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.headers()["x-examroom-chain-head"].to_str().unwrap(),
        format!("{head} {}", access["chain_head"]["hash"].as_str().unwrap())
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.contains(&format!("# chain_head: seq={head} ")), "{csv}");
    let data_lines = csv.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(data_lines, rows.len() + 1, "a header and one line per row");
    let zoned = json_report("access", format!("&tz=America/Chicago&head_seq={head}")).await;
    assert_eq!(zoned["rows"].as_array().unwrap().len(), rows.len());
    assert!(
        zoned["rows"][0]["at_local"]
            .as_str()
            .unwrap()
            .ends_with("[America/Chicago]")
    );

    // Only compliance officers; bad parameters are named.
    let helpdesk = staff_cookie(&url, &data, "helpdesk").await;
    for cookie in [&nurse, &helpdesk] {
        assert_eq!(report("access", "", cookie).await.unwrap().status(), 403);
    }
    let bad = |q: &str| {
        http.get(format!("{url}/api/v1/reports/{q}"))
            .header("cookie", compliance.clone())
            .send()
    };
    for (q, says) in [
        ("access?from=yesterday&to=2030-01-01", "from:"),
        ("access?from=2030-01-02&to=2030-01-01", "from:"),
        ("access?from=2030-01-01&to=2030-01-02&tz=Mars/Olympus", "tz:"),
        ("nonsense?from=2030-01-01&to=2030-01-02", "report:"),
        (
            "access?from=2030-01-01&to=2030-01-02&head_seq=999999999",
            "head_seq:",
        ),
    ] {
        let r = bad(q).await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_report_query");
        assert!(
            body["error"]["message"].as_str().unwrap().starts_with(says),
            "{q}: {body}"
        );
    }
    broker.assert_no_panic();
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
