//! Session rules at the trust boundary: a patient's session ends after a while with no socket (not while they
//! wait in a queue, and never while a socket is open), a patient holds at most a few live sessions (one more
//! revokes the oldest, audited), and `examroom sessions revoke` ends a person's sessions and, at once, sockets.

use std::time::Duration;

use serde_json::Value;

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::client;
use crate::demo::{credentials, patient_token, staff_cookie};
use crate::test_app::TestApp;

const RULES: &[(&str, &str)] = &[
    ("EXAMROOM_AUTH__PATIENT__IDLE_WITHOUT_SOCKET_SECONDS", "2"),
    ("EXAMROOM_AUTH__PATIENT__MAX_SESSIONS_PER_SUBJECT", "2"),
];

async fn spawn() -> TestApp {
    let mut env = FAST_ROUTING.to_vec();
    env.extend_from_slice(RULES);
    TestApp::spawn(&env).await
}

/// `GET /api/v1/me` with a patient session token: 200 while it lives, 401 after.
async fn me(url: &str, token: &str) -> u16 {
    client()
        .get(format!("{url}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_patient_session_without_a_socket_ends_unless_the_patient_waits() {
    let app = spawn().await;
    let url = app.url.clone();
    let idle = patient_token(&url, &app.data, "patient").await;
    let connected = patient_token(&url, &app.data, "patient2").await;
    let mut socket = Ws::patient(&url, &connected).await;

    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        me(&url, &idle).await,
        401,
        "no socket for longer than the idle rule"
    );
    assert_eq!(
        me(&url, &connected).await,
        200,
        "an open socket keeps its session alive"
    );
    socket.quiet("error", 200).await;

    // Waiting in a queue with the socket gone (a phone that locked its screen): the session stays.
    let waiting = patient_token(&url, &app.data, "patient").await;
    let mut ws = Ws::patient(&url, &waiting).await;
    ws.start("triage", "idle-1").await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(me(&url, &waiting).await, 200, "waiting in the queue");
}

#[tokio::test]
async fn one_session_too_many_revokes_the_oldest_and_is_audited() {
    let app = spawn().await;
    let url = app.url.clone();
    let oldest = patient_token(&url, &app.data, "patient").await;
    let mut oldest_socket = Ws::patient(&url, &oldest).await;
    let second = patient_token(&url, &app.data, "patient").await;
    let newest = patient_token(&url, &app.data, "patient").await;
    assert_eq!(me(&url, &oldest).await, 401);
    assert_eq!((me(&url, &second).await, me(&url, &newest).await), (200, 200));
    // Its socket is closed too.
    assert_eq!(oldest_socket.close_code().await, 4001);

    let revoked: Vec<(String, String)> = crate::chat::query_db(
        &app.data,
        "SELECT role, reason FROM audit_events WHERE action = 'auth.session_revoked'",
    )
    .await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0].0, "patient");
    assert!(revoked[0].1.contains("max_sessions_per_subject"), "{revoked:?}");
}

#[tokio::test]
async fn an_administrator_revokes_a_removed_nurse_at_once() {
    // Re-checks a minute apart: the socket can only close in time through the revocation watch.
    let mut env = FAST_ROUTING.to_vec();
    env.push(("EXAMROOM_MESSAGING__SESSION_RECHECK_SECONDS", "60"));
    let app = TestApp::spawn(&env).await;
    let url = app.url.clone();
    let cookie = staff_cookie(&url, &app.data, "nurse").await;
    let mut socket = Ws::staff(&url, &cookie).await;
    let creds: Value = credentials(&app.data);
    let sub = creds["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "nurse")
        .unwrap()["sub"]
        .as_str()
        .unwrap()
        .to_string();

    let args: Vec<String> = [
        "sessions",
        "revoke",
        "--data-dir",
        &app.data.display().to_string(),
        "--subject",
        &sub,
        "--reason",
        "left the organisation (ticket 4711)",
    ]
    .map(String::from)
    .to_vec();
    let (code, out) = tokio::task::spawn_blocking(move || {
        crate::common::examroom(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("revoked 1 session"), "{out}");
    assert_eq!(
        socket.close_code().await,
        4001,
        "the open socket ends at its next re-check"
    );
    let resp = client()
        .get(format!("{url}/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // The trail names the person (by the broker's pseudonym) and the session, with the reason.
    let events: Vec<(String, String, String)> = crate::chat::query_db(
        &app.data,
        "SELECT action, resource, reason FROM audit_events WHERE action LIKE 'auth.s%_revoked' ORDER BY seq",
    )
    .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "auth.subject_revoked");
    assert!(
        events[0].1.starts_with("subject:") && !events[0].1.contains(&sub),
        "{events:?}"
    );
    assert!(events[1].1.starts_with("session:"), "{events:?}");
    assert!(events.iter().all(|e| e.2.contains("ticket 4711")), "{events:?}");
}
