//! Video across nodes (two `examroom dev` nodes on one PostgreSQL database, in-process WebRTC peers, inside a
//! loopback-only network namespace): a visit between a nurse on one node and a patient on the other is hosted by
//! one node's SFU and the patient's signaling is relayed to it; media flows both ways; a socket that opens on the
//! other node hears of the visit; the next visit goes to the less loaded node; the host's row goes with the visit.
//! Then a recorded visit outlives `kill -9` of its host and a rolling restart of the next two (each drained, the
//! first started again), with the patient chatting throughout: media flows after every move, no message is lost
//! or stored twice, and the compliance officer gets one recording, one timeline and one file, by range.

use std::time::Duration;

use serde_json::json;

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::Broker;
use crate::demo::{patient_token, staff_cookie};
use crate::media_peers::{in_namespace, join, pump};
use crate::peer::{ClientPeer, Counters};

#[test]
fn a_visit_between_sockets_on_two_nodes_is_hosted_by_one_and_relayed() {
    if std::env::var("TEST_POSTGRES_SOCKET_DIR").is_err() {
        assert!(
            std::env::var("TEST_REQUIRE_POSTGRES").is_err(),
            "TEST_POSTGRES_SOCKET_DIR is required"
        );
        return;
    }
    in_namespace("video_relay::inner_relay");
}

/// Node `i` of a cluster on `database`: its own address (127.0.0.`i+2`), internal listener and media address;
/// `public` is the first node's origin (its development provider signs everyone in); its own URL.
fn node(i: usize, database: &str, data: &std::path::Path, public: Option<&str>) -> (Broker, String) {
    let id = format!("node-{}", i + 1);
    let ip = format!("127.0.0.{}", i + 2);
    let (internal, media, listen) = (
        format!("{ip}:0"),
        format!("[\"{ip}\"]"),
        format!("{ip}:{}", crate::common::free_port()),
    );
    let mut env: Vec<(&str, &str)> = FAST_ROUTING.to_vec();
    env.extend([
        ("EXAMROOM_DATABASE__URL", database),
        ("EXAMROOM_CLUSTER__NODE_ID", id.as_str()),
        ("EXAMROOM_CLUSTER__INTERNAL_LISTEN", internal.as_str()),
        ("EXAMROOM_CLUSTER__HEARTBEAT_SECONDS", "1"),
        ("EXAMROOM_CLUSTER__DEAD_AFTER_SECONDS", "3"),
        ("EXAMROOM_MEDIA__BIND_IPS", media.as_str()),
        ("EXAMROOM_RECORDING__SEGMENT_SECONDS", "5"),
    ]);
    let mut args = vec!["--listen", listen.as_str()];
    if let Some(p) = public {
        args.extend(["--public-url", p]);
    }
    let broker = Broker::dev_at(Broker::command(), data, &env, &args);
    (broker, format!("http://{listen}"))
}

