//! Chat and the waiting room over real WebSockets against `examroom dev`: routing order and skills, positions
//! and estimates, reassurance, offers that time out, wrap-up, acknowledgements, idempotent resends, replay on
//! reconnect, and precise errors for bad input.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::Broker;
use crate::demo::{patient_token, staff_cookie};

use crate::cluster_support::Socket;

/// A test client speaking the chat protocol.
pub struct Ws {
    socket: Socket,
    /// Frames received but not yet consumed by an expectation.
    pending: Vec<Value>,
}

impl Ws {
    pub async fn patient(url: &str, token: &str) -> Ws {
        let mut ws = Ws::connect(url, None).await;
        ws.send(json!({"v": 1, "type": "auth", "token": token})).await;
        ws.expect("welcome").await;
        ws
    }

    pub async fn staff(url: &str, cookie: &str) -> Ws {
        let mut ws = Ws::connect(url, Some(cookie)).await;
        ws.expect("welcome").await;
        ws
    }

    /// A staff socket to one node of several that share `origin` (the balancer's, in a deployment).
    pub async fn staff_at(url: &str, origin: &str, cookie: &str) -> Ws {
        let mut req = format!("{}/api/v1/ws", url.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        let socket = Socket::open(req).await;
        let mut ws = Ws {
            socket,
            pending: Vec::new(),
        };
        ws.expect("welcome").await;
        ws
    }

    pub async fn connect(url: &str, cookie: Option<&str>) -> Ws {
        let mut req = format!("{}/api/v1/ws", url.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        if let Some(c) = cookie {
            // A browser names the page's origin; the broker refuses a cookie socket that does not.
            req.headers_mut().insert("cookie", c.parse().unwrap());
            req.headers_mut().insert("origin", url.parse().unwrap());
        }
        let socket = Socket::open(req).await;
        Ws {
            socket,
            pending: Vec::new(),
        }
    }

    /// See [`Socket::stop_reading`].
    pub fn stop_reading(&mut self) {
        self.socket.stop_reading();
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send_text(text).await;
    }

    /// The next frame matching `pred` within five seconds; earlier non-matching frames stay pending.
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_within(what, 5, pred).await
    }

    /// [`Ws::wait`] with its own limit.
    pub async fn wait_within(&mut self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next()).await;
            match next {
                Ok(Some(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if pred(&v) {
                        return v;
                    }
                    self.pending.push(v);
                }
                Ok(Some(Message::Close(frame))) => panic!("closed while waiting for {what}: {frame:?}"),
                Ok(Some(_)) => {}
                other => panic!(
                    "no {what} within {secs} s (pending {:?}): {other:?}",
                    self.pending
                ),
            }
        }
    }

    pub async fn expect(&mut self, ty: &str) -> Value {
        let ty = ty.to_string();
        self.wait(&ty.clone(), move |v| v["type"] == ty.as_str()).await
    }

