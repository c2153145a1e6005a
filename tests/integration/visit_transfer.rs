//! A live video visit goes with its chat, at the socket (a broker in process). Warm: Nora asks Nico, who
//! accepts; within the sweep Nora's part of the visit ends (`video_ended` `transferred`), the patient hears that
//! Nico takes over (`video_handover`), Nico hears of the same visit in progress and may join it, Nora may not.
//! Cold: Nico sends it back to the triage queue; he is out of it, the patient hears the next nurse will join,
//! and nobody may join as the nurse until Nora takes the chat from the queue and so the visit. One visit
//! throughout; the transfers audited.

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, query_db};
use crate::demo::staff_cookie;
use crate::guests::started_visit;
use crate::test_app::TestApp;

/// Waits for a frame of `ty` about `visit`.
async fn about(ws: &mut Ws, ty: &'static str, visit: &str) -> Value {
    let visit = visit.to_string();
    ws.wait_within(ty, 15, move |v| {
        v["type"] == ty && v["visit_id"] == visit.as_str()
    })
    .await
}

#[tokio::test]
async fn a_live_visit_goes_with_its_chat_warm_to_a_colleague_and_cold_to_a_queue() {
    let app = TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let (mut patient, mut nora, visit) = started_visit(&app).await;
    let chat = nora.expect("video_started").await["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut nico = Ws::staff(&url, &staff_cookie(&url, &data, "nurse2").await).await;
    nico.presence("ready").await;
    nora.send(json!({"v": 1, "type": "colleagues", "conversation_id": chat}))
        .await;
    let nico_id = nora.expect("colleagues").await["nurses"][0]["nurse"].clone();

    // Warm: allowed with the video on; Nico accepts, the visit is his.
    nora.send(json!({"v": 1, "type": "transfer", "conversation_id": chat, "nurse": nico_id}))
        .await;
    nora.expect("transfer_asked").await;
    nico.offer_for(&chat).await;
    nico.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    assert_eq!(
        about(&mut nora, "video_ended", &visit).await["reason"],
        "transferred"
    );
    let told = about(&mut patient, "video_handover", &visit).await;
    assert_eq!(told["nurse"], "Nico Demo", "{told}");
    let started = about(&mut nico, "video_started", &visit).await;
    assert_eq!(started["conversation_id"], chat.as_str());
    // Nora is out of the visit; Nico is its nurse (his mute reaches the patient).
    let media = |ws_visit: &str| json!({"v": 1, "type": "video_media", "visit_id": ws_visit, "microphone": false, "camera": true});
    nora.send(media(&visit)).await;
    assert_eq!(nora.expect("error").await["code"], "forbidden");
    nico.send(media(&visit)).await;
    let seen = about(&mut patient, "video_media", &visit).await;
    assert_eq!(
        (&seen["side"], &seen["microphone"]),
        (&json!("nurse"), &json!(false)),
        "{seen}"
    );
    // What goes to the visit's nurse goes to Nico now, not to Nora.
    nora.quiet("video_media", 500).await;

    // Cold: back to triage; Nico is out, nobody holds the nurse's place until a nurse accepts the chat.
    nico.send(json!({"v": 1, "type": "transfer", "conversation_id": chat, "queue": "triage"}))
        .await;
    assert_eq!(
        about(&mut nico, "video_ended", &visit).await["reason"],
        "transferred"
    );
    let told = about(&mut patient, "video_handover", &visit).await;
    assert!(told.get("nurse").is_none(), "{told}");
    nico.send(media(&visit)).await;
    assert_eq!(nico.expect("error").await["code"], "forbidden");
    nora.take_ready(100).await;
    nora.presence("ready").await;
    nora.offer_for(&chat).await;
    nora.send(json!({"v": 1, "type": "accept", "conversation_id": chat}))
        .await;
    let told = about(&mut patient, "video_handover", &visit).await;
    assert_eq!(told["nurse"], "Nora Demo", "{told}");
    about(&mut nora, "video_started", &visit).await;
    let unmute =
        json!({"v": 1, "type": "video_media", "visit_id": visit, "microphone": true, "camera": true});
    nora.send(unmute).await;
    let seen = about(&mut patient, "video_media", &visit).await;
    assert_eq!(seen["microphone"], true, "{seen}");
    patient.quiet("video_ended", 500).await;

    let rows: Vec<(String,)> = query_db(
        &data,
        "SELECT reason FROM audit_events WHERE action = 'conversation.transfer' AND outcome = 'success' ORDER BY seq",
    )
    .await;
    let reasons: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert!(reasons[0].starts_with("warm to:"), "{reasons:?}");
    assert_eq!(reasons[1], "cold from:triage to:triage");
}
