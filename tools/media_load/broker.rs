//! Visits through examroom's real signaling: `examroom dev` started in a scratch directory, patients signed in
//! with ID tokens minted by the dev provider's key, one nurse socket that accepts every offer, and per visit
//! the chat → `video_request` → `video_answer` → `video_offer`/`video_sdp`/`video_candidate` sequence of
//! docs/protocol.md. Never measures anything itself.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{client, staff_cookie};

use crate::peer::Peer;
use crate::stats::{Path, Streams};

const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker process and what is needed to sign people in to it.
pub struct Broker {
    pub child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Broker {
    /// `examroom dev` on a free loopback port with routing that lets one nurse hold every visit; with `cpus`,
    /// pinned to those CPUs (taskset) so the load generator does not share its cores.
    pub fn start(bin: &str, cpus: Option<&str>) -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let mut cmd = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.args(["-c", list, bin]);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            // Errors only: the media engine warns about every connection it sets up.
            .env("EXAMROOM_LOGGING__LEVEL", "error")
            .env("EXAMROOM_ROUTING__MAX_CHATS_PER_NURSE", "1000000")
            .env("EXAMROOM_ROUTING__OFFER_TIMEOUT_SECONDS", "120")
            .env("EXAMROOM_ROUTING__WRAP_UP_SECONDS", "0")
            .envs(crate::common::NO_LIMITS.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {bin}"))?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let url = loop {
            let line = lines
                .next()
                .context("the broker exited before it was running")??;
            if let Some(rest) = line.split("running at ").nth(1) {
                break rest.trim().trim_end_matches('/').to_string();
            }
        };
        // Keep reading so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Broker {
            child,
            url,
            _dir: dir,
            data,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chat socket as two channels: frames to send, frames received.
pub struct Chan {
    out: mpsc::UnboundedSender<Value>,
    inbox: mpsc::UnboundedReceiver<Value>,
}

impl Chan {
    fn send(&self, frame: Value) -> anyhow::Result<()> {
        self.out.send(frame).map_err(|_| anyhow!("socket closed"))
    }

    async fn recv(&mut self) -> anyhow::Result<Value> {
        tokio::time::timeout(FRAME_TIMEOUT, self.inbox.recv())
            .await
            .context("no frame within the timeout")?
            .context("socket closed")
    }

    /// The next frame of `kind`, skipping others; an `error` frame fails.
    async fn expect(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let f = self.recv().await?;
            if f["type"] == kind {
                return Ok(f);
            }
            if f["type"] == "error" {
                bail!("waiting for {kind}: {f}");
            }
        }
    }

    /// Reads and drops everything from now on (the socket's reader must never stall).
    fn drain(mut self) {
        tokio::spawn(async move { while self.inbox.recv().await.is_some() {} });
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, cookie: Option<&str>) -> anyhow::Result<Ws> {
    let mut req = format!("{}/api/v1/ws", url.replace("http://", "ws://")).into_client_request()?;
    if let Some(c) = cookie {
        // As a browser would: the broker refuses a cookie socket that names no origin.
        req.headers_mut().insert("cookie", c.parse()?);
        req.headers_mut().insert("origin", url.parse()?);
    }
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

/// Splits a socket into a writer task and a reader that hands JSON frames to `deliver`.
fn split(ws: Ws, mut deliver: impl FnMut(Value) + Send + 'static) -> mpsc::UnboundedSender<Value> {
    let (mut sink, mut stream) = ws.split();
    let (out, mut rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(t) = msg
                && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
            {
                deliver(v);
            }
        }
    });
    out
}

fn chan(ws: Ws) -> Chan {
    let (tx, inbox) = mpsc::unbounded_channel();
    let out = split(ws, move |v| {
        let _ = tx.send(v);
    });
    Chan { out, inbox }
}

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>>;

/// The one nurse socket every visit shares: accepts each offer at once and routes frames to the visit they
/// belong to, by conversation id and then (once `video_started` names it) by visit id.
pub struct NurseHub {
    out: mpsc::UnboundedSender<Value>,
    routes: Routes,
}

impl NurseHub {
    fn route(&self, conversation: &str) -> Chan {
        let (tx, inbox) = mpsc::unbounded_channel();
        self.routes.lock().unwrap().insert(conversation.to_string(), tx);
        Chan {
            out: self.out.clone(),
            inbox,
        }
    }
}

/// Everything a visit needs from the broker: its URL, the dev provider's signing key, the nurse socket.
pub struct Clinic {
    url: String,
    http: reqwest::Client,
    key: jsonwebtoken::EncodingKey,
    kid: String,
    hub: NurseHub,
    record: bool,
}

impl Clinic {
    /// Signs the demo nurse in, sets her ready, and starts accepting offers.
    pub async fn open(broker: &Broker, record: bool) -> anyhow::Result<Clinic> {
        let url = broker.url.clone();
        let http = client();
        let pem = std::fs::read_to_string(broker.data.join("dev-idp/signing-key.pem"))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let jwks: Value = http
            .get(format!("{url}/dev-idp/jwks"))
            .send()
            .await?
            .json()
            .await?;
        let kid = jwks["keys"][0]["kid"].as_str().context("kid")?.to_string();
        let creds: Value =
            serde_json::from_slice(&std::fs::read(broker.data.join("dev-idp/credentials.json"))?)?;
        let nurse = creds["users"]
            .as_array()
            .and_then(|users| users.iter().find(|u| u["role"] == "nurse"))
            .context("a demo nurse")?;
        let cookie = staff_cookie(
            &url,
            nurse["username"].as_str().unwrap_or_default(),
            nurse["password"].as_str().unwrap_or_default(),
        )
        .await?;
        let ws = connect(&url, Some(&cookie)).await?;
        let routes: Routes = Arc::default();
        // The reader answers offers, but the socket's writer exists only once `split` returns: accepts go
        // through this channel to it.
        let (accept_tx, mut accept_rx) = mpsc::unbounded_channel::<Value>();
        let reader_routes = routes.clone();
        let out = split(ws, move |f| {
            if f["type"] == "offer" {
                let _ = accept_tx
                    .send(json!({"v": 1, "type": "accept", "conversation_id": f["conversation_id"]}));
                return;
            }
            let mut routes = reader_routes.lock().unwrap();
            let by_visit = f["visit_id"].as_str().and_then(|v| routes.get(v).cloned());
            let by_conversation = f["conversation_id"].as_str().and_then(|c| routes.get(c).cloned());
            if by_visit.is_none()
                && let (Some(visit), Some(tx)) = (f["visit_id"].as_str(), by_conversation.clone())
            {
                routes.insert(visit.to_string(), tx);
            }
            match by_visit.or(by_conversation) {
                Some(tx) => {
                    let _ = tx.send(f);
                }
                None if f["type"] == "error" => eprintln!("nurse socket: {f}"),
                None => {}
            }
        });
        out.send(json!({"v": 1, "type": "presence", "state": "ready"}))?;
        let accept_out = out.clone();
        tokio::spawn(async move {
            while let Some(f) = accept_rx.recv().await {
                let _ = accept_out.send(f);
            }
        });
        Ok(Clinic {
            url,
            http,
            key,
            kid,
            hub: NurseHub { out, routes },
            record,
        })
    }

