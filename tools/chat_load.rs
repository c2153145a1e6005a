//! Chat load generator (a benchmark, not a test). Starts `examroom dev` in a scratch directory, opens N patient
//! sockets (distinct patients, ID tokens minted with the dev provider's key) and up to two nurse sockets that
//! accept everything, sends messages, and reports acknowledgement and delivery latency percentiles,
//! throughput, lost and duplicated messages, and the broker's CPU seconds and memory from /proc.
//!
//! `scripts/bench-chat.sh` runs it with a raised file-descriptor limit and writes the Markdown report.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{proc_stat, staff_cookie};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser)]
struct Args {
    /// The broker binary (a release build for meaningful numbers).
    #[arg(long, default_value = "target/release/examroom")]
    broker: String,
    #[arg(long, default_value_t = 1000)]
    patients: usize,
    /// Nurse sockets (the dev provider has two demo nurses).
    #[arg(long, default_value_t = 2)]
    nurses: usize,
    /// Messages per patient.
    #[arg(long, default_value_t = 3)]
    messages: usize,
    /// Pause between one patient's messages.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Print only the result row (to append to an existing table).
    #[arg(long)]
    no_header: bool,
}

#[derive(Default)]
struct Stats {
    ack_us: Vec<u64>,
    delivery_us: Vec<u64>,
    acked: HashMap<String, u32>,
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, cookie: Option<&str>) -> Ws {
    let mut req = format!("{}/api/v1/ws", url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    if let Some(c) = cookie {
        // As a browser would: the broker refuses a cookie socket that names no origin.
        req.headers_mut().insert("cookie", c.parse().unwrap());
        req.headers_mut().insert("origin", url.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.expect("connect").0
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&args.broker)
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("EXAMROOM_LOGGING__LEVEL", "warn")
        .env("EXAMROOM_ROUTING__MAX_CHATS_PER_NURSE", "1000000")
        .env("EXAMROOM_ROUTING__WRAP_UP_SECONDS", "0")
        .env("EXAMROOM_SERVER__MAX_BODY_BYTES", "65536")
        .envs(common::NO_LIMITS.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the broker");
    let pid = child.id();
    let mut stdout = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let url = loop {
        let line = stdout.next().expect("broker output").unwrap();
        if let Some(rest) = line.split("running at ").nth(1) {
            break rest.trim().trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in stdout {});
    let (_, rss_base) = proc_stat(pid);

    // Distinct patients: ID tokens signed with the dev provider's key, exchanged for sessions.
    let pem = std::fs::read_to_string(dir.path().join("dev-idp/signing-key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let jwks: Value = http
        .get(format!("{url}/dev-idp/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_string();
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dev-idp/credentials.json")).unwrap()).unwrap();
    let limit = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    let setup = Instant::now();
    for i in 0..args.patients {
        let (http, url, key, kid, limit) =
            (http.clone(), url.clone(), key.clone(), kid.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let now = chrono::Utc::now().timestamp();
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some(kid);
            let claims = json!({"iss": format!("{url}/dev-idp"), "sub": format!("load-patient-{i}"), "aud": "clinic-portal",
                                 "iat": now, "exp": now + 3600});
            let id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            let resp: Value = http
                .post(format!("{url}/api/v1/patient/sessions"))
                .bearer_auth(id_token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            resp["session_token"].as_str().unwrap().to_string()
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    eprintln!("{} patient sessions in {:.1?}", tokens.len(), setup.elapsed());

    let start = Instant::now();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let micros = move || start.elapsed().as_micros() as u64;

    // Nurses accept every offer and timestamp every patient message they receive.
    let nurse_users: Vec<&Value> = creds["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"].as_str().unwrap().starts_with("nurse"))
        .collect();
    for user in nurse_users.into_iter().take(args.nurses) {
        let cookie = staff_cookie(
            &url,
            user["username"].as_str().unwrap(),
            user["password"].as_str().unwrap(),
        )
        .await
        .expect("nurse sign-in");
        let mut ws = connect(&url, Some(&cookie)).await;
        next_json(&mut ws).await;
        ws.send(Message::Text(
            json!({"v":1,"type":"presence","state":"ready"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        let stats = stats.clone();
        tokio::spawn(async move {
            while let Some(f) = next_json(&mut ws).await {
                match f["type"].as_str() {
                    Some("offer") => {
                        let accept = json!({"v":1,"type":"accept","conversation_id": f["conversation_id"]});
                        let _ = ws.send(Message::Text(accept.to_string().into())).await;
                    }
                    Some("message") if f["sender_role"] == "patient" => {
                        if let Some(sent) = f["body"]
                            .as_str()
                            .and_then(|b| b.split(' ').nth(2))
                            .and_then(|t| t.parse::<u64>().ok())
                        {
                            stats.lock().await.delivery_us.push(micros().saturating_sub(sent));
                        }
                    }
                    _ => {}
                }
            }
        });
    }

    // Patients: connect, authenticate, start a conversation.
    let connect_started = Instant::now();
    let mut joins = Vec::new();
    for (i, token) in tokens.iter().cloned().enumerate() {
        let (url, limit) = (url.clone(), limit.clone());
        joins.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let mut ws = connect(&url, None).await;
            ws.send(Message::Text(
                json!({"v":1,"type":"auth","token": token}).to_string().into(),
            ))
            .await
            .unwrap();
            next_json(&mut ws).await;
            let start = json!({"v":1,"type":"start","queue":"triage","idempotency_key": format!("s{i}")});
            ws.send(Message::Text(start.to_string().into())).await.unwrap();
            let conversation = loop {
                let f = next_json(&mut ws).await.expect("conversation");
                if f["type"] == "conversation" {
                    break f["conversation"]["conversation_id"].as_str().unwrap().to_string();
                }
            };
            (ws, conversation)
        }));
    }
    let mut sockets = Vec::new();
    for j in joins {
        sockets.push(j.await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_idle, rss_connected) = proc_stat(pid);
    eprintln!(
        "{} patient sockets connected in {:.1?}",
        sockets.len(),
        connect_started.elapsed()
    );

    let sent = Arc::new(AtomicU64::new(0));
    let run_started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (ws, conversation)) in sockets.into_iter().enumerate() {
        let (stats, sent) = (stats.clone(), sent.clone());
        let (messages, interval, patients) = (args.messages, args.interval_ms, args.patients.max(1));
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            // Spread the first sends over one interval so the load is steady.
            tokio::time::sleep(Duration::from_millis(i as u64 * interval / patients as u64)).await;
            let reader_stats = stats.clone();
            let reader = tokio::spawn(async move {
                let mut pending: HashMap<String, u64> = HashMap::new();
                let mut got = 0;
                while let Some(Ok(Message::Text(t))) = stream.next().await {
                    let f: Value = serde_json::from_str(t.as_str()).unwrap();
                    if f["type"] == "ack" {
                        let key = f["idempotency_key"].as_str().unwrap().to_string();
                        let sent_at: u64 = key.split('-').nth(2).and_then(|v| v.parse().ok()).unwrap_or(0);
                        let mut s = reader_stats.lock().await;
                        s.ack_us.push(micros().saturating_sub(sent_at));
                        *s.acked.entry(key.clone()).or_default() += 1;
                        pending.remove(&key);
                        got += 1;
                        if got == messages {
                            break;
                        }
                    }
                }
            });
            for m in 0..messages {
                let now = micros();
                let key = format!("p{i}m{m}-k-{now}");
                let body = format!("load {key} {now}");
                let frame = json!({"v":1,"type":"send","conversation_id": conversation, "idempotency_key": key, "body": body});
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(interval)).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), reader).await;
            sink
        }));
    }
    let mut sinks = Vec::new();
    for t in tasks {
        sinks.push(t.await.unwrap());
    }
    let elapsed = run_started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu_end, rss_end) = proc_stat(pid);
    let mut s = stats.lock().await;
    let sent = sent.load(Ordering::Relaxed);
    let acked = s.acked.len() as u64;
    let duplicated: u64 = s.acked.values().map(|n| (*n as u64).saturating_sub(1)).sum();
    let (mut ack, mut delivery) = (std::mem::take(&mut s.ack_us), std::mem::take(&mut s.delivery_us));
    if !args.no_header {
        println!(
            "| patients | nurses | messages | ack p50 / p99 / p999 (ms) | delivery to nurse p50 / p99 / p999 (ms) | throughput (msg/s) | lost | duplicated | broker CPU s | broker RSS (MiB) | RSS per idle socket (KB) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
    }
    println!(
        "| {} | {} | {} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {:.0} | {} | {} | {:.1} | {:.0} | {:.1} |",
        args.patients,
        args.nurses,
        sent,
        pct(&mut ack, 0.5),
        pct(&mut ack, 0.99),
        pct(&mut ack, 0.999),
        pct(&mut delivery, 0.5),
        pct(&mut delivery, 0.99),
        pct(&mut delivery, 0.999),
        sent as f64 / elapsed.as_secs_f64(),
        sent - acked,
        duplicated,
        cpu_end - cpu_idle,
        rss_end as f64 / 1024.0,
        (rss_connected.saturating_sub(rss_base)) as f64 / args.patients as f64,
    );
    drop(sinks);
    let _ = child.kill();
    let _ = child.wait();
}
