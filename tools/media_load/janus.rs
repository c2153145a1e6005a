//! The same visit against the Janus VideoRoom plugin, over Janus's plain HTTP API: a Janus session per visit
//! (a long-poll GET for its asynchronous events, keepalives), a room per visit, each side a publisher (`join`,
//! then `configure` with our offer) and a subscriber to the other's feed (Janus offers, we answer with
//! `start`). Janus is not told to trickle: our SDPs carry every candidate. Never measures anything itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::peer::Peer;
use crate::stats::{Path, Streams};

const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

fn transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One Janus session: its URL and the events of each of its handles.
pub struct Session {
    http: reqwest::Client,
    url: String,
    handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// A plugin handle and its asynchronous events.
struct Handle {
    url: String,
    events: mpsc::UnboundedReceiver<Value>,
}

impl Session {
    pub async fn create(http: &reqwest::Client, base: &str) -> anyhow::Result<Session> {
        let base = base.trim_end_matches('/');
        let r = post(http, base, json!({"janus": "create"})).await?;
        let id = r["data"]["id"].as_u64().context("session id")?;
        let url = format!("{base}/{id}");
        let handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>> = Arc::default();
        let poll = {
            let (http, url, handles) = (http.clone(), url.clone(), handles.clone());
            tokio::spawn(async move {
                // The long poll: Janus answers with up to `maxev` events, or a keepalive after ~30 s.
                loop {
                    let got = match http.get(format!("{url}?maxev=10")).send().await {
                        Ok(resp) => resp.json::<Value>().await,
                        Err(_) => break,
                    };
                    let Ok(got) = got else { break };
                    let events = match got {
                        Value::Array(events) => events,
                        one => vec![one],
                    };
                    for e in events {
                        if let Some(tx) = e["sender"]
                            .as_u64()
                            .and_then(|s| handles.lock().unwrap().get(&s).cloned())
                        {
                            let _ = tx.send(e);
                        }
                    }
                }
            })
        };
        let keepalive = {
            let (http, url) = (http.clone(), url.clone());
            // Janus drops a session silent for `session_timeout` (60 s by default).
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    let _ = post(&http, &url, json!({"janus": "keepalive"})).await;
                }
            })
        };
        Ok(Session {
            http: http.clone(),
            url,
            handles,
            tasks: vec![poll, keepalive],
        })
    }

    async fn attach(&self) -> anyhow::Result<Handle> {
        let r = post(
            &self.http,
            &self.url,
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )
        .await?;
        let id = r["data"]["id"].as_u64().context("handle id")?;
        let (tx, events) = mpsc::unbounded_channel();
        self.handles.lock().unwrap().insert(id, tx);
        Ok(Handle {
            url: format!("{}/{id}", self.url),
            events,
        })
    }

    pub async fn destroy(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let _ = post(&self.http, &self.url, json!({"janus": "destroy"})).await;
    }
}

/// A Janus API request; fails on a Janus `error`.
async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> anyhow::Result<Value> {
    body["transaction"] = json!(transaction());
    let r: Value = http.post(url).json(&body).send().await?.json().await?;
    if r["janus"] == "error" {
        bail!("Janus: {}", r["error"]);
    }
    Ok(r)
}

impl Handle {
    /// A plugin message; `success` answers synchronously, `ack` means the answer comes as an event.
    async fn message(
        &self,
        http: &reqwest::Client,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let r = post(http, &self.url, request).await?;
        if let Some(err) = r["plugindata"]["data"]["error"].as_str() {
            bail!("VideoRoom: {err}");
        }
        Ok(r)
    }

