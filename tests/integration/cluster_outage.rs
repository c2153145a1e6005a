//! Two nodes on a PostgreSQL cluster of this test's own, which the test stops mid-conversation: both nodes
//! report not-ready while it is gone, a message sent meanwhile is refused (never acknowledged and lost), and once
//! it is back both are ready again, the chat resumes across the nodes with every acknowledged message stored,
//! and the waiting room routes again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::Ws;
use crate::common::{client, free_port};
use crate::demo::{patient_token, staff_cookie};

/// A PostgreSQL cluster in a temporary directory, stopped (by its data directory) when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn as_postgres(program: &Path) -> Command {
    // initdb and the server refuse to run as root.
    if nix_is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

impl Postgres {
    fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()?;
        let dir = tempfile::Builder::new()
            .prefix("examroom-pg-outage")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if nix_is_root() {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["--auth=trust", "-U", "postgres"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let pg = Postgres {
            bin,
            data,
            port: free_port(),
            _dir: dir,
        };
        pg.up();
        Some(pg)
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.display()
        );
        let status = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-l"])
            .arg(self.data.join("server.log"))
            .args(["-o", &options, "start"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn down(&self) {
        let status = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

async fn ready(url: &str) -> u16 {
    match client().get(format!("{url}/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_ready(url: &str, status: u16) {
    for _ in 0..300 {
        if ready(url).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url}/readyz never answered {status}");
}

/// Waits until `/readyz` says this node's bus link is down: a node must notice at once that it no longer hears
/// the others (not after the database driver's own reconnect attempts give up), or it would say it is ready
/// again as soon as the database answers, before it listens.
async fn wait_bus_down(url: &str) {
    for _ in 0..100 {
        if let Ok(r) = client().get(format!("{url}/readyz")).send().await {
            let body: Value = r.json().await.unwrap_or_default();
            if body["bus"] == "not listening" {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url}/readyz never said its bus link was down");
}

#[tokio::test]
async fn a_database_restart_makes_nodes_not_ready_and_loses_nothing_acknowledged() {
    if std::env::var("TEST_POSTGRES_URL").is_err() {
        assert!(
            std::env::var("TEST_REQUIRE_POSTGRES").is_err(),
            "PostgreSQL is required"
        );
        return;
    }
    let pg = Postgres::start().expect("PostgreSQL binaries");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = pg.url();
    let nodes = crate::cluster_support::two_nodes(&database, &data, &[]);
    let (one, two) = (nodes[0].url.clone(), nodes[1].url.clone());

    // The patient on one node, the nurse on the other.
    let token = patient_token(&one, &data, "patient").await;
    let mut patient = Ws::patient(&one, &token).await;
    let cookie = staff_cookie(&two, &data, "nurse").await;
    let mut nurse = Ws::staff(&two, &cookie).await;
    nurse.presence("ready").await;
    let conversation = patient.start("triage", "before").await;
    nurse.offer_for(&conversation).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": conversation}))
        .await;
    patient.expect("assigned").await;
    let mut acked = Vec::new();
    for i in 0..10 {
        let ack = patient
            .say(&conversation, &format!("m{i}"), &format!("message {i}"))
            .await;
        acked.push(ack["seq"].as_i64().unwrap());
    }

    // The database goes away: both nodes stop saying they are ready; a message is refused, not acknowledged.
    pg.down();
    wait_ready(&one, 503).await;
    wait_ready(&two, 503).await;
    wait_bus_down(&one).await;
    wait_bus_down(&two).await;
    patient
        .send(
            json!({"v": 1, "type": "send", "conversation_id": conversation, "idempotency_key": "during",
            "body": "sent while the database is down"}),
        )
        .await;
    // (After the pool's wait for a connection, 10 s for each database call the send makes: the conversation's
    // row then the append: seconds, not a hang.)
    // Either the refusal comes, or the node's bus link (a database connection too) broke first and the socket
    // was told to reconnect before the answer: both leave the message unacknowledged, for the client to resend.
    let refused = patient
        .wait_or_closed(60, |v| v["type"] == "error" || v["type"] == "ack")
        .await;
    if let Some(refused) = &refused {
        assert_eq!(refused["type"], "error", "{refused}");
    }

    // It comes back: ready again, and the chat goes on across the nodes.
    pg.up();
    wait_ready(&one, 200).await;
    wait_ready(&two, 200).await;
    // The sockets were told to reconnect (their node's bus link broke and came back): they do, and sync.
    if refused.is_some() {
        assert_eq!(patient.close_code().await, 4012);
    }
    let mut patient = Ws::patient(&one, &token).await;
    let mut nurse = Ws::staff(&two, &cookie).await;
    for i in 10..20 {
        let ack = patient
            .say(&conversation, &format!("m{i}"), &format!("message {i}"))
            .await;
        acked.push(ack["seq"].as_i64().unwrap());
    }
    let transcript = nurse.sync(&conversation, 0).await;
    let stored: Vec<i64> = transcript.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    for seq in &acked {
        assert!(
            stored.contains(seq),
            "acknowledged message {seq} is stored ({stored:?})"
        );
    }
    // A new message reaches the other node live.
    let ack = patient
        .say(&conversation, "after", "one more, live across the nodes")
        .await;
    let seq = ack["seq"].as_i64().unwrap();
    nurse
        .wait("the live message", move |v| {
            v["type"] == "message" && v["seq"].as_i64() == Some(seq)
        })
        .await;

    // The waiting room routes again (a leader holds the lease once more).
    let token = patient_token(&one, &data, "patient2").await;
    let mut other = Ws::patient(&one, &token).await;
    let second = other.start("triage", "after").await;
    nurse.presence("ready").await;
    nurse.offer_for(&second).await;
    for n in &nodes {
        n.assert_no_panic();
    }
}