async fn host_of(pool: &sqlx::AnyPool, visit: &str) -> Option<String> {
    sqlx::query_scalar("SELECT host_node FROM visit_hosts WHERE visit_id = $1")
        .bind(visit.to_string())
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// Accepts `patient`'s new chat as `nurse` and asks for video; the visit id.
async fn propose(patient: &mut Ws, nurse: &mut Ws, key: &str) -> String {
    crate::media_peers::chat_then_video_request(patient, nurse, key)
        .await
        .1
}

/// The patient's chat while the visit moves: bursts sent without waiting, resent after each reconnect (with
/// the same idempotency keys, as the widget does), and checked at the end: every message stored exactly once.
struct ChatLoad {
    conversation: String,
    sent: Vec<String>,
}

impl ChatLoad {
    async fn burst(&mut self, ws: &mut Ws, n: usize) {
        for _ in 0..n {
            let key = format!("load-{}", self.sent.len());
            ws.send(
                json!({"v": 1, "type": "send", "conversation_id": self.conversation,
                           "idempotency_key": key, "body": format!("body of {key}")}),
            )
            .await;
            self.sent.push(key);
        }
    }

    /// After a reconnect: whatever may not have been acknowledged is sent again; each gets its ack.
    async fn resend(&mut self, ws: &mut Ws) {
        for key in self.sent.clone() {
            ws.say(&self.conversation, &key, &format!("body of {key}")).await;
        }
    }

    async fn verify(&self, ws: &mut Ws) {
        let mut stored: Vec<serde_json::Value> = Vec::new();
        loop {
            let after = stored.last().map_or(0, |m| m["seq"].as_i64().unwrap());
            let page = ws.sync(&self.conversation, after).await;
            if page.is_empty() {
                break;
            }
            stored.extend(page);
        }
        for key in &self.sent {
            let body = format!("body of {key}");
            let n = stored.iter().filter(|m| m["body"] == body.as_str()).count();
            assert_eq!(n, 1, "{key} stored exactly once");
        }
    }
}

#[tokio::test]
#[ignore = "run inside a network namespace by a_visit_between_sockets_on_two_nodes_is_hosted_by_one_and_relayed"]
async fn inner_relay() {
    let database = crate::storage::socket_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (first, url1) = node(0, &database, &data, None);
    let (second, url2) = node(1, &database, &data, Some(&first.url));
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();

    // The nurse's socket is on node-1, the patient's on node-2.
    let nurse_cookie = staff_cookie(&url1, &data, "nurse").await;
    let mut nurse = Ws::staff(&url1, &nurse_cookie).await;
    let token = patient_token(&url1, &data, "patient").await;
    let mut patient = Ws::patient(&url2, &token).await;
    let visit = propose(&mut patient, &mut nurse, "relay-1").await;
    // Both nodes carry no visit: the nurse's node hosts it (a tie stays where the request came from).
    assert_eq!(host_of(&pool, &visit).await.as_deref(), Some("node-1"));

    // The patient's answer, offer and candidates go to node-1 through node-2; media flows through node-1.
    patient
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true}))
        .await;
    patient.expect("video_started").await;
    nurse.expect("video_started").await;
    let mut patient_peer = ClientPeer::new("PATIENT", "NURSE").await;
    let mut nurse_peer = ClientPeer::new("NURSE", "PATIENT").await;
    join(&mut nurse, &mut nurse_peer, &visit).await;
    join(&mut patient, &mut patient_peer, &visit).await;
    pump(&patient_peer, &nurse_peer, 0, 100).await;
    for (who, p) in [("nurse", &nurse_peer), ("patient", &patient_peer)] {
        let (video, audio) = (
            p.count(|c: &Counters| &c.video_received),
            p.count(|c: &Counters| &c.audio_received),
        );
        assert!(
            video >= 80 && audio >= 80,
            "{who} got {video} video, {audio} audio"
        );
    }
    let hosted = |b: &Broker| {
        b.stderr
            .lines()
            .iter()
            .any(|l| l.contains("video frame not relayed"))
    };
    assert!(!hosted(&second), "every relayed frame reached its host");

    // A second tab of the patient, on node-2, hears of the visit node-1 hosts.
    let mut tab = Ws::patient(&url2, &token).await;
    assert_eq!(tab.expect("video_started").await["visit_id"], visit.as_str());

    // node-1 now reports a live visit: the next visit, asked for on node-1, is hosted by node-2.
    let mut loaded = false;
    for _ in 0..50 {
        let visits: i64 =
            sqlx::query_scalar("SELECT live_visits FROM cluster_nodes WHERE node_id = 'node-1'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if visits == 1 {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(loaded, "node-1's heartbeat carries its visit");
    let mut nurse2 = Ws::staff(&url1, &staff_cookie(&url1, &data, "nurse2").await).await;
    let mut patient2 = Ws::patient(&url1, &patient_token(&url1, &data, "patient2").await).await;
    let visit2 = propose(&mut patient2, &mut nurse2, "relay-2").await;
    assert_eq!(host_of(&pool, &visit2).await.as_deref(), Some("node-2"));
    patient2
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit2, "accept": true}))
        .await;
    nurse2.expect("video_started").await;

    // The nurse ends the first video: both tabs of the patient hear it, and the host's row goes.
    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    for ws in [&mut patient, &mut tab] {
        assert_eq!(ws.expect("video_ended").await["reason"], "nurse_ended");
    }
    assert_eq!(host_of(&pool, &visit).await, None);
    for b in [&first, &second] {
        b.assert_no_panic();
    }
}