    /// No frame of this type arrives within `ms`.
    pub async fn quiet(&mut self, ty: &str, ms: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        assert!(
            !self.pending.iter().any(|v| v["type"] == ty),
            "unexpected {ty}: {:?}",
            self.pending
        );
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.socket.next()).await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(v["type"], ty, "unexpected {v}");
                self.pending.push(v);
            }
        }
    }

    /// Every frame that arrives until the socket ends (after the server died).
    pub async fn drain(&mut self) -> Vec<Value> {
        let mut frames = std::mem::take(&mut self.pending);
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), self.socket.next()).await {
            if let Message::Text(t) = m {
                frames.push(serde_json::from_str(t.as_str()).unwrap());
            }
        }
        frames
    }

    /// Puts a frame back for later `wait`s.
    pub fn keep(&mut self, frame: Value) {
        self.pending.push(frame);
    }

    /// Frames already pending plus those arriving within `ms` of each other.
    pub async fn take_ready(&mut self, ms: u64) -> Vec<Value> {
        let mut frames = std::mem::take(&mut self.pending);
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(ms), self.socket.next()).await {
            if let Message::Text(t) = m {
                frames.push(serde_json::from_str(t.as_str()).unwrap());
            }
        }
        frames
    }

    /// The close code the server ends the socket with.
    /// Like [`Ws::wait_within`], but a socket that closes (or ends) first gives `None` instead of a panic.
    pub async fn wait_or_closed(&mut self, secs: u64, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(&pred) {
            return Some(self.pending.remove(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if pred(&v) {
                        return Some(v);
                    }
                    self.pending.push(v);
                }
                Ok(Some(Message::Close(_)) | None) => return None,
                Ok(Some(_)) => {}
                Err(_) => panic!("neither an answer nor a close within {secs} s"),
            }
        }
    }

    /// The close code, or `None` when the connection ended without a readable close frame.
    pub async fn close_code_or_end(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await {
                Ok(Some(Message::Close(Some(f)))) => return Some(f.code.into()),
                Ok(Some(Message::Close(None)) | None) => return None,
                Ok(Some(_)) => continue,
                Err(_) => panic!("the socket was not closed within 10 s"),
            }
        }
    }

    pub async fn close_code(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await {
                Ok(Some(Message::Close(Some(f)))) => return f.code.into(),
                Ok(Some(_)) => continue,
                other => panic!("expected a close frame: {other:?}"),
            }
        }
    }

    pub async fn start(&mut self, queue: &str, key: &str) -> String {
        self.send(json!({"v": 1, "type": "start", "queue": queue, "idempotency_key": key}))
            .await;
        let c = self.expect("conversation").await;
        c["conversation"]["conversation_id"].as_str().unwrap().to_string()
    }

    pub async fn say(&mut self, conversation: &str, key: &str, body: &str) -> Value {
        self.send(json!({"v": 1, "type": "send", "conversation_id": conversation, "idempotency_key": key, "body": body}))
            .await;
        let key = key.to_string();
        self.wait("ack", move |v| {
            v["type"] == "ack" && v["idempotency_key"] == key.as_str()
        })
        .await
    }

    pub async fn sync(&mut self, conversation: &str, after: i64) -> Vec<Value> {
        // Live copies already received are replayed by the sync anyway.
        self.pending
            .retain(|v| !(v["type"] == "message" && v["conversation_id"] == conversation));
        self.send(json!({"v": 1, "type": "sync", "conversation_id": conversation, "after_seq": after}))
            .await;
        let mut messages = Vec::new();
        loop {
            let c = conversation.to_string();
            let v = self
                .wait("sync", move |v| {
                    (v["type"] == "message" || v["type"] == "synced") && v["conversation_id"] == c.as_str()
                })
                .await;
            if v["type"] == "synced" {
                return messages;
            }
            if v["seq"].as_i64().unwrap() > after && !messages.iter().any(|m: &Value| m["seq"] == v["seq"]) {
                messages.push(v);
            }
        }
    }

    pub async fn presence(&mut self, state: &str) -> Value {
        self.send(json!({"v": 1, "type": "presence", "state": state}))
            .await;
        self.expect("presence").await
    }

    pub async fn offer_for(&mut self, conversation: &str) -> Value {
        let c = conversation.to_string();
        self.wait("offer", move |v| {
            v["type"] == "offer" && v["conversation_id"] == c.as_str()
        })
        .await
    }
}

pub const FAST_ROUTING: &[(&str, &str)] = &[
    ("EXAMROOM_ROUTING__OFFER_TIMEOUT_SECONDS", "2"),
    ("EXAMROOM_ROUTING__WRAP_UP_SECONDS", "2"),
    ("EXAMROOM_ROUTING__MAX_CHATS_PER_NURSE", "1"),
    ("EXAMROOM_MESSAGING__SESSION_RECHECK_SECONDS", "1"),
    (
        "EXAMROOM_QUEUES",
        r#"[{ name = "triage", reassurance = [{ after_seconds = 1, text = "Thanks for waiting" }] }, { name = "spanish", skills = ["spanish"] }]"#,
    ),
];

pub fn start_dev(env: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Broker::dev(&data, env);
    (dir, data, broker)
}

pub async fn audit_denials(data: &Path) -> Vec<(String, String)> {
    query_db(
        data,
        "SELECT action, resource FROM audit_events WHERE outcome = 'denied' ORDER BY seq",
    )
    .await
}

