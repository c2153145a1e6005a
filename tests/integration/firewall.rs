//! A hospital network that drops UDP: Chromium in a namespace whose nftables drop every UDP packet it sends,
//! the broker (and coturn) in another, joined by a veth. Video still works, over the SFU's passive ICE-TCP
//! candidates when it offers them, and through coturn over TCP when it does not; and the rule is real: the
//! same browser gets no UDP through at all. The widget's pre-call test says so first: "Video will work" over
//! ICE-TCP and over TURN/TCP, "Audio only" with the camera blocked, and "Blocked" when the media ports are
//! dropped over TCP too and no TURN server is configured.

use crate::common::run_browser_script;
use crate::netns::Netns;

const BROKER: &str = "10.20.0.2";
const CLIENT: &str = "10.20.0.3";

/// broker (10.20.0.2) ── veth ── client (10.20.0.3), the client dropping UDP.
struct Topology {
    broker: Netns,
    client: Netns,
}

impl Topology {
    /// `media_tcp_blocked`: the firewall also drops TCP to the SFU's ports (nothing but the web server gets through).
    fn build(media_tcp_blocked: bool) -> Topology {
        let (broker, client) = (Netns::new("fb"), Netns::new("fc"));
        broker.ip(&format!(
            "link add eth0 type veth peer name eth0 netns {}",
            client.0
        ));
        for (ns, addr) in [(&broker, BROKER), (&client, CLIENT)] {
            ns.ip(&format!("addr add {addr}/24 dev eth0"));
            ns.ip("link set eth0 up");
            ns.ip("link set lo up");
        }
        // The firewall: nothing leaves the client over UDP (STUN, media, TURN over UDP), loopback aside.
        let tcp = if media_tcp_blocked {
            "tcp dport 40000-40049 drop"
        } else {
            ""
        };
        client.nft(&format!(
            r#"
table inet firewall {{
  chain output {{
    type filter hook output priority filter; policy accept;
    oif "lo" accept
    meta l4proto udp counter drop
    {tcp}
  }}
}}
"#
        ));
        Topology { broker, client }
    }

    /// UDP packets the client's firewall dropped so far.
    fn dropped_udp(&self) -> u64 {
        let out = self
            .client
            .command("nft")
            .args(["list", "table", "inet", "firewall"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("packets ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// coturn in the broker's namespace, TCP and UDP on 3478, stopped by its PID.
struct Coturn(std::process::Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn coturn(net: &Topology, dir: &std::path::Path, secret: &str) -> Coturn {
    let child = net
        .broker
        .command("turnserver")
        .args([
            "-n",
            "--use-auth-secret",
            "--realm=examroom.test",
            "--allow-loopback-peers",
        ])
        .args([
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--simple-log",
            "--listening-port=3478",
        ])
        .args(["--min-port=49160", "--max-port=49300"])
        .arg(format!("--listening-ip={BROKER}"))
        .arg(format!("--relay-ip={BROKER}"))
        .arg(format!("--static-auth-secret={secret}"))
        .arg(format!("--pidfile={}", dir.join("turnserver.pid").display()))
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .arg(format!("--log-file={}", dir.join("turnserver.log").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("turnserver");
    for _ in 0..100 {
        let up = net
            .broker
            .command("sh")
            .args(["-c", "grep -qi ':0D96 ' /proc/net/tcp"])
            .status()
            .is_ok_and(|s| s.success());
        if up {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Coturn(child)
}

fn video_with_udp_blocked(mode: &str) -> String {
    let net = Topology::build(mode == "blocked");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret_file = dir.path().join("turn-secret");
    std::fs::write(&secret_file, "firewall-test-secret").unwrap();
    let _turn = coturn(&net, dir.path(), "firewall-test-secret");
    let bind = format!("[\"{BROKER}\"]");
    let turn_urls = format!("[\"turn:{BROKER}:3478?transport=tcp\"]");
    let secret = secret_file.display().to_string();
    let mut env = crate::chat::FAST_ROUTING.to_vec();
    env.extend([
        ("EXAMROOM_MEDIA__BIND_IPS", bind.as_str()),
        ("EXAMROOM_MEDIA__UDP_PORT_MIN", "40000"),
        ("EXAMROOM_MEDIA__UDP_PORT_MAX", "40049"),
    ]);
    if mode == "turn-tcp" {
        env.extend([
            ("EXAMROOM_MEDIA__ICE_TCP", "false"),
            ("EXAMROOM_MEDIA__TURN_URLS", turn_urls.as_str()),
            ("EXAMROOM_MEDIA__TURN_SECRET_FILE", secret.as_str()),
        ]);
    }
    let broker = net.broker.dev_broker(&data, &env, BROKER, BROKER);
    let passed = format!("browser firewall flow: {mode} passed");
    let log = run_browser_script(
        net.client.command("node"),
        "firewall-flow.mjs",
        &broker,
        &data,
        &[mode],
        &passed,
    );
    assert!(
        net.dropped_udp() > 0,
        "the browser tried UDP and the firewall dropped it"
    );
    broker.assert_no_panic();
    log
}

#[test]
fn video_works_with_udp_blocked_over_ice_tcp_and_over_turn_tcp_and_the_pre_call_test_says_so() {
    if !crate::netns::browser_prerequisites(&["/usr/bin/turnserver"]) {
        return;
    }
    for mode in ["ice-tcp", "turn-tcp", "blocked"] {
        let log = video_with_udp_blocked(mode);
        for line in log
            .lines()
            .filter(|l| l.contains("framesDecoded") || l.starts_with("pre-call"))
        {
            println!("{mode}: {line}");
        }
    }
}
