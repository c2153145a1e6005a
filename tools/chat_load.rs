//! Chat load generator (a benchmark, not a test). Starts `examroom dev` in a scratch directory — one broker, or
//! `--nodes` brokers on one PostgreSQL database behind HAProxy — opens N patient sockets (distinct patients, ID
//! tokens minted with the dev provider's key; through the balancer when there are several nodes) and up to two
//! nurse sockets on the first node that accept everything, sends messages, and reports acknowledgement and
//! delivery latency percentiles, throughput, lost and duplicated messages, and the brokers' CPU seconds and
//! memory from /proc. With several nodes most deliveries cross nodes (a patient's socket is on the nurse's node
//! for one in `--nodes`).
//!
//! `scripts/bench-chat.sh` runs it with a raised file-descriptor limit and writes the Markdown report.

#[path = "common.rs"]
mod common;
#[path = "haproxy.rs"]
mod haproxy;

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
    /// Brokers sharing `--database` behind HAProxy (1: one broker, directly).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The brokers' PostgreSQL database (required with several nodes; one broker without it uses SQLite).
    #[arg(long)]
    database: Option<String>,
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

/// A socket to `url` (a node, or the balancer) from a page at `origin` (the public URL).
async fn connect(url: &str, origin: &str, cookie: Option<&str>) -> Ws {
    let mut req = format!("{}/api/v1/ws", url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    if let Some(c) = cookie {
        // As a browser would: the broker refuses a cookie socket that names no origin.
        req.headers_mut().insert("cookie", c.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
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
    assert!(
        args.nodes >= 1 && (args.nodes == 1 || args.database.is_some()),
        "--nodes above 1 needs --database"
    );
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let addrs: Vec<String> = (0..args.nodes)
        .map(|i| format!("127.0.0.{}:{}", i + 2, free_port()))
        .collect();
    let lb_port = free_port();
    // One after the other: the first creates the shared data directory's keys.
    let mut brokers = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let mut cmd = Command::new(&args.broker);
        cmd.args(["dev", "--listen", addr, "--data-dir"])
            .arg(dir.path())
            .env("EXAMROOM_LOGGING__LEVEL", "warn")
            .env("EXAMROOM_ROUTING__MAX_CHATS_PER_NURSE", "1000000")
            .env("EXAMROOM_ROUTING__WRAP_UP_SECONDS", "0")
            .env("EXAMROOM_SERVER__MAX_BODY_BYTES", "65536")
            .envs(common::NO_LIMITS.iter().copied());
        if args.nodes > 1 {
            cmd.args(["--public-url", &format!("http://127.0.0.1:{lb_port}")])
                .env("EXAMROOM_CLUSTER__NODE_ID", format!("node-{}", i + 1))
                .env(
                    "EXAMROOM_CLUSTER__INTERNAL_LISTEN",
                    format!("127.0.0.{}:0", i + 2),
                );
        }
        if let Some(db) = &args.database {
            cmd.env("EXAMROOM_DATABASE__URL", db);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the broker");
        let mut stdout = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let url = loop {
            let line = stdout.next().expect("broker output").unwrap();
            if let Some(rest) = line.split("running at ").nth(1) {
                break rest.trim().trim_end_matches('/').to_string();
            }
        };
        std::thread::spawn(move || for _ in stdout {});
        brokers.push((child, url));
    }
    let pids: Vec<u32> = brokers.iter().map(|(c, _)| c.id()).collect();
    let node_url = format!("http://{}", addrs[0]);
    let _balancer = (args.nodes > 1)
        // One connection per patient socket; HAProxy needs two descriptors per connection within `ulimit -n`.
        .then(|| haproxy::start(dir.path(), lb_port, &addrs, args.patients + 100).expect("HAProxy"));
    // The public URL: the balancer's, or the one broker's.
    let url = brokers[0].1.clone();
    let ready = reqwest::Client::new();
    let waiting_since = Instant::now();
    while !ready
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            waiting_since.elapsed() < Duration::from_secs(60),
            "{url} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stat = |pids: &[u32]| {
        pids.iter()
            .map(|p| proc_stat(*p))
            .fold((0.0, 0), |(c, r), (c2, r2)| (c + c2, r + r2))
    };
    let (_, rss_base) = stat(&pids);

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
        // Nurses on the first node; patients come through the balancer to every node.
        let mut ws = connect(&node_url, &url, Some(&cookie)).await;
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
        let (url, limit, reader_stats, messages) = (url.clone(), limit.clone(), stats.clone(), args.messages);
        joins.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let mut ws = connect(&url, &url, None).await;
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
            // Read from now on, as a widget does: waiting-room updates keep coming while the others connect, and
            // a socket that leaves them unread is told to reconnect.
            let (sink, mut stream) = ws.split();
            let reader = tokio::spawn(async move {
                let mut got = 0;
                // Every message, pings too: reading is what answers them (the broker closes a silent socket).
                while let Some(Ok(m)) = stream.next().await {
                    let Message::Text(t) = m else { continue };
                    let f: Value = serde_json::from_str(t.as_str()).unwrap();
                    if f["type"] == "ack" {
                        let key = f["idempotency_key"].as_str().unwrap().to_string();
                        let sent_at: u64 = key.split('-').nth(2).and_then(|v| v.parse().ok()).unwrap_or(0);
                        let mut s = reader_stats.lock().await;
                        s.ack_us.push(micros().saturating_sub(sent_at));
                        *s.acked.entry(key).or_default() += 1;
                        got += 1;
                        if got == messages {
                            break;
                        }
                    }
                }
            });
            (sink, reader, conversation)
        }));
    }
    let mut sockets = Vec::new();
    for j in joins {
        sockets.push(j.await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_idle, rss_connected) = stat(&pids);
    eprintln!(
        "{} patient sockets connected in {:.1?}",
        sockets.len(),
        connect_started.elapsed()
    );

    let sent = Arc::new(AtomicU64::new(0));
    let run_started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (mut sink, reader, conversation)) in sockets.into_iter().enumerate() {
        let sent = sent.clone();
        let (messages, interval, patients) = (args.messages, args.interval_ms, args.patients.max(1));
        tasks.push(tokio::spawn(async move {
            // Spread the first sends over one interval so the load is steady.
            tokio::time::sleep(Duration::from_millis(i as u64 * interval / patients as u64)).await;
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
    let (cpu_end, rss_end) = stat(&pids);
    let mut s = stats.lock().await;
    let sent = sent.load(Ordering::Relaxed);
    let acked = s.acked.len() as u64;
    let duplicated: u64 = s.acked.values().map(|n| (*n as u64).saturating_sub(1)).sum();
    let (mut ack, mut delivery) = (std::mem::take(&mut s.ack_us), std::mem::take(&mut s.delivery_us));
    if !args.no_header {
        println!(
            "| nodes | patients | nurses | messages | ack p50 / p99 / p999 (ms) | delivery to nurse p50 / p99 / p999 (ms) | throughput (msg/s) | lost | duplicated | broker CPU s | broker RSS (MiB) | RSS per idle socket (KB) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    println!(
        "| {} | {} | {} | {} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {:.0} | {} | {} | {:.1} | {:.0} | {:.1} |",
        args.nodes,
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
    for (mut child, _) in brokers {
        let _ = child.kill();
        let _ = child.wait();
    }
}