#[test]
fn a_visit_survives_the_death_of_its_host_and_a_rolling_restart() {
    if std::env::var("TEST_POSTGRES_SOCKET_DIR").is_err() {
        assert!(
            std::env::var("TEST_REQUIRE_POSTGRES").is_err(),
            "TEST_POSTGRES_SOCKET_DIR is required"
        );
        return;
    }
    in_namespace("video_relay::inner_handover");
}

/// Joins fresh peers (a browser makes a new connection on `rejoin`) and checks media flows both ways.
async fn media_flows(patient: &mut Ws, nurse: &mut Ws, visit: &str, from: u16) {
    let mut patient_peer = ClientPeer::new("PATIENT", "NURSE").await;
    let mut nurse_peer = ClientPeer::new("NURSE", "PATIENT").await;
    join(nurse, &mut nurse_peer, visit).await;
    join(patient, &mut patient_peer, visit).await;
    pump(&patient_peer, &nurse_peer, from, 60).await;
    for (who, p) in [("nurse", &nurse_peer), ("patient", &patient_peer)] {
        let video = p.count(|c: &Counters| &c.video_received);
        assert!(video >= 40, "{who} got {video} video packets");
    }
}

/// Who takes part, to reconnect them: the first node's origin (its provider signed them in), the nurse's
/// cookie, the patient's token.
struct People {
    public: String,
    nurse_cookie: String,
    token: String,
}

