//! Mute, camera off and audio only over real sockets: a patient without a camera joins audio only, each side's
//! microphone and camera reach the other, either side switches the visit to audio only and back, a reconnecting
//! socket hears the current state, strangers are refused and audited, and the stored recording's manifest lists
//! the audio-only intervals.

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws};
use crate::demo::{patient_token, staff_cookie};

fn media(visit: &str, microphone: bool, camera: bool) -> Value {
    json!({"v": 1, "type": "video_media", "visit_id": visit, "microphone": microphone, "camera": camera})
}

fn mode(visit: &str, audio_only: bool) -> Value {
    json!({"v": 1, "type": "video_mode", "visit_id": visit, "audio_only": audio_only})
}

#[tokio::test]
async fn mute_camera_off_and_audio_only_reach_both_sides_and_the_manifest() {
    let app = crate::test_app::TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let token = patient_token(&url, &data, "patient").await;
    let mut patient = Ws::patient(&url, &token).await;
    let mut intruder = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;
    let nurse_cookie = staff_cookie(&url, &data, "nurse").await;
    let mut nurse = Ws::staff(&url, &nurse_cookie).await;
    let (_, visit) = crate::media_peers::chat_then_video_request(&mut patient, &mut nurse, "k1").await;

    // No controls before the patient has answered.
    nurse.send(media(&visit, false, true)).await;
    assert_eq!(nurse.expect("error").await["code"], "video_not_accepted");

    // The patient's camera is blocked: they join with the microphone alone, and the visit starts audio only.
    patient
        .send(
            json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true,
                     "recording_consent": true, "audio_only": true}),
        )
        .await;
    for ws in [&mut patient, &mut nurse] {
        let started = ws.expect("video_started").await;
        assert_eq!(started["audio_only"], true, "{started}");
        assert_eq!(started["recording"], "recording");
    }

    // Mute and camera off reach the other side, once.
    patient.send(media(&visit, false, false)).await;
    let f = nurse.expect("video_media").await;
    assert_eq!(
        (&f["side"], &f["microphone"], &f["camera"]),
        (&json!("patient"), &json!(false), &json!(false))
    );
    patient.expect("video_media").await;
    patient.send(media(&visit, false, false)).await;
    nurse.quiet("video_media", 500).await;
    nurse.send(media(&visit, true, false)).await;
    let f = patient.expect("video_media").await;
    assert_eq!((&f["side"], &f["camera"]), (&json!("nurse"), &json!(false)));

    // Someone else's visit: refused and audited.
    intruder.send(media(&visit, false, false)).await;
    assert_eq!(intruder.expect("error").await["code"], "forbidden");
    intruder.send(mode(&visit, true)).await;
    assert_eq!(intruder.expect("error").await["code"], "forbidden");

    // The nurse turns video back on, then the patient switches to audio only again.
    nurse.send(mode(&visit, false)).await;
    for ws in [&mut patient, &mut nurse] {
        let f = ws.expect("video_mode").await;
        assert_eq!((&f["audio_only"], &f["by"]), (&json!(false), &json!("nurse")));
    }
    patient.send(mode(&visit, true)).await;
    for ws in [&mut patient, &mut nurse] {
        let f = ws.expect("video_mode").await;
        assert_eq!(
            (&f["audio_only"], &f["by"], &f["reason"]),
            (&json!(true), &json!("patient"), &json!("requested"))
        );
    }

    // A reload hears the visit as it stands: audio only, the patient muted, the nurse's camera off.
    let mut again = Ws::patient(&url, &token).await;
    let started = again.expect("video_started").await;
    assert_eq!(started["audio_only"], true);
    let mut sides = Vec::new();
    for _ in 0..2 {
        let f = again.expect("video_media").await;
        sides.push((f["side"].clone(), f["microphone"].clone(), f["camera"].clone()));
    }
    sides.sort_by_key(|s| s.0.to_string());
    assert_eq!(
        sides,
        vec![
            (json!("nurse"), json!(true), json!(false)),
            (json!("patient"), json!(false), json!(false))
        ]
    );

    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    patient.expect("video_ended").await;

    // The manifest lists both audio-only intervals, the first for want of a camera.
    let compliance = staff_cookie(&url, &data, "compliance").await;
    let list = crate::recording_peers::recordings_once_stored(&url, &compliance).await;
    let manifest = &list["recordings"][0]["manifest"];
    let intervals = manifest["audio_only"].as_array().expect("audio_only listed");
    assert_eq!(intervals.len(), 2, "{manifest}");
    assert_eq!(intervals[0]["reason"], "camera_unavailable");
    assert_eq!(intervals[1]["reason"], "requested");
    assert!(intervals.iter().all(|i| i["end_ms"].is_i64()), "{manifest}");
    assert!(intervals[0]["end_ms"].as_i64() <= intervals[1]["start_ms"].as_i64());

    let actions: Vec<(String, String)> = crate::chat::query_db(
        &data,
        "SELECT action, outcome FROM audit_events WHERE action LIKE 'video.%' OR action LIKE 'visit.%' ORDER BY seq",
    )
    .await;
    for expected in [
        ("video.audio_only", "success"),
        ("video.video_resumed", "success"),
        // The stranger's attempts, refused by the policy (the action it was asked about).
        ("visit.join", "denied"),
    ] {
        assert!(
            actions.iter().any(|(a, o)| (a.as_str(), o.as_str()) == expected),
            "{expected:?} audited: {actions:?}"
        );
    }
}