    /// The next core event of this kind (e.g. `webrtcup`), skipping others.
    async fn janus_event(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let e = tokio::time::timeout(EVENT_TIMEOUT, self.events.recv())
                .await
                .with_context(|| format!("no {kind} event"))?
                .context("session closed")?;
            if e["janus"] == kind {
                return Ok(e);
            }
        }
    }

    /// The next VideoRoom event whose data says `key` = `value` (others, e.g. `webrtcup` and `media`,
    /// skipped).
    async fn event(&mut self, key: &str, value: &str) -> anyhow::Result<Value> {
        loop {
            let e = tokio::time::timeout(EVENT_TIMEOUT, self.events.recv())
                .await
                .with_context(|| format!("no VideoRoom event with {key} {value}"))?
                .context("session closed")?;
            let data = &e["plugindata"]["data"];
            if let Some(err) = data["error"].as_str() {
                bail!("VideoRoom: {err}");
            }
            if data[key] == value {
                return Ok(e);
            }
        }
    }
}

/// One visit's room with two publishers and two subscribers, and our four peer connections.
pub struct Visit {
    pub session: Session,
    pub peers: Vec<Peer>,
}

/// Room `i` with both sides publishing and each subscribed to the other; returns once all four connections
/// are up.
pub async fn open_visit(http: &reqwest::Client, base: &str, streams: &Arc<Streams>) -> anyhow::Result<Visit> {
    let session = Session::create(http, base).await?;
    let mut publishers = Vec::new();
    let mut peers = Vec::new();
    let mut feeds = Vec::new();
    for path in [Path::ToNurse, Path::ToPatient] {
        publishers.push(session.attach().await?);
        let handle = publishers.last_mut().unwrap();
        if feeds.is_empty() {
            let created = handle
                .message(
                    http,
                    json!({"request": "create", "publishers": 2, "audiocodec": "opus", "videocodec": "vp8",
                           "bitrate": 0, "record": false, "is_private": true}),
                    None,
                )
                .await?;
            feeds.push(
                created["plugindata"]["data"]["room"]
                    .as_u64()
                    .context("room id")?,
            );
        }
        let room = feeds[0];
        handle
            .message(
                http,
                json!({"request": "join", "ptype": "publisher", "room": room}),
                None,
            )
            .await?;
        let joined = handle.event("videoroom", "joined").await?;
        feeds.push(joined["plugindata"]["data"]["id"].as_u64().context("feed id")?);
        let mut peer = Peer::new(streams.clone(), Some(path)).await?;
        let offer = peer.offer_gathered().await.context("publisher offer")?;
        handle
            .message(
                http,
                json!({"request": "configure", "audio": true, "video": true}),
                Some(json!({"type": "offer", "sdp": offer, "trickle": false})),
            )
            .await
            .context("configure")?;
        let answer = handle.event("configured", "ok").await?;
        let answer = answer["jsep"]["sdp"].as_str().context("publisher answer")?;
        peer.answered(answer)
            .await
            .context("apply the publisher answer")?;
        peer.wait_connected(EVENT_TIMEOUT)
            .await
            .context("publisher connection")?;
        // Janus lists a feed for subscribers only once its own side of the connection is up.
        handle.janus_event("webrtcup").await?;
        peers.push(peer);
    }
    let room = feeds[0];
    // The patient (feed 1) subscribes to the nurse (feed 2), and the other way round.
    for feed in [feeds[2], feeds[1]] {
        let mut handle = session.attach().await?;
        handle
            .message(
                http,
                json!({"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]}),
                None,
            )
            .await
            .context("subscribe")?;
        let attached = handle.event("videoroom", "attached").await?;
        let offer = attached["jsep"]["sdp"].as_str().context("subscriber offer")?;
        let peer = Peer::new(streams.clone(), None)
            .await
            .context("subscriber peer")?;
        let answer = peer.answer_gathered(offer).await.context("subscriber answer")?;
        handle
            .message(
                http,
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer, "trickle": false})),
            )
            .await?;
        handle.event("started", "ok").await?;
        peer.wait_connected(EVENT_TIMEOUT)
            .await
            .context("subscriber connection")?;
        peers.push(peer);
    }
    Ok(Visit { session, peers })
}