/// Rows of `sql` from a running dev broker's database (SQLite beside it, or its PostgreSQL database).
pub async fn query_db<T>(data: &Path, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let pool = crate::storage::pool(data).await;
    let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn waiting_room_routing_and_chat_round_trip() {
    // In process (socket rules need no binary); a panic in the server fails the test when `app` drops.
    let app = crate::test_app::TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let mut other = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;

    // Nobody staffs the queue yet: positions without an estimate, and a reassurance prompt on schedule.
    let first = patient.start("triage", "visit-1").await;
    let w = patient.expect("waiting").await;
    assert_eq!(
        (w["position"].clone(), w["eta_seconds"].clone()),
        (json!(1), Value::Null)
    );
    let second = other.start("triage", "visit-2").await;
    assert_eq!(other.expect("waiting").await["position"], 2);
    let r = patient.expect("reassurance").await;
    assert_eq!(r["text"], "Thanks for waiting");
    // Starting again with the same key returns the same conversation.
    assert_eq!(patient.start("triage", "visit-1").await, first);
    // Chat while waiting is allowed by default; the acknowledgement carries the sequence number.
    let ack = patient.say(&first, "m1", "I have had a rash since Monday").await;
    assert_eq!(
        (ack["seq"].clone(), ack["duplicate"].clone()),
        (json!(1), json!(false))
    );
    let again = patient.say(&first, "m1", "I have had a rash since Monday").await;
    assert_eq!(
        (again["seq"].clone(), again["duplicate"].clone()),
        (json!(1), json!(true)),
        "idempotent resend"
    );

    // The nurse goes ready: the longest-waiting conversation is offered first; the estimate appears.
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    assert_eq!(nurse.presence("ready").await["state"], "ready");
    nurse.offer_for(&first).await;
    let w = other
        .wait("estimate", |v| {
            v["type"] == "waiting" && !v["eta_seconds"].is_null()
        })
        .await;
    assert_eq!(w["position"], 2);
    // The offer times out and comes back; declining skips this nurse for a while and offers the next one.
    let ended = nurse.expect("offer_ended").await;
    assert_eq!(
        (ended["conversation_id"].as_str(), ended["reason"].as_str()),
        (Some(first.as_str()), Some("expired"))
    );
    nurse.offer_for(&second).await;
    nurse
        .send(json!({"v": 1, "type": "decline", "conversation_id": second}))
        .await;
    nurse.offer_for(&first).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": first}))
        .await;
    nurse.wait("assigned", |v| v["type"] == "assigned").await;
    patient.expect("assigned").await;
    nurse
        .wait("busy", |v| v["type"] == "presence" && v["state"] == "busy")
        .await;

    // The transcript so far, then messages both ways.
    let history = nurse.sync(&first, 0).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["body"], "I have had a rash since Monday");
    nurse
        .say(&first, "n1", "Hello, I'm Nora. Can you describe it?")
        .await;
    let m = patient
        .wait("nurse message", |v| {
            v["type"] == "message" && v["sender_role"] == "nurse"
        })
        .await;
    assert_eq!(m["seq"], 2);
    patient.say(&first, "m2", "Red and itchy").await;
    nurse
        .wait("patient message", |v| v["type"] == "message" && v["seq"] == 3)
        .await;

    // Reconnect: the patient missed two messages and replays them from the last seq it saw.
    drop(patient);
    nurse.say(&first, "n2", "Any fever?").await;
    nurse.say(&first, "n3", "Any new medication?").await;
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let missed = patient.sync(&first, 3).await;
    let bodies: Vec<&str> = missed.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Any fever?", "Any new medication?"]);

    // The nurse ends the chat: the patient is told; she is in wrap-up, then ready again and gets the next.
    nurse
        .send(json!({"v": 1, "type": "end", "conversation_id": first}))
        .await;
    patient.expect("ended").await;
    nurse
        .wait("wrap-up", |v| v["type"] == "presence" && v["state"] == "wrap_up")
        .await;
    nurse.quiet("offer", 1200).await;
    nurse
        .wait("ready", |v| v["type"] == "presence" && v["state"] == "ready")
        .await;
    nurse.offer_for(&second).await;
}

#[tokio::test]
async fn skills_decide_who_is_offered() {
    // In process (socket rules need no binary); a panic in the server fails the test when `app` drops.
    let app = crate::test_app::TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nurse.presence("ready").await;
    let spanish = patient.start("spanish", "es-1").await;
    nurse.quiet("offer", 800).await;
    let mut nurse2 = Ws::staff(&url, &staff_cookie(&url, &data, "nurse2").await).await;
    nurse2.presence("ready").await;
    nurse2.offer_for(&spanish).await;
    let triage = patient.start("triage", "tr-1").await;
    nurse.offer_for(&triage).await;
}

