//! Rate limits (`[limits]`), each hit and then recovered from: patient sessions per subject and per address,
//! staff sign-ins per person, reports and recording access per user (429 with `Retry-After` and a JSON error),
//! and a chat socket's frames (a `rate_limited` warning, then close 4029; the reconnect is not refused, and the
//! budget belongs to the session).

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::client;
use crate::demo::{credentials, password, portal_id_token_for, staff_cookie, staff_sign_in};
use crate::test_app::TestApp;

/// Small buckets refilled at one token a second, so a test waits out a refusal in about a second.
const LIMITS: &[(&str, &str)] = &[
    (
        "EXAMROOM_LIMITS__PATIENT_SESSION_PER_SUBJECT",
        "{ per_minute = 60, burst = 2 }",
    ),
    (
        "EXAMROOM_LIMITS__PATIENT_SESSION_PER_ADDRESS",
        "{ per_minute = 60, burst = 4 }",
    ),
    (
        "EXAMROOM_LIMITS__STAFF_SIGN_IN_PER_SUBJECT",
        "{ per_minute = 60, burst = 2 }",
    ),
    (
        "EXAMROOM_LIMITS__REPORTS_PER_USER",
        "{ per_minute = 60, burst = 2 }",
    ),
    (
        "EXAMROOM_LIMITS__RECORDING_ACCESS_PER_USER",
        "{ per_minute = 60, burst = 3 }",
    ),
    ("EXAMROOM_LIMITS__SOCKET_FRAMES", "{ per_minute = 60, burst = 5 }"),
];

async fn spawn() -> TestApp {
    let mut env = FAST_ROUTING.to_vec();
    env.extend_from_slice(LIMITS);
    TestApp::spawn(&env).await
}

/// A refusal is a 429 with `Retry-After` (whole seconds, at least one) and the `rate_limited` error code;
/// returns the wait.
async fn refused(resp: reqwest::Response) -> Duration {
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    Duration::from_secs(wait)
}

async fn metric(url: &str, class: &str) -> u64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let name = format!("examroom_rate_limited_total{{class=\"{class}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn patient_sessions_are_limited_per_subject_and_per_address() {
    let app = spawn().await;
    let (url, creds) = (app.url.clone(), credentials(&app.data));
    let token = |user: &'static str| {
        let (url, pass) = (url.clone(), password(&creds, user));
        async move { portal_id_token_for(&url, user, &pass).await }
    };
    let (first, second) = (token("patient").await, token("patient2").await);
    let open = |id_token: &str| {
        client()
            .post(format!("{url}/api/v1/patient/sessions"))
            .bearer_auth(id_token)
            .send()
    };
    // Two sessions for one patient, then a refusal for that patient only.
    assert_eq!(open(&first).await.unwrap().status(), 201);
    assert_eq!(open(&first).await.unwrap().status(), 201);
    let wait = refused(open(&first).await.unwrap()).await;
    assert_eq!(metric(&url, "patient_session_per_subject").await, 1);
    // Another patient from the same address: the address allows four attempts in all.
    assert_eq!(open(&second).await.unwrap().status(), 201);
    refused(open(&second).await.unwrap()).await;
    assert_eq!(metric(&url, "patient_session_per_address").await, 1);

    // Both recover once the bucket refills.
    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    assert_eq!(open(&first).await.unwrap().status(), 201);
}

#[tokio::test]
async fn staff_sign_ins_reports_and_recordings_are_limited_per_person() {
    let app = spawn().await;
    let (url, creds) = (app.url.clone(), credentials(&app.data));
    let nurse = password(&creds, "nurse");
    assert!(staff_sign_in(&url, "nurse", &nurse).await.1.is_redirection());
    assert!(staff_sign_in(&url, "nurse", &nurse).await.1.is_redirection());
    let (_, status) = staff_sign_in(&url, "nurse", &nurse).await;
    assert_eq!(status, 429, "the third sign-in of one person");
    // Per person, not per address: a colleague behind the same address signs in.
    let compliance = staff_cookie(&url, &app.data, "compliance").await;

    let get = |path: &str| {
        client()
            .get(format!("{url}{path}"))
            .header("cookie", &compliance)
            .send()
    };
    let report = "/api/v1/reports/exposure?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z";
    assert_eq!(get(report).await.unwrap().status(), 200);
    assert_eq!(get(report).await.unwrap().status(), 200);
    let wait = refused(get(report).await.unwrap()).await;
    let list = "/api/v1/recordings?reason=limits%20test";
    for _ in 0..3 {
        assert_eq!(get(list).await.unwrap().status(), 200);
    }
    refused(get(list).await.unwrap()).await;

    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    assert_eq!(get(report).await.unwrap().status(), 200);
    assert_eq!(get(list).await.unwrap().status(), 200);
    assert!(staff_sign_in(&url, "nurse", &nurse).await.1.is_redirection());
}

#[tokio::test]
async fn a_flooding_socket_is_warned_then_closed_and_may_reconnect() {
    let app = spawn().await;
    let url = app.url.clone();
    let token = crate::demo::patient_token(&url, &app.data, "patient").await;
    let mut ws = Ws::patient(&url, &token).await;
    // Five frames are within the budget (each gets its own answer: here an error for an unknown conversation).
    let sync = json!({"v": 1, "type": "sync", "conversation_id": "c-none", "after_seq": 0});
    for _ in 0..5 {
        ws.send(sync.clone()).await;
    }
    // The sixth is refused with a warning; the socket stays open.
    ws.send(sync.clone()).await;
    ws.wait("rate_limited", |v| v["code"] == "rate_limited").await;
    // Keeping on drains the second budget: the socket is closed as flooding.
    for _ in 0..6 {
        ws.send(sync.clone()).await;
    }
    assert_eq!(ws.close_code().await, 4029);
    // The reconnect with the same session is not refused, but its budget is the session's: at once it is still
    // spent (the flood goes on, the socket is closed again) ...
    let mut at_once = Ws::patient(&url, &token).await;
    at_once.send(sync.clone()).await;
    assert_eq!(at_once.close_code().await, 4029);
    // ... and it refills by a frame a second, not afresh.
    let mut again = Ws::patient(&url, &token).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    again.send(sync).await;
    again
        .wait("an answer", |v| {
            v["type"] == "error" && v["code"] != "rate_limited"
        })
        .await;
}
