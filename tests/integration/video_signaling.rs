//! Video signaling over real WebSockets, without a browser: who may elevate, join and signal, and precise
//! errors for bad input (garbage SDP, too many media sections, candidates without a connection, another
//! visit's id), each refusal that is an access attempt audited, the socket usable afterwards.

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws};
use crate::demo::{patient_token, staff_cookie};

async fn error_code(ws: &mut Ws, frame: Value) -> String {
    ws.send(frame).await;
    let e = ws.expect("error").await;
    e["code"].as_str().unwrap().to_string()
}

fn offer(media_sections: usize) -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 \
         00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n",
    );
    for i in 0..media_sections {
        sdp.push_str(&format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=sendrecv\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=rtcp-mux\r\n\
             a=rtpmap:96 VP8/90000\r\n"
        ));
    }
    sdp
}

#[tokio::test]
async fn elevation_rules_and_bad_signaling_get_precise_errors() {
    // In process (socket rules need no binary); a panic in the server fails the test when `app` drops.
    let app = crate::test_app::TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let mut intruder = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    let mut nurse2 = Ws::staff(&url, &staff_cookie(&url, &data, "nurse2").await).await;
    let conversation = patient.start("triage", "k1").await;

    // Nobody elevates a chat still in the waiting room: the lobby is enforced.
    let req = json!({"v": 1, "type": "video_request", "device_check": {"camera": true, "microphone": true}, "conversation_id": conversation});
    assert_eq!(error_code(&mut nurse, req.clone()).await, "forbidden");
    assert_eq!(error_code(&mut patient, req.clone()).await, "forbidden");

    nurse.presence("ready").await;
    nurse.offer_for(&conversation).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": conversation}))
        .await;
    patient.expect("assigned").await;

    // Not before the nurse's own camera and microphone work, checked for this very request.
    let unchecked = json!({"v": 1, "type": "video_request", "conversation_id": conversation});
    assert_eq!(error_code(&mut nurse, unchecked).await, "device_check_required");
    let no_camera = json!({"v": 1, "type": "video_request", "conversation_id": conversation,
                           "device_check": {"camera": false, "microphone": true}});
    assert_eq!(error_code(&mut nurse, no_camera).await, "device_check_required");

    // Another nurse cannot elevate someone else's chat; the assigned nurse can, idempotently.
    assert_eq!(error_code(&mut nurse2, req.clone()).await, "forbidden");
    nurse.send(req.clone()).await;
    let proposed = patient.expect("video_proposed").await;
    let visit = proposed["visit_id"].as_str().unwrap().to_string();
    assert!(visit.starts_with('v') && visit.len() == 25, "opaque id {visit}");
    // The consent question, worded from the policy, in English and in Spanish for a Spanish widget.
    assert_eq!(proposed["recording"], "consent_required");
    assert!(proposed["consent_text"].as_str().unwrap().starts_with("I agree"));
    let es = proposed["consent_translations"]["es"].as_str().unwrap();
    assert!(
        es.starts_with("Acepto que esta consulta por video se grabe"),
        "{es}"
    );
    assert_eq!(nurse.expect("video_proposed").await["visit_id"], visit.as_str());

    // Joining before the patient agreed, or answering in the patient's place, is refused.
    let join = |sdp: String| json!({"v": 1, "type": "video_offer", "visit_id": visit, "sdp": sdp});
    assert_eq!(error_code(&mut nurse, join(offer(2))).await, "video_not_accepted");
    let answer = json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true});
    assert_eq!(error_code(&mut nurse, answer.clone()).await, "forbidden");
    assert_eq!(error_code(&mut intruder, answer.clone()).await, "forbidden");
    // The consent question exists in English and Spanish only: another language is named as wrong.
    let mut french = answer.clone();
    french["recording_consent"] = json!(true);
    french["consent_language"] = json!("fr");
    assert_eq!(error_code(&mut patient, french).await, "unknown_language");

    patient.send(answer.clone()).await;
    let started = patient.expect("video_started").await;
    assert_eq!(started["visit_id"], visit.as_str());
    assert_eq!(started["ice_transport_policy"], "all");
    assert_eq!(started["record_screen"], false, "not recorded: no screen either");
    nurse.expect("video_started").await;
    assert_eq!(error_code(&mut patient, answer).await, "already_answered");
    // A screen capture is only ever the nurse's, and only into a recording whose policy asks for it.
    let mut screen = join(offer(2));
    screen["screen_track"] = json!("a-track-id");
    assert_eq!(
        error_code(&mut patient, screen.clone()).await,
        "screen_not_recorded"
    );
    assert_eq!(error_code(&mut nurse, screen).await, "screen_not_recorded");

    // Bad SDP and candidates: precise codes, and the socket keeps working.
    assert_eq!(
        error_code(&mut patient, join("garbage".into())).await,
        "invalid_sdp"
    );
    assert_eq!(error_code(&mut patient, join(offer(5))).await, "too_many_tracks");
    assert_eq!(
        error_code(&mut patient, join("v=0\r\n".repeat(8_000))).await,
        "sdp_too_large"
    );
    let candidate = |c: &str| {
        json!({"v": 1, "type": "video_candidate", "visit_id": visit,
               "candidate": {"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0}})
    };
    assert_eq!(
        error_code(
            &mut patient,
            candidate("candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host")
        )
        .await,
        "no_peer_connection"
    );
    assert_eq!(
        error_code(&mut patient, candidate("<script>")).await,
        "invalid_candidate"
    );
    assert_eq!(
        error_code(
            &mut patient,
            json!({"v": 1, "type": "video_candidate", "visit_id": visit, "candidate": {"candidate": "", "evil": 1}})
        )
        .await,
        "unknown_field"
    );

    // Another patient signalling for this visit, or a forged visit id: refused and audited.
    assert_eq!(error_code(&mut intruder, join(offer(2))).await, "forbidden");
    let forged =
        json!({"v": 1, "type": "video_offer", "visit_id": "v000000000000000000000000", "sdp": offer(2)});
    assert_eq!(error_code(&mut intruder, forged).await, "forbidden");
    assert_eq!(
        error_code(
            &mut intruder,
            json!({"v": 1, "type": "video_end", "visit_id": "../etc"})
        )
        .await,
        "forbidden"
    );
    let messages = patient.say(&conversation, "m1", "still here").await;
    assert_eq!(messages["type"], "ack", "chat still works after refusals");

    // Either side ends the video; the chat goes on.
    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    let ended = patient.expect("video_ended").await;
    assert_eq!(ended["reason"], "nurse_ended");
    assert_eq!(
        error_code(&mut patient, join(offer(2))).await,
        "forbidden",
        "an ended visit cannot be joined"
    );

    // The SFU's metrics are exported.
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "examroom_media_live_visits 0",
        "examroom_media_peer_connections 0",
        "examroom_media_forwarded_packets_total",
        "examroom_media_keyframe_requests_total",
        "examroom_media_ice_failures_total",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }

    let denials = crate::chat::audit_denials(&data).await;
    for (action, resource) in [
        // Refused by the policy, under the action it was asked about.
        ("visit.create", format!("conversation:{conversation}")),
        ("visit.answer", format!("visit:{visit}")),
        ("visit.join", format!("visit:{visit}")),
        ("visit.join", "visit:v000000000000000000000000".to_string()),
        ("visit.end", "visit:invalid".to_string()),
        // Allowed by the policy, refused by the visit's state (joining before the patient agreed).
        ("video.join", format!("visit:{visit}")),
    ] {
        assert!(
            denials.iter().any(|(a, r)| a == action && r == &resource),
            "{action} on {resource} audited: {denials:?}"
        );
    }
}

#[tokio::test]
async fn the_video_prompt_waits_for_a_slow_patient_and_says_why_it_ended() {
    let env: Vec<(&str, &str)> = FAST_ROUTING
        .iter()
        .copied()
        .chain([
            ("EXAMROOM_MEDIA__EMPTY_VISIT_GRACE_SECONDS", "1"),
            ("EXAMROOM_MEDIA__VIDEO_PROMPT_SECONDS", "10"),
        ])
        .collect();
    let app = crate::test_app::TestApp::spawn(&env).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    let conversation = patient.start("triage", "k1").await;
    nurse.presence("ready").await;
    nurse.offer_for(&conversation).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": conversation}))
        .await;
    patient.expect("assigned").await;
    let request = json!({"v": 1, "type": "video_request", "device_check": {"camera": true, "microphone": true}, "conversation_id": conversation});

    // Looking for the camera permission takes longer than the empty-visit grace: the question stays.
    nurse.send(request.clone()).await;
    let visit = patient.expect("video_proposed").await["visit_id"]
        .as_str()
        .unwrap()
        .to_string();
    patient.quiet("video_ended", 3000).await;
    // The browser blocked the devices and the patient gives up: the nurse is told so, not "declined".
    patient
        .send(
            json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": false,
                     "decline_reason": "devices_blocked"}),
        )
        .await;
    let ended = nurse.wait("video_ended", |v| v["type"] == "video_ended").await;
    assert_eq!(ended["reason"], "devices_blocked");
    patient.wait("video_ended", |v| v["type"] == "video_ended").await;

    // Asked again and never answered: after the prompt's own timeout, both are told "no answer".
    nurse.send(request).await;
    patient.expect("video_proposed").await;
    let ended = nurse
        .wait_within("video_ended", 15, |v| v["type"] == "video_ended")
        .await;
    assert_eq!(ended["reason"], "no_answer");
    let ended = patient.wait("video_ended", |v| v["type"] == "video_ended").await;
    assert_eq!(ended["reason"], "no_answer");
}
