//! Guests at the socket and HTTP level, against a broker in this process: a link works once and not after its
//! visit ended; a name with control or invisible characters is refused and leaves the link usable; a guest in
//! the lobby hears no guest list; under the shipped policy (consent asked) a guest who answers without saying
//! yes counts as a no; a guest answers once; a guest's `video_mode` is no access attempt; a guest the nurse
//! removed is told, hears nothing more of the visit and loses their session; a patient sees no guest's
//! recording answer, the nurse does.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, audit_denials};
use crate::common::client;
use crate::demo::{patient_token, staff_cookie};
use crate::test_app::TestApp;

/// A started visit: the patient (consenting to the recording) and the nurse's sockets, and its id.
pub async fn started_visit(app: &TestApp) -> (Ws, Ws, String) {
    let (url, data) = (&app.url, &app.data);
    let mut patient = Ws::patient(url, &patient_token(url, data, "patient").await).await;
    let mut nurse = Ws::staff(url, &staff_cookie(url, data, "nurse").await).await;
    nurse
        .send(json!({"v": 1, "type": "presence", "state": "ready"}))
        .await;
    nurse.expect("presence").await;
    patient
        .send(json!({"v": 1, "type": "start", "queue": "triage", "idempotency_key": "g1"}))
        .await;
    let c = patient.expect("conversation").await["conversation"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    nurse.offer_for(&c).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": c}))
        .await;
    patient.expect("assigned").await;
    let check = json!({"camera": true, "microphone": true});
    nurse
        .send(json!({"v": 1, "type": "video_request", "conversation_id": c, "device_check": check}))
        .await;
    let visit = nurse.expect("video_proposed").await["visit_id"]
        .as_str()
        .unwrap()
        .to_string();
    patient
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true, "recording_consent": true}))
        .await;
    patient.expect("video_started").await;
    (patient, nurse, visit)
}

/// A new link's token, asked by the patient.
async fn invite(patient: &mut Ws, visit: &str) -> String {
    patient
        .send(json!({"v": 1, "type": "guest_invite", "visit_id": visit}))
        .await;
    let link = patient.expect("guest_link").await;
    link["link"]
        .as_str()
        .unwrap()
        .rsplit('#')
        .next()
        .unwrap()
        .to_string()
}

/// Opens a link under `name`: the status and the body.
async fn arrive(url: &str, token: &str, name: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{url}/api/v1/guest-sessions"))
        .header("origin", url)
        .json(&json!({"token": token, "name": name}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn party_of<'a>(frame: &'a Value, guest: &str) -> Option<&'a Value> {
    frame["guests"]
        .as_array()?
        .iter()
        .find(|g| g["guest_id"] == guest)
}

#[tokio::test]
async fn guest_links_lobby_consent_and_removal_at_the_socket() {
    let app = TestApp::spawn(FAST_ROUTING).await;
    let url = app.url.clone();
    let (mut patient, mut nurse, visit) = started_visit(&app).await;

    // A bad name leaves the link as it was; the link works once.
    let token = invite(&mut patient, &visit).await;
    for bad in ["", "Nur\u{202E}esrun", "A\u{200B}na"] {
        let (status, body) = arrive(&url, &token, bad).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_name")),
            "{bad:?}"
        );
    }
    let (status, first) = arrive(&url, &token, "Ana").await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = arrive(&url, &token, "Ana").await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (400, Some("link_invalid"))
    );
    let ana = first["guest_id"].as_str().unwrap().to_string();
    let mut guest = Ws::patient(&url, first["session_token"].as_str().unwrap()).await;
    guest.expect("guest_lobby").await;
    // In the lobby, nobody has vetted them: no guest list.
    // (A guest in the lobby hears no guest list.)
    guest.quiet("video_party", 1000).await;

    // Admitted, they answer without saying yes to the recording: under the shipped policy that is a no.
    nurse
        .send(json!({"v": 1, "type": "guest_admit", "visit_id": visit, "guest_id": ana, "admit": true}))
        .await;
    guest.expect("video_proposed").await;
    guest
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true}))
        .await;
    guest.expect("video_started").await;
    let answered = |v: &Value| {
        v["type"] == "video_party" && party_of(v, &ana).is_some_and(|g| g["recording_consent"] == false)
    };
    nurse.wait("the nurse sees the guest's no", answered).await;
    let seen = patient
        .wait("the patient's guest list", |v| {
            v["type"] == "video_party" && party_of(v, &ana).is_some_and(|g| g["state"] == "admitted")
        })
        .await;
    assert!(
        party_of(&seen, &ana).unwrap().get("recording_consent").is_none(),
        "{seen}"
    );
    // Once: a second answer cannot take them into the recording.
    guest
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true, "recording_consent": true}))
        .await;
    let refused = guest.expect("error").await;
    assert_eq!(refused["code"], "already_answered");
    // Their page following the visit's mode is no access attempt.
    guest
        .send(json!({"v": 1, "type": "video_mode", "visit_id": visit, "audio_only": true}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Removed: told once, then nothing more of the visit, whatever happens in it.
    guest.take_ready(300).await;
    nurse
        .send(json!({"v": 1, "type": "guest_remove", "visit_id": visit, "guest_id": ana}))
        .await;
    let ended = guest.expect("video_ended").await;
    assert_eq!(ended["reason"], "removed");
    let late = invite(&mut patient, &visit).await;
    let (status, _) = arrive(&url, &late, "Bo").await;
    assert_eq!(status, 201);
    // (A removed guest hears nothing more of the visit, and their session ends: the socket closes.)
    guest.quiet("video_party", 1000).await;
    let closed = guest.close_code_or_end().await;
    assert!(matches!(closed, None | Some(4001)), "session_ended: {closed:?}");

    // The visit ends: a link asked before is useless.
    let unused = invite(&mut patient, &visit).await;
    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    patient.expect("video_ended").await;
    let (status, body) = arrive(&url, &unused, "Cy").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("link_invalid"))
    );
    let denials = audit_denials(&app.data).await;
    assert!(
        !denials.iter().any(|(action, _)| action == "video.mode"),
        "a guest's video_mode is no access attempt: {denials:?}"
    );
}