    /// A distinct patient's session token (an ID token from the portal's provider, exchanged).
    async fn patient_token(&self, i: usize) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let claims = json!({"iss": format!("{}/dev-idp", self.url), "sub": format!("media-load-patient-{i}"),
                            "aud": "clinic-portal", "iat": now, "exp": now + 3600});
        let id_token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        let resp: Value = self
            .http
            .post(format!("{}/api/v1/patient/sessions", self.url))
            .bearer_auth(id_token)
            .send()
            .await?
            .json()
            .await?;
        Ok(resp["session_token"]
            .as_str()
            .context("session_token")?
            .to_string())
    }

    /// Visit `i` from the patient's first chat frame to both peers connected: (patient peer, nurse peer).
    pub async fn open_visit(&self, i: usize, streams: &Arc<Streams>) -> anyhow::Result<(Peer, Peer)> {
        let token = self.patient_token(i).await?;
        let mut patient = chan(connect(&self.url, None).await?);
        patient.send(json!({"v": 1, "type": "auth", "token": token}))?;
        patient.expect("welcome").await.context("welcome")?;
        patient.send(
            json!({"v": 1, "type": "start", "queue": "triage", "idempotency_key": format!("media-{i}")}),
        )?;
        // The nurse accepts at once, so `assigned` (or a `conversation` frame in that state) may even come
        // before the reply to `start`.
        let (mut conversation, mut assigned) = (None::<String>, false);
        let mut nurse = None;
        while conversation.is_none() || !assigned {
            let f = patient.recv().await.context("conversation assigned")?;
            match f["type"].as_str() {
                Some("assigned") => assigned = true,
                Some("conversation") => {
                    assigned |= f["conversation"]["state"] == "assigned";
                    if conversation.is_none() {
                        let id = f["conversation"]["conversation_id"]
                            .as_str()
                            .context("conversation id")?;
                        nurse = Some(self.hub.route(id));
                        conversation = Some(id.to_string());
                    }
                }
                Some("error") => bail!("start: {f}"),
                _ => {}
            }
        }
        let (conversation, mut nurse) = (conversation.unwrap_or_default(), nurse.context("nurse route")?);
        nurse.send(json!({"v": 1, "type": "video_request", "device_check": {"camera": true, "microphone": true}, "conversation_id": conversation}))?;
        let proposed = patient.expect("video_proposed").await.context("video_proposed")?;
        let visit = proposed["visit_id"].as_str().context("visit id")?.to_string();
        patient.send(
            json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true,
                            "recording_consent": self.record}),
        )?;
        patient
            .expect("video_started")
            .await
            .context("patient video_started")?;
        nurse
            .expect("video_started")
            .await
            .context("nurse video_started")?;

        let mut nurse_peer = Peer::new(streams.clone(), Some(Path::ToPatient)).await?;
        let mut patient_peer = Peer::new(streams.clone(), Some(Path::ToNurse)).await?;
        join(&mut nurse, &mut nurse_peer, &visit)
            .await
            .context("nurse joins")?;
        join(&mut patient, &mut patient_peer, &visit)
            .await
            .context("patient joins")?;
        patient.drain();
        nurse.drain();
        Ok((patient_peer, nurse_peer))
    }
}

