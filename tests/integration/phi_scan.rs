//! No PHI leaves the broker except to authorised people: a full visit with planted PHI markers (the patient's
//! name, date of birth and subject, an MRN and symptoms typed into the chat, a reason given for a pause) runs
//! through chat, video and a recording with debug logging on; then every log line, the metrics text (labels
//! included), every request URL the access log recorded, every stored file and object name, and the bodies of
//! errors provoked with PHI in the input are scanned. Zero hits.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::Broker;
use crate::demo::{patient_token, staff_cookie};
use crate::media_peers::{in_namespace, join};
use crate::peer::ClientPeer;
use crate::recording_peers::pump_paced;

const MRN: &str = "MRN-4471-0093";
const SYMPTOM: &str = "crushing chest pain since Tuesday";

#[test]
fn a_full_visit_with_planted_phi_leaks_none_of_it() {
    in_namespace("phi_scan::inner_phi_scan");
}

fn files_under(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(entry.file_name().to_string_lossy().to_string());
        if entry.path().is_dir() {
            files_under(&entry.path(), out);
        }
    }
}

#[tokio::test]
#[ignore = "run inside a network namespace by a_full_visit_with_planted_phi_leaks_none_of_it"]
async fn inner_phi_scan() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut env = FAST_ROUTING.to_vec();
    env.push(("EXAMROOM_LOGGING__LEVEL", "examroom=debug,info"));
    env.push(("EXAMROOM_LOGGING__FORMAT", "json"));
    let broker = Broker::dev(&data, &env);
    let url = broker.url.clone();
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("dev-idp/credentials.json")).unwrap())
            .unwrap();
    let patient_user = creds["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "patient")
        .unwrap()
        .clone();
    let mut planted: Vec<String> = ["name", "birthdate", "sub"]
        .iter()
        .map(|k| patient_user[k].as_str().unwrap().to_string())
        .collect();
    planted.extend([
        MRN.to_string(),
        SYMPTOM.to_string(),
        "SSN 078-05-1120".to_string(),
    ]);

    // Chat with PHI in it, then video, recorded, with a pause whose reason names the record.
    let token = patient_token(&url, &data, "patient").await;
    let nurse_cookie = staff_cookie(&url, &data, "nurse").await;
    let mut patient = Ws::patient(&url, &token).await;
    let mut nurse = Ws::staff(&url, &nurse_cookie).await;
    let conversation = patient.start("triage", "k1").await;
    patient
        .say(&conversation, "m1", &format!("My {MRN}: {SYMPTOM}"))
        .await;
    nurse.presence("ready").await;
    nurse.offer_for(&conversation).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": conversation}))
        .await;
    patient.expect("assigned").await;
    nurse.sync(&conversation, 0).await;
    nurse
        .say(&conversation, "n1", &format!("Thanks, I see {MRN} in the chart"))
        .await;
    nurse
        .send(json!({"v": 1, "type": "video_request", "device_check": {"camera": true, "microphone": true}, "conversation_id": conversation}))
        .await;
    let visit = patient.expect("video_proposed").await["visit_id"]
        .as_str()
        .unwrap()
        .to_string();
    patient
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true, "recording_consent": true}))
        .await;
    patient.expect("video_started").await;
    nurse.expect("video_started").await;
    let mut p = ClientPeer::new("PATIENT", "NURSE").await;
    let mut n = ClientPeer::new("NURSE", "PATIENT").await;
    join(&mut nurse, &mut n, &visit).await;
    join(&mut patient, &mut p, &visit).await;
    pump_paced(&p, &n, 0, 30).await;
    let http = crate::common::client();
    let pause = |state: &str| {
        http.put(format!("{url}/api/v1/visits/{visit}/recording-state"))
            .header("cookie", &nurse_cookie)
            .header("origin", &url)
            .json(&json!({"state": state, "reason": "EMR identity section open"}))
            .send()
    };
    assert_eq!(pause("paused").await.unwrap().status(), 200);
    pump_paced(&p, &n, 30, 15).await;
    assert_eq!(pause("active").await.unwrap().status(), 200);
    pump_paced(&p, &n, 45, 15).await;
    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    patient.expect("video_ended").await;

    // Errors provoked with PHI in the input must not echo it.
    let mut error_bodies = Vec::new();
    patient
        .send_text(&format!(r#"{{"v":1,"type":"ping","{SYMPTOM}":1}}"#))
        .await;
    error_bodies.push(patient.expect("error").await.to_string());
    patient
        .send_text(&format!(
            r#"{{"v":1,"type":"sync","conversation_id":"{MRN}","after_seq":0}}"#
        ))
        .await;
    error_bodies.push(patient.expect("error").await.to_string());
    let r = http
        .put(format!("{url}/api/v1/visits/{visit}/recording-state"))
        .header("cookie", &nurse_cookie)
        .header("origin", &url)
        .header("content-type", "application/json")
        .body(format!(r#"{{"state":"paused","reason":"x","{MRN}":true}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    error_bodies.push(r.text().await.unwrap());
    let r = http
        .get(format!("{url}/api/v1/recordings/{MRN}/download?reason=x"))
        .header("cookie", staff_cookie(&url, &data, "compliance").await)
        .send()
        .await
        .unwrap();
    error_bodies.push(r.text().await.unwrap());

    let r = http
        .get(format!("{url}/api/v1/recordings?reason=x&{MRN}=1"))
        .header("cookie", staff_cookie(&url, &data, "compliance").await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    error_bodies.push(r.text().await.unwrap());

    // Wait for the recording to be stored, then collect everything observable.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut names = Vec::new();
    files_under(&data, &mut names);
    let logs = broker
        .stdout
        .lines()
        .into_iter()
        .chain(broker.stderr.lines())
        .collect::<Vec<_>>();
    assert!(logs.len() > 50, "debug logging produced {} lines", logs.len());
    let urls: Vec<String> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["span"]["route"].as_str().map(str::to_string))
        .collect();
    assert!(!urls.is_empty(), "access log lines carry their route");
    assert!(
        names.iter().any(|n| n.ends_with(".erseg")),
        "a recording object was stored: {names:?}"
    );

    for needle in &planted {
        let hit = |haystack: &str| haystack.contains(needle.as_str());
        assert!(
            !logs.iter().any(|l| hit(l)),
            "a log line holds planted PHI `{needle}`"
        );
        assert!(!hit(&metrics), "metrics hold planted PHI `{needle}`");
        assert!(!urls.iter().any(|u| hit(u)), "an access-log URL holds `{needle}`");
        assert!(
            !names.iter().any(|n| hit(n)),
            "a file or object name holds `{needle}`"
        );
        assert!(
            !error_bodies.iter().any(|b| hit(b)),
            "an error body echoes `{needle}`: {error_bodies:?}"
        );
    }
    broker.assert_no_panic();
}
