//! Three `examroom dev` nodes on one PostgreSQL database behind HAProxy (Debian's, with `/readyz` checks and a
//! WebSocket tunnel timeout): routing is exactly-once (one offer at a time, one assignment) over 500 conversations whose patients connect through
//! the balancer to every node while the nurses sit on two of them; messages cross nodes with none lost or
//! duplicated; `kill -9` of the routing leader moves the lease to another node, which rebuilds the waiting room
//! from the rows (every waiting patient keeps their place) and routes on; the SIEM receiver gets every audit
//! event, each id once, although the delivery job moved with the lease.
//!
//! The development provider keeps its sign-in codes in memory, so the balancer sends `/dev-idp/` and `/auth/`
//! to the first node (a deployment's provider is external); everything else is balanced round-robin.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster_support::{
    NurseLog, haproxy, lease_holder, next_where, nurse, patient_session, patient_socket, start, visit,
};
use crate::common::{Broker, client, free_port};
use crate::demo::staff_cookie;

const CONVERSATIONS: usize = 500;
const WAITING: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behind_haproxy_route_once_deliver_across_nodes_and_survive_the_leader() {
    let Some(database) = crate::storage::postgres_database().await else {
        return;
    };
    if Command::new("haproxy").arg("-v").output().is_err() {
        assert!(
            std::env::var("TEST_REQUIRE_POSTGRES").is_err(),
            "haproxy is required"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (siem, siem_port) = crate::siem::receiver().await;
    siem.lock().unwrap().up = true;
    let secret = dir.path().join("siem-secret");
    std::fs::write(&secret, crate::siem::SECRET).unwrap();
    let hooks = format!(
        "[{{ name = \"soc\", url = \"http://127.0.0.1:{siem_port}/hook\", secret_file = \"{}\" }}]",
        secret.display()
    );
    let lb_port = free_port();
    let lb = format!("http://127.0.0.1:{lb_port}");
    let addrs: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.{}:{}", i + 2, free_port()))
        .collect();
    let unlimited = "{ per_minute = 100000, burst = 100000 }";
    let start_node = |i: usize| {
        let id = format!("node-{}", i + 1);
        let internal = format!("127.0.0.{}:0", i + 2);
        let env = [
            ("EXAMROOM_DATABASE__URL", database.as_str()),
            ("EXAMROOM_CLUSTER__NODE_ID", id.as_str()),
            ("EXAMROOM_CLUSTER__INTERNAL_LISTEN", internal.as_str()),
            ("EXAMROOM_CLUSTER__HEARTBEAT_SECONDS", "1"),
            ("EXAMROOM_CLUSTER__DEAD_AFTER_SECONDS", "3"),
            ("EXAMROOM_ROUTING__OFFER_TIMEOUT_SECONDS", "120"),
            ("EXAMROOM_ROUTING__MAX_CHATS_PER_NURSE", "1000"),
            ("EXAMROOM_LIMITS__PATIENT_SESSION_PER_ADDRESS", unlimited),
            ("EXAMROOM_LIMITS__SOCKET_FRAMES", unlimited),
            ("EXAMROOM_SIEM__WEBHOOKS", hooks.as_str()),
        ];
        Broker::dev_at(
            Broker::command(),
            &data,
            &env,
            &["--listen", &addrs[i], "--public-url", &lb],
        )
    };
    // One after the other: the first creates the shared data directory's keys.
    let mut nodes: Vec<Option<Broker>> = (0..3).map(|i| Some(start_node(i))).collect();
    let _haproxy = haproxy(dir.path(), lb_port, &addrs);
    let http = client();
    for _ in 0..100 {
        if http
            .get(format!("{lb}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    let mut leader = None;
    for _ in 0..100 {
        leader = lease_holder(&pool, "routing").await;
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = leader.expect("a routing leader");
    let leader_index: usize = leader.trim_start_matches("node-").parse::<usize>().unwrap() - 1;
    let live_nodes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cluster_nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(live_nodes, 3, "every node registered");
    // Operators see it in each node's metrics: three nodes, and which leases this one holds.
    let leader_metrics = format!("http://{}/metrics", addrs[leader_index]);
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = http
            .get(&leader_metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("examroom_cluster_nodes 3")
            && metrics.contains("examroom_cluster_leases{lease=\"routing\"} 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics.contains("examroom_cluster_nodes 3"), "{metrics}");
    assert!(
        metrics.contains("examroom_cluster_leases{lease=\"routing\"} 1"),
        "the leader says it leads"
    );

    // The command line, as an operator runs it on one of the hosts (the nodes' keys and database).
    let config = dir.path().join("cli.toml");
    let keys = data.join("keys");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\n[database]\nurl = {:?}\n[messaging]\nkek_files = [{:?}]\n\
             [logging]\npseudonym_key_file = {:?}\n[audit]\nsigning_key_file = {:?}\n[cluster]\nkey_file = {:?}\nheartbeat_seconds = 1\ndead_after_seconds = 3\n\
             [auth.staff]\nissuer = \"{lb}/dev-idp\"\nclient_id = \"examroom\"\nclient_secret = \"unused\"\n\
             [auth.patient]\nissuer = \"{lb}/dev-idp\"\naudiences = [\"clinic-portal\"]\n\
             [auth.staff.role_mapping]\n\"examroom-nurses\" = \"nurse\"\n",
            data,
            database,
            keys.join("kek.hex"),
            data.join("pseudonym.key"),
            keys.join("audit-signing.pk8"),
            keys.join("cluster.key"),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    // `examroom cluster status`: three ready nodes, every lease held by a live one.
    // The status once it says `expect` (exit code and a line of the output).
    let status = |expect: i32, line: &str| {
        let mut last = (None, String::new());
        for _ in 0..60 {
            last = crate::common::examroom(&["cluster", "status", "--config", cfg]);
            if last.0 == Some(expect) && last.1.contains(line) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        last
    };
    let (code, out) = status(0, "healthy");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        (1..=3).all(|i| out.contains(&format!("node-{i}"))) && out.contains("healthy"),
        "{out}"
    );

    // The nurses sit on the two nodes that do not lead; patients come through the balancer to all three.
    let others: Vec<usize> = (0..3).filter(|i| *i != leader_index).collect();
    let logs: Vec<Arc<Mutex<NurseLog>>> = (0..2).map(|_| Arc::default()).collect();
    let mut nurses = Vec::new();
    for (n, user) in ["nurse", "nurse2"].into_iter().enumerate() {
        let cookie = staff_cookie(&lb, &data, user).await;
        let direct = format!("http://{}", addrs[others[n]]);
        let tx = nurse(direct, lb.clone(), cookie, logs[n].clone());
        tx.send("ready").await.unwrap();
        nurses.push(tx);
    }
    let jwks: Value = http
        .get(format!("{lb}/dev-idp/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_string();
    let began = std::time::Instant::now();
    let sessions: Vec<_> = (0..CONVERSATIONS + WAITING)
        .map(|i| {
            let (lb, data, kid) = (lb.clone(), data.clone(), kid.clone());
            tokio::spawn(
                async move { patient_session(&lb, &data, &kid, &format!("cluster-patient-{i}")).await },
            )
        })
        .collect();
    let mut tokens = Vec::new();
    for s in sessions {
        tokens.push(s.await.unwrap());
    }
    eprintln!("{} patient sessions in {:.1?}", tokens.len(), began.elapsed());

    // Routing exactly once, messages across nodes.
    let visits: Vec<_> = (0..CONVERSATIONS)
        .map(|i| tokio::spawn(visit(lb.clone(), tokens[i].clone(), i)))
        .collect();
    let mut conversations = Vec::new();
    let mut results = Vec::new();
    for v in visits {
        results.push(v.await.unwrap());
    }
    let unassigned: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if !unassigned.is_empty() {
        for (n, log) in logs.iter().enumerate() {
            let log = log.lock().unwrap();
            let missing: Vec<_> = unassigned.iter().filter(|c| log.offers.contains(c)).collect();
            eprintln!(
                "nurse {n}: {} offers, {} assigned, offered of the unassigned: {missing:?}",
                log.offers.len(),
                log.assigned.len()
            );
        }
        for n in nodes.iter().flatten() {
            for l in n
                .stderr
                .lines()
                .iter()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(30)
            {
                eprintln!("{l}");
            }
        }
        panic!("{} patients never assigned: {unassigned:?}", unassigned.len());
    }
    for r in results {
        let (conversation, seqs) = r.unwrap();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![1, 2],
            "{conversation}: every message once ({seqs:?})"
        );
        conversations.push(conversation);
    }
    let mut offers: HashMap<String, usize> = HashMap::new();
    let mut assigned = 0;
    let mut patient_messages = 0;
    for log in &logs {
        let log = log.lock().unwrap();
        for c in &log.offers {
            *offers.entry(c.clone()).or_default() += 1;
        }
        assigned += log.assigned.len();
        assert!(
            log.messages.values().all(|n| *n == 1),
            "a nurse got a message twice"
        );
        patient_messages += log.messages.len();
    }
    assert_eq!(assigned, CONVERSATIONS);
    assert_eq!(
        patient_messages, CONVERSATIONS,
        "every patient message reached its nurse once"
    );
    // One offer at a time: every offer but the last was withdrawn before the next (a patient whose socket was
    // told to reconnect under the burst of position updates has theirs withdrawn and made again).
    for c in &conversations {
        let ended: usize = logs
            .iter()
            .map(|l| l.lock().unwrap().offers_ended.get(c).copied().unwrap_or(0))
            .sum();
        assert_eq!(
            offers.get(c).copied(),
            Some(ended + 1),
            "{c}: one offer at a time"
        );
    }
    eprintln!(
        "{CONVERSATIONS} conversations routed and answered in {:.1?}",
        began.elapsed()
    );
    let served: Vec<i64> = sqlx::query_scalar("SELECT sockets FROM cluster_nodes")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(served.len(), 3);

    // The leader dies with patients waiting: nobody loses their place.
    for n in &nurses {
        n.send("away").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut waiting = Vec::new();
    let mut waiting_sockets = Vec::new();
    for i in 0..WAITING {
        let mut ws = patient_socket(&lb, &tokens[CONVERSATIONS + i]).await;
        waiting.push(start(&mut ws, &format!("wait-{i}")).await);
        waiting_sockets.push(ws);
    }
    let siem_holder = lease_holder(&pool, "siem-delivery").await;
    nodes[leader_index].take().unwrap().child.kill().unwrap();
    let mut successor = None;
    for _ in 0..150 {
        successor = lease_holder(&pool, "routing").await.filter(|h| *h != leader);
        if successor.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(successor.is_some(), "another node took the routing lease");
    // The crashed node left its row: the cluster is degraded and says which node.
    let dead = format!("node {leader} has not heartbeat");
    let (code, out) = status(2, &dead);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains(&dead), "{out}");
    eprintln!("the routing lease moved at {:.1?}", began.elapsed());
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM conversations WHERE state = 'waiting'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(states.len(), WAITING, "every waiting patient is still waiting");
    // Patients whose socket was on the dead node reconnect through the balancer and find their chat.
    for (i, ws) in waiting_sockets.iter_mut().enumerate() {
        let ping = json!({"v": 1, "type": "ping"}).to_string();
        let alive = ws.try_send_text(&ping).await.is_ok()
            && next_where(ws, 2, |v| v["type"] == "pong").await.is_some();
        if !alive {
            *ws = patient_socket(&lb, &tokens[CONVERSATIONS + i]).await;
        }
    }
    let first = logs[0].lock().unwrap().offers.len();
    nurses[0].send("ready").await.unwrap();
    let mut order = Vec::new();
    for _ in 0..300 {
        order = logs[0].lock().unwrap().offers[first..].to_vec();
        if order.len() >= WAITING {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(order, waiting, "the new leader offers in the original order");
    let lost: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM conversations c WHERE state = 'assigned' AND \
         (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) < 2 AND c.id = ANY($1)",
    )
    .bind(&conversations)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(lost, 0, "every acknowledged message is stored");

    // Every audit event reached the SIEM once, although its delivery moved with the lease.
    let hashes: Vec<String> = sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut delivered = false;
    for _ in 0..300 {
        if hashes.iter().all(|h| siem.lock().unwrap().seen.contains_key(h)) {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "every audit event reached the SIEM");
    // A handover between live nodes repeats nothing; killing the delivering node mid-post can repeat the one
    // event in flight, with the same id and body (a receiver keeping ids sees it once).
    let killed_the_deliverer = siem_holder.as_deref() == Some(leader.as_str());
    let repeated = siem.lock().unwrap().seen.values().filter(|(_, n)| *n > 1).count();
    assert!(
        repeated <= usize::from(killed_the_deliverer),
        "{repeated} events posted twice (the delivering node was killed: {killed_the_deliverer})"
    );
    assert!(
        siem.lock().unwrap().changed.is_empty(),
        "a repeat carries the same body"
    );
    if killed_the_deliverer {
        let now = lease_holder(&pool, "siem-delivery").await;
        assert!(
            now.is_some_and(|h| h != leader),
            "the SIEM delivery moved with its lease"
        );
    }

    // The chain three nodes wrote verifies, online and as an offline export with a checkpoint: one signing
    // key for the cluster.
    let (code, out) = crate::common::examroom(&["audit", "verify", "--config", cfg]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = crate::common::examroom(&["audit", "checkpoint", "--config", cfg]);
    assert_eq!(code, Some(0), "{out}");
    let export = dir.path().join("export");
    let (code, out) = crate::common::examroom(&[
        "audit",
        "export",
        "--config",
        cfg,
        "--out",
        export.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = crate::common::examroom(&[
        "audit",
        "verify",
        "--events",
        export.join("events.jsonl").to_str().unwrap(),
        "--checkpoints",
        export.join("checkpoints.jsonl").to_str().unwrap(),
        "--public-key",
        export.join("audit-public-key.hex").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("audit export intact"), "{out}");

    // `examroom drain` of the routing leader: it leaves at once (no live visit), its process exits cleanly, and
    // the lease is handed over without waiting for it to be declared dead.
    let successor = successor.unwrap();
    let (code, out) = crate::common::examroom(&["drain", "--config", cfg, "--node", &successor]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("left the cluster"), "{out}");
    let index: usize = successor.trim_start_matches("node-").parse::<usize>().unwrap() - 1;
    let mut drained = nodes[index].take().unwrap();
    let mut exited = None;
    for _ in 0..200 {
        exited = drained.child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    assert!(
        drained
            .stderr
            .lines()
            .iter()
            .any(|l| l.contains("drain requested"))
    );
    drained.assert_no_panic();
    let last = (0..3).find(|i| *i != index && *i != leader_index).unwrap();
    let mut holder = None;
    for _ in 0..40 {
        holder = lease_holder(&pool, "routing").await;
        if holder.as_deref() == Some(format!("node-{}", last + 1).as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        holder,
        Some(format!("node-{}", last + 1)),
        "the lease was handed over"
    );
    let (_, out) = crate::common::examroom(&["cluster", "status", "--config", cfg]);
    assert!(!out.contains(&successor), "a drained node leaves no row: {out}");
    for n in nodes.iter().flatten() {
        n.assert_no_panic();
    }
}
