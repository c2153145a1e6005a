//! A video visit in Chromium that outlives its server (`tests/browser/failover-flow.mjs`): three `examroom dev`
//! nodes on one PostgreSQL database behind HAProxy, the patient and the nurse through the balancer. The visit's
//! host is killed (`kill -9`): another node adopts the visit and both browsers decode video again on a new peer
//! connection; that node is then drained (SIGTERM) and the visit moves once more. The recording's parts are
//! stored and linked. What each interruption cost is printed (`measured:`), for the README.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::chat::FAST_ROUTING;
use crate::cluster_support::haproxy;
use crate::common::{Broker, free_port};

fn prerequisites() -> bool {
    let ok = std::path::Path::new("/usr/bin/chromium").exists()
        && Command::new("haproxy").arg("-v").output().is_ok();
    if !ok {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "chromium and haproxy are required"
        );
    }
    ok
}

fn wait_file(path: &std::path::Path, limit: Duration, script: &mut std::process::Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = script.try_wait().unwrap() {
            panic!("the browser script ended ({status}) before {}", path.display());
        }
        assert!(start.elapsed() < limit, "no {}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_visit_survives_kill_9_of_its_host_and_a_drain_in_chromium() {
    if !prerequisites() {
        return;
    }
    let Some(database) = crate::storage::postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lb_port = free_port();
    let lb = format!("http://127.0.0.1:{lb_port}");
    let addrs: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.{}:{}", i + 2, free_port()))
        .collect();
    let mut nodes: Vec<Option<Broker>> = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let id = format!("node-{}", i + 1);
        let ip = format!("127.0.0.{}", i + 2);
        let (internal, media) = (format!("{ip}:0"), format!("[\"{ip}\"]"));
        let mut env: Vec<(&str, &str)> = FAST_ROUTING.to_vec();
        env.extend([
            ("EXAMROOM_DATABASE__URL", database.as_str()),
            ("EXAMROOM_CLUSTER__NODE_ID", id.as_str()),
            ("EXAMROOM_CLUSTER__INTERNAL_LISTEN", internal.as_str()),
            ("EXAMROOM_CLUSTER__HEARTBEAT_SECONDS", "1"),
            ("EXAMROOM_CLUSTER__DEAD_AFTER_SECONDS", "3"),
            ("EXAMROOM_MEDIA__BIND_IPS", media.as_str()),
        ]);
        nodes.push(Some(Broker::dev_at(
            Broker::command(),
            &data,
            &env,
            &["--listen", addr, "--public-url", &lb],
        )));
    }
    let _lb = haproxy(dir.path(), lb_port, &addrs);
    let http = crate::common::client();
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
    let host = || async {
        sqlx::query_scalar::<_, String>("SELECT host_node FROM visit_hosts")
            .fetch_optional(&pool)
            .await
            .unwrap()
    };

    let markers = dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let mut script = Command::new("node")
        .arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/failover-flow.mjs"))
        .arg(&lb)
        .arg(data.join("dev-idp/credentials.json"))
        .arg(crate::video::artifacts())
        .arg(&markers)
        .env("TEST_OIDC_PROVIDER_DIR", crate::common::support_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // kill -9 of the host once video flows.
    wait_file(&markers.join("live"), Duration::from_secs(120), &mut script);
    let first = host().await.expect("a visit host");
    let index = |node: &str| node.trim_start_matches("node-").parse::<usize>().unwrap() - 1;
    let mut dead = nodes[index(&first)].take().unwrap();
    dead.child.kill().unwrap();
    let _ = dead.child.wait();
    // The time of the kill, for the browser to measure the interruption from (one machine, one clock).
    std::fs::write(
        markers.join("killed"),
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis())
        .to_string(),
    )
    .unwrap();

    // SIGTERM to the node that adopted it once video is back.
    wait_file(&markers.join("recovered"), Duration::from_secs(120), &mut script);
    let second = host().await.expect("adopted");
    assert_ne!(second, first);
    let pid = nodes[index(&second)].as_ref().unwrap().child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(
        markers.join("drained"),
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis())
        .to_string(),
    )
    .unwrap();

    let out = script.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let logs: Vec<String> = nodes
        .iter()
        .flatten()
        .map(|n| n.stderr.lines().join("\n"))
        .collect();
    assert!(
        out.status.success() && log.contains("browser failover flow passed"),
        "failover-flow.mjs failed:\n{log}\nnodes:\n{}",
        logs.join("\n----\n")
    );
    for line in log
        .lines()
        .filter(|l| l.starts_with("measured:") || l.starts_with("step:"))
    {
        println!("{line}");
    }
    // The drained node exited cleanly; the visit's recording parts are linked (the killed node's spool waits
    // for its restart).
    let drained = nodes[index(&second)].as_mut().unwrap();
    let start = Instant::now();
    while drained.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the drained node did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let continued: Vec<String> = sqlx::query_scalar(
        "SELECT manifest FROM recordings WHERE manifest LIKE '%\"continues\"%' ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(continued.len(), 2, "{continued:?}");
    for n in nodes.iter().flatten() {
        n.assert_no_panic();
    }
}