fn candidate_init(c: &Value) -> Option<webrtc::peer_connection::RTCIceCandidateInit> {
    serde_json::from_value(c.clone()).ok()
}

/// Offer, answer, and trickle ICE both ways until the peer connection is up.
async fn join(ws: &mut Chan, peer: &mut Peer, visit: &str) -> anyhow::Result<()> {
    let mut local = peer.take_candidates();
    let sdp = peer.offer().await?;
    ws.send(json!({"v": 1, "type": "video_offer", "visit_id": visit, "sdp": sdp}))?;
    // The SFU's candidates may overtake its answer; keep them until the answer is applied.
    let mut early = Vec::new();
    let answer = loop {
        let f = ws.recv().await?;
        match f["type"].as_str() {
            Some("video_sdp") => break f["sdp"].as_str().context("answer sdp")?.to_string(),
            Some("video_candidate") => early.extend(candidate_init(&f["candidate"])),
            Some("error") => bail!("video_offer: {f}"),
            _ => {}
        }
    };
    peer.answered(&answer).await?;
    for c in early {
        peer.add_candidate(c).await;
    }
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    while !peer.connected() {
        if tokio::time::Instant::now() > deadline {
            bail!("peer connection not connected");
        }
        tokio::select! {
            Some(c) = local.recv() => {
                let candidate = json!({"candidate": c.candidate, "sdpMid": c.sdp_mid,
                                       "sdpMLineIndex": c.sdp_mline_index});
                ws.send(json!({"v": 1, "type": "video_candidate", "visit_id": visit, "candidate": candidate}))?;
            }
            Some(f) = ws.inbox.recv() => {
                if f["type"] == "video_candidate" && let Some(c) = candidate_init(&f["candidate"]) {
                    peer.add_candidate(c).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    Ok(())
}
