//! Interpreters and physicians at the socket, against a broker in this process: the nurse lists who is signed
//! in with those roles (not herself, not a patient, not who is already asked) and asks one in; they are told who
//! asks; only the one asked may answer (anyone else is refused, audited); accepted, they answer the recording
//! question and join like an admitted guest; a decline is told to the nurse; nobody else may list or ask;
//! removed, they are told and keep their staff session. Every step is audited.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, audit_denials, query_db};
use crate::demo::staff_cookie;
use crate::guests::started_visit;
use crate::test_app::TestApp;

fn member<'a>(frame: &'a Value, id: &str) -> Option<&'a Value> {
    frame["guests"].as_array()?.iter().find(|g| g["guest_id"] == id)
}

#[tokio::test]
async fn a_nurse_asks_an_interpreter_in_and_a_physician_declines_at_the_socket() {
    let app = TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let (mut patient, mut nurse, visit) = started_visit(&app).await;
    let ask = |ty: &str, extra: Value| {
        let mut frame = json!({"v": 1, "type": ty, "visit_id": visit});
        frame
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        frame
    };

    // Nobody signed in as an interpreter or physician yet.
    nurse.send(ask("consult_staff", json!({}))).await;
    assert_eq!(nurse.expect("consult_staff").await["staff"], json!([]));

    let interpreter_cookie = staff_cookie(&url, &data, "interpreter").await;
    let mut ines = Ws::staff(&url, &interpreter_cookie).await;
    let mut paul = Ws::staff(&url, &staff_cookie(&url, &data, "physician").await).await;
    nurse.send(ask("consult_staff", json!({}))).await;
    let list = nurse.expect("consult_staff").await;
    let staff = list["staff"].as_array().unwrap();
    assert_eq!(staff.len(), 2, "{list}");
    let find = |role: &str| staff.iter().find(|s| s["role"] == role).unwrap().clone();
    let (interpreter, physician) = (find("interpreter"), find("physician"));
    assert_eq!(
        (&interpreter["name"], &interpreter["skills"]),
        (&json!("Ines Demo"), &json!(["spanish"]))
    );
    let ines_id = interpreter["staff_id"].as_str().unwrap().to_string();
    let paul_id = physician["staff_id"].as_str().unwrap().to_string();

    // Only the visit's nurse lists or asks: not the patient, not the staff themselves.
    patient.send(ask("consult_staff", json!({}))).await;
    assert_eq!(patient.expect("error").await["code"], "forbidden");
    ines.send(ask("consult_invite", json!({"staff_id": ines_id})))
        .await;
    assert_eq!(ines.expect("error").await["code"], "forbidden");
    // Only staff signed in with those roles can be asked (the nurse's own id is not one).
    nurse
        .send(ask("consult_invite", json!({"staff_id": "someone-else"})))
        .await;
    assert_eq!(nurse.expect("error").await["code"], "not_consultant");

    nurse
        .send(ask("consult_invite", json!({"staff_id": ines_id})))
        .await;
    let asked = ines.expect("consult_asked").await;
    assert_eq!(
        (&asked["visit_id"], &asked["from"], &asked["role"]),
        (&json!(visit), &json!("Nora Demo"), &json!("interpreter"))
    );
    let seen = patient
        .wait("the patient sees her asked", |v| {
            v["type"] == "video_party" && member(v, &ines_id).is_some_and(|g| g["state"] == "asked")
        })
        .await;
    assert_eq!(member(&seen, &ines_id).unwrap()["role"], "interpreter");
    nurse
        .send(ask("consult_invite", json!({"staff_id": ines_id})))
        .await;
    assert_eq!(nurse.expect("error").await["code"], "already_in_visit");
    // Someone not asked cannot answer for her.
    paul.send(ask("consult_answer", json!({"accept": true}))).await;
    assert_eq!(paul.expect("error").await["code"], "not_asked");

    // She accepts: the recording question, then the call.
    ines.send(ask("consult_answer", json!({"accept": true}))).await;
    ines.expect("video_proposed").await;
    ines.send(ask(
        "video_answer",
        json!({"accept": true, "recording_consent": true}),
    ))
    .await;
    ines.expect("video_started").await;
    nurse
        .wait("the nurse sees her in", |v| {
            v["type"] == "video_party"
                && member(v, &ines_id)
                    .is_some_and(|g| g["state"] == "admitted" && g["recording_consent"] == true)
        })
        .await;
    // No longer someone to ask.
    nurse.send(ask("consult_staff", json!({}))).await;
    let list = nurse.expect("consult_staff").await;
    let listed = list["staff"].as_array().unwrap();
    assert!(
        !listed.iter().any(|s| s["staff_id"] == ines_id.as_str()),
        "{list}"
    );

    // The physician declines: the nurse is told by name.
    nurse
        .send(ask("consult_invite", json!({"staff_id": paul_id})))
        .await;
    paul.expect("consult_asked").await;
    paul.send(ask("consult_answer", json!({"accept": false}))).await;
    let declined = nurse.expect("consult_declined").await;
    assert_eq!(declined["name"], "Paul Demo");

    // Removed, she is told; her staff session stays (a guest's would end).
    ines.take_ready(300).await;
    nurse
        .send(ask("guest_remove", json!({"guest_id": ines_id})))
        .await;
    assert_eq!(ines.expect("video_ended").await["reason"], "removed");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    ines.send(json!({"v": 1, "type": "ping"})).await;
    ines.expect("pong").await;
    let me = crate::common::client()
        .get(format!("{url}/api/v1/me"))
        .header("cookie", &interpreter_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let denials = audit_denials(&data).await;
    assert!(
        denials
            .iter()
            .any(|(a, r)| a == "visit.staff_joined" && r.contains(&visit)),
        "{denials:?}"
    );
    let done: Vec<(String,)> = query_db(
        &data,
        "SELECT action FROM audit_events WHERE outcome = 'success' AND action LIKE 'visit.staff_%' ORDER BY seq",
    )
    .await;
    let done: Vec<&str> = done.iter().map(|(a,)| a.as_str()).collect();
    assert_eq!(
        done,
        [
            "visit.staff_asked",
            "visit.staff_joined",
            "visit.staff_asked",
            "visit.staff_declined"
        ]
    );
}