#[tokio::test]
async fn bad_input_gets_precise_errors_and_access_attempts_are_audited() {
    // In process (socket rules need no binary); a panic in the server fails the test when `app` drops.
    let app = crate::test_app::TestApp::spawn(FAST_ROUTING).await;
    let (url, data) = (app.url.clone(), app.data.clone());
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let mut other = Ws::patient(&url, &patient_token(&url, &data, "patient2").await).await;
    let mine = patient.start("triage", "k1").await;
    let theirs = other.start("triage", "k2").await;

    let error_code = |v: &Value| v["code"].as_str().unwrap().to_string();
    for (text, code) in [
        ("{not json", "malformed_json"),
        (r#"{"v":1,"type":"teleport"}"#, "unknown_type"),
        (r#"{"v":1,"type":"ping","surprise":true}"#, "unknown_field"),
        (
            r#"{"v":1,"type":"sync","conversation_id":"a","conversation_id":"b","after_seq":0}"#,
            "duplicate_key",
        ),
        (r#"{"v":9,"type":"ping"}"#, "unsupported_version"),
    ] {
        patient.send_text(text).await;
        assert_eq!(error_code(&patient.expect("error").await), code, "{text}");
    }
    // The socket stays usable after each refusal.
    patient.send(json!({"v": 1, "type": "ping"})).await;
    patient.expect("pong").await;

    let long = "x".repeat(4001);
    patient
        .send(
            json!({"v": 1, "type": "send", "conversation_id": mine, "idempotency_key": "big", "body": long}),
        )
        .await;
    assert_eq!(error_code(&patient.expect("error").await), "message_too_long");

    // Another patient's conversation: neither readable nor writable.
    patient
        .send(json!({"v": 1, "type": "sync", "conversation_id": theirs, "after_seq": 0}))
        .await;
    assert_eq!(error_code(&patient.expect("error").await), "forbidden");
    patient
        .send(
            json!({"v": 1, "type": "send", "conversation_id": theirs, "idempotency_key": "x", "body": "hi"}),
        )
        .await;
    assert_eq!(error_code(&patient.expect("error").await), "forbidden");
    // A nurse acting on a conversation that is not assigned to her (still in the waiting room).
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nurse
        .send(json!({"v": 1, "type": "sync", "conversation_id": mine, "after_seq": 0}))
        .await;
    assert_eq!(error_code(&nurse.expect("error").await), "forbidden");
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": theirs}))
        .await;
    assert_eq!(error_code(&nurse.expect("error").await), "no_such_offer");
    // Patients cannot act as nurses.
    patient
        .send(json!({"v": 1, "type": "presence", "state": "ready"}))
        .await;
    assert_eq!(error_code(&patient.expect("error").await), "forbidden");

    let denials = audit_denials(&data).await;
    for (action, resource) in [
        ("conversation.read", format!("conversation:{theirs}")),
        ("conversation.write", format!("conversation:{theirs}")),
        ("conversation.read", format!("conversation:{mine}")),
        ("queue.work", "queue:*".to_string()),
    ] {
        assert!(
            denials.contains(&(action.to_string(), resource.clone())),
            "{action} {resource} audited: {denials:?}"
        );
    }

    // An oversized frame closes the socket with 1009.
    let mut big = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    big.send_text(&format!(
        r#"{{"v":1,"type":"ping","pad":"{}"}}"#,
        "y".repeat(100_000)
    ))
    .await;
    // The broker may reset the connection before the client reads its close frame (100 kB it never read).
    if let Some(code) = big.close_code_or_end().await {
        assert_eq!(code, 1009);
    }

    // A refused token closes with 4003; a revoked session closes an open socket with 4001.
    let mut stranger = Ws::connect(&url, None).await;
    stranger
        .send(json!({"v": 1, "type": "auth", "token": "not-a-session"}))
        .await;
    assert_eq!(stranger.close_code().await, 4003);
    let token = patient_token(&url, &data, "patient2").await;
    let mut leaving = Ws::patient(&url, &token).await;
    let resp = crate::common::client()
        .delete(format!("{url}/api/v1/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(leaving.close_code().await, 4001);
}

#[tokio::test]
async fn past_the_maximum_wait_the_patient_can_ask_for_a_call_back() {
    let mut env: Vec<(&str, &str)> = FAST_ROUTING
        .iter()
        .copied()
        .filter(|(k, _)| *k != "EXAMROOM_QUEUES")
        .collect();
    env.push((
        "EXAMROOM_QUEUES",
        r#"[{ name = "triage", max_wait_seconds = 1 }]"#,
    ));
    let (_dir, data, broker) = start_dev(&env);
    let url = broker.url.clone();
    let mut patient = Ws::patient(&url, &patient_token(&url, &data, "patient").await).await;
    let c = patient.start("triage", "long-wait").await;
    patient
        .say(&c, "m1", "Please call me about my prescription")
        .await;
    assert!(
        patient.expect("max_wait").await["text"]
            .as_str()
            .unwrap()
            .contains("call you back")
    );
    patient
        .send(json!({"v": 1, "type": "callback", "conversation_id": c}))
        .await;
    assert_eq!(patient.expect("ended").await["reason"], "callback_requested");
    // The request leaves the waiting room: a nurse going ready is offered nothing.
    let mut nurse = Ws::staff(&url, &staff_cookie(&url, &data, "nurse").await).await;
    nurse.presence("ready").await;
    nurse.quiet("offer", 1200).await;
}