/// Drains the visit's host `broker` (SIGTERM) and waits until `to` hosts the visit; both sides reconnect there
/// with new `sockets`, rejoin at `epoch`, and media flows again. Prints how long it took.
#[allow(clippy::too_many_arguments)]
async fn drain_host(
    pool: &sqlx::AnyPool,
    broker: &Broker,
    sockets: (Ws, Ws),
    visit: &str,
    (to, to_url): (&str, &str),
    people: &People,
    epoch: u64,
    from: u16,
) -> (Ws, Ws) {
    let drained = std::time::Instant::now();
    let pid = broker.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut moved = false;
    for _ in 0..100 {
        if host_of(pool, visit).await.as_deref() == Some(to) {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the draining node handed the visit to {to}");
    // Its sockets are sent away (4012) once the visit left; they reconnect (here: to `to`) and are told to
    // rejoin there, whether or not the frame reached them on the old socket.
    drop(sockets);
    let mut nurse = Ws::staff_at(to_url, &people.public, &people.nurse_cookie).await;
    let mut patient = Ws::patient(to_url, &people.token).await;
    rejoined(&mut patient, visit, epoch, 5).await;
    rejoined(&mut nurse, visit, epoch, 5).await;
    media_flows(&mut patient, &mut nurse, visit, from).await;
    println!(
        "measured: drain (move {epoch}): media again {:.1} s after SIGTERM",
        drained.elapsed().as_secs_f64()
    );
    (nurse, patient)
}

/// Waits for the visit's `video_started` at `epoch` (the number of moves so far): the client rejoins.
async fn rejoined(ws: &mut Ws, visit: &str, epoch: u64, secs: u64) -> serde_json::Value {
    ws.wait_within("video_started at the next epoch", secs, |f| {
        f["type"] == "video_started" && f["visit_id"] == visit && f["epoch"] == epoch
    })
    .await
}

#[tokio::test]
#[ignore = "run inside a network namespace by a_visit_survives_the_death_of_its_host_and_a_rolling_restart"]
async fn inner_handover() {
    let database = crate::storage::socket_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database).await.unwrap();

    // A recorded visit on node-1, both sockets there.
    let (mut first, url1) = node(0, &database, &data, None);
    let nurse_cookie = staff_cookie(&url1, &data, "nurse").await;
    // Signed in now: node-1's development provider signs everyone in, and node-1 is about to die.
    let compliance = staff_cookie(&url1, &data, "compliance").await;
    let token = patient_token(&url1, &data, "patient").await;
    let people = People {
        public: url1.clone(),
        nurse_cookie: nurse_cookie.clone(),
        token: token.clone(),
    };
    let mut nurse = Ws::staff(&url1, &nurse_cookie).await;
    let mut patient = Ws::patient(&url1, &token).await;
    let (conversation, visit) =
        crate::media_peers::chat_then_video_request(&mut patient, &mut nurse, "move-1").await;
    let mut chat = ChatLoad {
        conversation,
        sent: Vec::new(),
    };
    patient
        .send(json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true, "recording_consent": true}))
        .await;
    assert_eq!(nurse.expect("video_started").await["recording"], "recording");
    media_flows(&mut patient, &mut nurse, &visit, 0).await;
    let (second, url2) = node(1, &database, &data, Some(&url1));
    let (third, url3) = node(2, &database, &data, Some(&url1));

    // Segments close every 5 s and are uploaded as they close: what node-1 stored before it dies survives it.
    let mut stored_before_kill = 0;
    for _ in 0..150 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM recording_segments s JOIN recordings r ON r.id = s.recording_id \
             WHERE r.visit_id = $1 AND s.stored = 1",
        )
        .bind(visit.clone())
        .fetch_one(&pool)
        .await
        .unwrap();
        stored_before_kill = n;
        if n >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stored_before_kill >= 1,
        "a segment was uploaded while the visit was live"
    );
    media_flows(&mut patient, &mut nurse, &visit, 60).await;

    chat.burst(&mut patient, 5).await;
    // node-1 dies: its sockets drop; the clients reconnect through the balancer (here: to node-2) and the
    // visit is adopted by a live node, which tells both to rejoin; media flows again, consent not asked again.
    let killed = std::time::Instant::now();
    let killed_at = crate::common::epoch_ms();
    first.child.kill().unwrap();
    let _ = first.child.wait();
    let mut nurse = Ws::staff_at(&url2, &url1, &nurse_cookie).await;
    let mut patient = Ws::patient(&url2, &token).await;
    rejoined(&mut patient, &visit, 1, 20).await;
    rejoined(&mut nurse, &visit, 1, 5).await;
    let adopter = host_of(&pool, &visit).await.expect("adopted");
    assert_ne!(adopter, "node-1");
    chat.resend(&mut patient).await;
    media_flows(&mut patient, &mut nurse, &visit, 100).await;
    println!(
        "measured: failover: media again {:.1} s after the host was killed (dead after 3 s)",
        killed.elapsed().as_secs_f64()
    );

    // The adopter drains: the visit is handed to the last node; the adopter's sockets are sent away after it.
    let (adopter_broker, last_url, last_id) = if adopter == "node-2" {
        (&second, url3.clone(), "node-3")
    } else {
        (&third, url2.clone(), "node-2")
    };
    chat.burst(&mut patient, 5).await;
    let drained_at = crate::common::epoch_ms();
    let (nurse, mut patient) = drain_host(
        &pool,
        adopter_broker,
        (nurse, patient),
        &visit,
        (last_id, &last_url),
        &people,
        2,
        200,
    )
    .await;
    chat.resend(&mut patient).await;

    // The rolling restart goes on: the drained node starts again, then the last node drains, and the visit
    // moves back to the restarted one (node-1 stays dead).
    let (adopter_index, last_broker) = if adopter == "node-2" {
        (1, &third)
    } else {
        (2, &second)
    };
    let (restarted, restarted_url) = node(adopter_index, &database, &data, Some(&url1));
    let mut ready = false;
    for _ in 0..100 {
        let live: Vec<(String,)> =
            sqlx::query_as("SELECT node_id FROM cluster_nodes WHERE node_id = $1 AND draining = 0")
                .bind(adopter.clone())
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
        if !live.is_empty()
            && crate::common::client()
                .get(format!("{restarted_url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "{adopter} started again");
    chat.burst(&mut patient, 5).await;
    let (mut nurse, mut patient) = drain_host(
        &pool,
        last_broker,
        (nurse, patient),
        &visit,
        (&adopter, &restarted_url),
        &people,
        3,
        300,
    )
    .await;
    chat.resend(&mut patient).await;
    chat.verify(&mut patient).await;
    nurse
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    patient.expect("video_ended").await;

    // Four parts of one recording: node-1's (its last spool sealed by another node on the shared disk), the
    // adopter's (stored when it drained), the last node's (stored when it drained), the restarted adopter's
    // (stored at the end), each continuing the previous one.
    let mut parts: Vec<(String, String, String)> = Vec::new();
    for _ in 0..100 {
        parts = sqlx::query_as(
            "SELECT id, state, COALESCE(manifest, '') FROM recordings WHERE visit_id = $1 ORDER BY started_at",
        )
        .bind(visit.clone())
        .fetch_all(&pool)
        .await
        .unwrap();
        if parts.len() == 4 && parts[1..].iter().all(|p| p.1 == "stored") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(parts.len(), 4, "{parts:?}");
    let manifest = |i: usize| serde_json::from_str::<serde_json::Value>(&parts[i].2).unwrap();
    let failover = manifest(1);
    assert_eq!(failover["continues"]["reason"], "failover", "{failover}");
    assert_eq!(failover["continues"]["recording_id"], parts[0].0.as_str());
    assert!(failover["continues"]["outage_since_ms"].is_i64());
    let drain = manifest(2);
    assert_eq!(drain["continues"]["reason"], "drain", "{drain}");
    assert_eq!(drain["continues"]["recording_id"], parts[1].0.as_str());
    assert_eq!(manifest(3)["continues"]["reason"], "drain");
    // One recording for the reviewer: one entry, one timeline with both moves, one file spanning every node.
    let (rec, blocks) = crate::cluster_support::reviewed(
        &restarted_url,
        &compliance,
        &visit,
        &["failover", "drain", "drain"],
    )
    .await;
    assert_eq!(rec["id"], parts[0].0.as_str(), "named by its first part");
    let gaps = rec["manifest"]["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().any(|g| g["reason"] == "failover"
            && g["start_ms"].as_i64().unwrap() <= killed_at
            && g["end_ms"].as_i64().unwrap() > killed_at),
        "the outage is a gap: {rec}"
    );
    let origin = rec["manifest"]["started_ms"].as_i64().unwrap();
    assert!(
        blocks.iter().any(|b| origin + b.1 < killed_at),
        "media from the killed node's stored segments"
    );
    assert!(
        blocks.iter().any(|b| origin + b.1 > drained_at),
        "media from the last node: blocks at {:?} ms after the start, killed at {}, drained at {}: {rec}",
        blocks.iter().map(|b| b.1).collect::<Vec<_>>(),
        killed_at - origin,
        drained_at - origin
    );
    let handovers: Vec<(String,)> =
        sqlx::query_as("SELECT reason FROM audit_events WHERE action = 'visit.handover' ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(handovers.len(), 3, "{handovers:?}");
    for b in [&second, &third, &restarted] {
        b.assert_no_panic();
    }
}
