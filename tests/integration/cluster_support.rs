//! What the cluster tests share: HAProxy in front of the nodes, raw sockets that read frames concurrently (a nurse
//! accepting offers while patients chat), patient sessions for new portal subjects, the lease table, and a
//! moved visit's recording as a compliance officer reviews it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Raw = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A chat socket read all the time by a task of its own, as a browser's is: the broker's pings are answered
/// even while a test looks elsewhere (the broker closes a socket it has not heard from for 12 s).
pub struct Socket {
    sink: futures_util::stream::SplitSink<Raw, Message>,
    frames: tokio::sync::mpsc::UnboundedReceiver<Message>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Socket {
    /// Dropping the socket closes it at once (a test's patient leaving), not at the next frame.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Socket {
    pub async fn open(req: tokio_tungstenite::tungstenite::handshake::client::Request) -> Socket {
        let (raw, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let (sink, mut stream) = raw.split();
        let (tx, frames) = tokio::sync::mpsc::unbounded_channel();
        // Reading is what answers a ping (tungstenite sends the pong on the next read).
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        Socket { sink, frames, reader }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.try_send_text(text).await.unwrap();
    }

    /// Sends, or says why not (the socket's node died).
    pub async fn try_send_text(&mut self, text: &str) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.sink.send(Message::Text(text.into())).await
    }

    /// Stops reading, the socket left open: what a cut network looks like to the broker (no pong comes back).
    pub fn stop_reading(&mut self) {
        self.reader.abort();
    }

    /// The next message, or `None` once the socket has closed.
    pub async fn next(&mut self) -> Option<Message> {
        self.frames.recv().await
    }
}

#[path = "../../tools/haproxy.rs"]
mod balancer;

pub use balancer::Haproxy;

/// HAProxy on 127.0.0.1:`port` in front of `nodes`, configured as the benchmark's (`tools/haproxy.rs`).
pub fn haproxy(dir: &Path, port: u16, nodes: &[String]) -> Haproxy {
    balancer::start(dir, port, nodes, 4000).unwrap()
}

pub async fn socket(url: &str, origin: &str, cookie: Option<&str>) -> Socket {
    let mut req = format!("{}/api/v1/ws", url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    Socket::open(req).await
}

pub async fn send(ws: &mut Socket, v: Value) {
    ws.send_text(&v.to_string()).await;
}

/// The next frame satisfying `pred` (others are dropped), or `None` after `secs` or when the socket closes.
pub async fn next_where(ws: &mut Socket, secs: u64, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if pred(&v) {
                    return Some(v);
                }
            }
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// What a nurse's socket saw.
#[derive(Default)]
pub struct NurseLog {
    /// Offers in the order they came.
    pub offers: Vec<String>,
    /// Offers withdrawn (the patient's connection dropped, the offer expired…), by conversation.
    pub offers_ended: HashMap<String, usize>,
    pub assigned: Vec<String>,
    /// Patient messages by (conversation, seq): how often each arrived.
    pub messages: HashMap<(String, i64), u32>,
}

/// A nurse on `url` (a node, directly): ready when `ready`, accepts every offer, answers each patient message.
pub fn nurse(
    url: String,
    origin: String,
    cookie: String,
    log: Arc<Mutex<NurseLog>>,
) -> tokio::sync::mpsc::Sender<&'static str> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(4);
    tokio::spawn(async move {
        let mut ws = socket(&url, &origin, Some(&cookie)).await;
        next_where(&mut ws, 10, |v| v["type"] == "welcome")
            .await
            .expect("nurse welcome");
        loop {
            tokio::select! {
                state = rx.recv() => match state {
                    Some(state) => send(&mut ws, json!({"v": 1, "type": "presence", "state": state})).await,
                    None => return,
                },
                frame = ws.next() => {
                    let Some(Message::Text(t)) = frame else {
                        if frame.is_none() { return; }
                        continue;
                    };
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    let conversation = v["conversation_id"].as_str().unwrap_or_default().to_string();
                    match v["type"].as_str().unwrap_or_default() {
                        "offer_ended" => *log.lock().unwrap().offers_ended.entry(conversation).or_default() += 1,
                        "offer" => {
                            log.lock().unwrap().offers.push(conversation.clone());
                            send(&mut ws, json!({"v": 1, "type": "accept", "conversation_id": conversation})).await;
                        }
                        "assigned" => log.lock().unwrap().assigned.push(conversation),
                        "message" if v["sender_role"] == "patient" => {
                            let seq = v["seq"].as_i64().unwrap();
                            let first = {
                                let mut log = log.lock().unwrap();
                                let n = log.messages.entry((conversation.clone(), seq)).or_default();
                                *n += 1;
                                *n == 1
                            };
                            if first {
                                send(&mut ws, json!({"v": 1, "type": "send", "conversation_id": conversation,
                                    "idempotency_key": format!("reply-{conversation}-{seq}"), "body": "Hello, how can I help?"})).await;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    });
    tx
}

/// A patient session for a new portal subject (an ID token signed with the development provider's key).
pub async fn patient_session(lb: &str, data: &Path, kid: &str, subject: &str) -> String {
    let pem = std::fs::read_to_string(data.join("dev-idp/signing-key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    let claims = json!({"iss": format!("{lb}/dev-idp"), "sub": subject, "aud": "clinic-portal", "iat": now, "exp": now + 3600});
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    crate::demo::session_for_id_token(lb, &token).await
}

pub async fn patient_socket(lb: &str, token: &str) -> Socket {
    patient_welcome(lb, token).await.0
}

pub async fn patient_welcome(lb: &str, token: &str) -> (Socket, Value) {
    let mut ws = socket(lb, lb, None).await;
    send(&mut ws, json!({"v": 1, "type": "auth", "token": token})).await;
    let welcome = next_where(&mut ws, 10, |v| v["type"] == "welcome")
        .await
        .expect("patient welcome");
    (ws, welcome)
}

pub async fn start(ws: &mut Socket, key: &str) -> String {
    send(
        ws,
        json!({"v": 1, "type": "start", "queue": "triage", "idempotency_key": key}),
    )
    .await;
    let c = next_where(ws, 10, |v| v["type"] == "conversation")
        .await
        .expect("conversation");
    c["conversation"]["conversation_id"].as_str().unwrap().to_string()
}

/// One patient's visit: start, wait for a nurse, say hello, get the answer. Returns the conversation and the
/// sequence numbers of every message frame seen (each must appear once).
pub async fn visit(lb: String, token: String, i: usize) -> Result<(String, Vec<i64>), String> {
    let mut ws = patient_socket(&lb, &token).await;
    let conversation = start(&mut ws, &format!("start-{i}")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let c = conversation.clone();
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs();
        if next_where(&mut ws, left, |v| {
            v["type"] == "assigned" && v["conversation_id"] == c.as_str()
        })
        .await
        .is_some()
        {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(conversation);
        }
        // Closed before the deadline (a socket that falls behind under the burst of position updates is told
        // to reconnect): a fresh socket's welcome says where the chat stands.
        let (fresh, welcome) = patient_welcome(&lb, &token).await;
        ws = fresh;
        let assigned = welcome["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["conversation_id"] == conversation.as_str() && c["state"] == "assigned");
        if assigned {
            break;
        }
    }
    send(
        &mut ws,
        json!({"v": 1, "type": "send", "conversation_id": conversation, "idempotency_key": "hello",
        "body": format!("hello from patient {i}")}),
    )
    .await;
    let mut seqs = Vec::new();
    let mut acked = false;
    while !(acked && seqs.len() >= 2) {
        let Some(v) = next_where(&mut ws, 30, |v| v["type"] == "ack" || v["type"] == "message").await else {
            panic!("patient {i}: no answer (acked {acked}, messages {seqs:?})");
        };
        if v["type"] == "ack" {
            acked = true;
        } else {
            seqs.push(v["seq"].as_i64().unwrap());
        }
    }
    // Anything more (a duplicate) would arrive promptly.
    while let Some(v) = next_where(&mut ws, 1, |v| v["type"] == "message").await {
        seqs.push(v["seq"].as_i64().unwrap());
    }
    Ok((conversation, seqs))
}

pub async fn lease_holder(pool: &sqlx::PgPool, name: &str) -> Option<String> {
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query_scalar("SELECT holder FROM cluster_leases WHERE name = $1 AND expires_at >= $2")
        .bind(name)
        .bind(now)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// The visit's recording as a compliance officer finds it at `url`: exactly one entry, stored, moved for the
/// `moves` reasons in turn; and the blocks of its one downloaded WebM file.
pub async fn reviewed(
    url: &str,
    compliance: &str,
    visit: &str,
    moves: &[&str],
) -> (serde_json::Value, Vec<(u64, i64, bool, usize)>) {
    use crate::common::SendJson;
    let http = crate::common::client();
    // A compliance officer's read, with the reason every access needs.
    let read = |path: String| {
        http.get(format!("{url}/api/v1/recordings{path}?reason=failover%20review"))
            .header("cookie", compliance)
            .json_body()
    };
    let list = read(String::new()).await;
    let entries: Vec<&serde_json::Value> = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["visit_id"] == visit)
        .collect();
    assert_eq!(entries.len(), 1, "one entry per visit: {list}");
    let id = entries[0]["id"].as_str().unwrap().to_string();
    let rec = read(format!("/{id}")).await;
    assert_eq!(rec["state"], "stored", "{rec}");
    // A later part's id opens the same recording, under the first part's name (and audit resource).
    let later = rec["parts"][1]["id"]
        .as_str()
        .expect("a moved visit has several parts");
    let same = read(format!("/{later}")).await;
    assert_eq!(same["id"], id.as_str(), "{same}");
    let reasons: Vec<&str> = rec["manifest"]["handovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, moves, "{rec}");
    let webm = http
        .get(format!(
            "{url}/api/v1/recordings/{}/download?reason=failover%20review",
            rec["id"].as_str().unwrap()
        ))
        .header("cookie", compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(webm.status(), 200);
    let webm = webm.bytes().await.unwrap();
    // The stream serves any range of that one file, across the segments' and parts' seams, and refuses one
    // past its end.
    let stream = |range: String| {
        http.get(format!(
            "{url}/api/v1/recordings/{}/stream?reason=failover%20review",
            rec["id"].as_str().unwrap()
        ))
        .header("cookie", compliance)
        .header("range", range)
        .send()
    };
    let total = webm.len();
    for (a, b) in [(0, 99), (total / 3, total / 3 + 150_000), (total - 10, total - 1)] {
        let b = b.min(total - 1);
        let part = stream(format!("bytes={a}-{b}")).await.unwrap();
        assert_eq!(part.status(), 206);
        assert_eq!(
            part.headers()["content-range"].to_str().unwrap(),
            format!("bytes {a}-{b}/{total}")
        );
        assert!(
            part.bytes().await.unwrap() == webm[a..=b],
            "bytes {a}-{b} as in the download"
        );
    }
    let past = stream(format!("bytes={total}-")).await.unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{total}")
    );
    let blocks = examroom::recording::webm::scan(&webm).expect("one WebM file");
    assert!(!blocks.is_empty(), "media in the file");
    (rec, blocks)
}

/// Two `examroom dev` nodes on `database` sharing `data` (fast heartbeats, 60 s offers), with `extra` settings.
pub fn two_nodes(database: &str, data: &Path, extra: &[(&str, &str)]) -> Vec<crate::common::Broker> {
    (1..=2)
        .map(|i| {
            let id = format!("node-{i}");
            let mut env = vec![
                ("EXAMROOM_DATABASE__URL", database),
                ("EXAMROOM_CLUSTER__NODE_ID", id.as_str()),
                ("EXAMROOM_CLUSTER__HEARTBEAT_SECONDS", "1"),
                ("EXAMROOM_CLUSTER__DEAD_AFTER_SECONDS", "3"),
                ("EXAMROOM_ROUTING__OFFER_TIMEOUT_SECONDS", "60"),
            ];
            env.extend_from_slice(extra);
            crate::common::Broker::dev(data, &env)
        })
        .collect()
}
