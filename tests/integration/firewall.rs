//! A hospital network that drops UDP: Chromium in a namespace whose nftables drop every UDP packet it sends,
//! the broker (and coturn) in another, joined by a veth. Video still works, over the SFU's passive ICE-TCP
//! candidates when it offers them, and through coturn over TCP when it does not; and the rule is real: the
//! same browser gets no UDP through at all. With TCP dropped too except to 443, through coturn over TLS on 443
//! (coturn run from `deploy/coturn.example.conf`, its certificate from a test CA that Chromium trusts through
//! its NSS database). The widget's pre-call test says so first: "Video will work" over each of those, "Audio
//! only" with the camera blocked, and "Blocked" when the media ports are dropped over TCP too and no TURN server
//! is configured, or when Chromium does not trust the TURN server's certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    /// `tcp`: an nftables rule for TCP the firewall drops as well.
    fn build(tcp: &str) -> Topology {
        let (broker, client) = Netns::pair(["fb", "fc"], [BROKER, CLIENT]);
        // The firewall: nothing leaves the client over UDP (STUN, media, TURN over UDP), loopback aside.
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

/// coturn in the broker's namespace, stopped by its PID.
struct Coturn(std::process::Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test CA, and a certificate it signed for the broker's address (TURN over TLS); returns (CA, cert, key).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_key, ca, key, csr, cert) = (
        dir.join("ca.key"),
        dir.join("ca.pem"),
        dir.join("turn.key"),
        dir.join("turn.csr"),
        dir.join("turn.pem"),
    );
    let openssl = |args: &[&str]| {
        crate::netns::run(Command::new("openssl").args(args).stderr(Stdio::null()));
    };
    let p = |p: &PathBuf| p.display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=examroom test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=turn.examroom.test",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
    ]);
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        format!("subjectAltName=IP:{BROKER},DNS:turn.examroom.test\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (ca, cert, key)
}

/// A home directory whose NSS database trusts `ca`: Chromium on Linux verifies TURN servers' certificates
/// against it, as it would a CA a hospital's IT installed.
fn home_trusting(dir: &Path, ca: &Path) -> PathBuf {
    let home = dir.join("home");
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    crate::netns::run(Command::new("certutil").args(["-N", "--empty-password", "-d", &db]));
    crate::netns::run(
        Command::new("certutil")
            .args(["-A", "-n", "examroom test CA", "-t", "C,,", "-d", &db, "-i"])
            .arg(ca),
    );
    home
}

/// coturn as `deploy/coturn.example.conf` ships, in the broker's namespace: its addresses, secret, realm and
/// certificate replaced; TURN over TCP on 3478 and over TLS on 443.
fn coturn(net: &Topology, dir: &Path, secret: &str, cert: &Path, key: &Path) -> Coturn {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/coturn.example.conf")).unwrap();
    let config: String = example
        .lines()
        .map(|l| match l.split('=').next().unwrap_or_default() {
            "listening-ip" => format!("listening-ip={BROKER}"),
            "static-auth-secret" => format!("static-auth-secret={secret}"),
            "cert" => format!("cert={}", cert.display()),
            "pkey" => format!("pkey={}", key.display()),
            "allowed-peer-ip" => format!("allowed-peer-ip={BROKER}"),
            _ => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect();
    for line in [
        "listening-ip=",
        "static-auth-secret=",
        "cert=",
        "pkey=",
        "allowed-peer-ip=",
        "tls-listening-port=443",
    ] {
        assert!(example.contains(line), "the example no longer has {line}");
    }
    let file = dir.join("turnserver.conf");
    std::fs::write(&file, config).unwrap();
    let child = net
        .broker
        .command("turnserver")
        .arg("-c")
        .arg(&file)
        .arg(format!("--relay-ip={BROKER}"))
        .arg(format!("--pidfile={}", dir.join("turnserver.pid").display()))
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .arg(format!("--log-file={}", dir.join("turnserver.log").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver");
    // Up once both 3478 (0x0D96) and 443 (0x01BB) listen.
    for _ in 0..100 {
        let up = net
            .broker
            .command("sh")
            .args([
                "-c",
                "grep -qi ':0D96 ' /proc/net/tcp && grep -qi ':01BB ' /proc/net/tcp",
            ])
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
    // `blocked`: the SFU's ports are dropped over TCP too; `turns`: everything but 443 (and the web server).
    let tcp = match mode {
        "blocked" => "tcp dport 40000-40049 drop",
        "turns" | "turns-untrusted" => "tcp dport { 3478, 40000-40049 } drop",
        _ => "",
    };
    let net = Topology::build(tcp);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret_file = dir.path().join("turn-secret");
    std::fs::write(&secret_file, "firewall-test-secret").unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    // `turns-untrusted`: the same, but Chromium does not trust the test CA, so TURN over TLS must fail.
    let home = if mode == "turns-untrusted" {
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        home
    } else {
        home_trusting(dir.path(), &ca)
    };
    let _turn = coturn(&net, dir.path(), "firewall-test-secret", &cert, &key);
    let bind = format!("[\"{BROKER}\"]");
    let turn_urls = if mode.starts_with("turns") {
        format!("[\"turns:{BROKER}:443?transport=tcp\"]")
    } else {
        format!("[\"turn:{BROKER}:3478?transport=tcp\"]")
    };
    let secret = secret_file.display().to_string();
    let mut env = crate::chat::FAST_ROUTING.to_vec();
    env.extend([
        ("EXAMROOM_MEDIA__BIND_IPS", bind.as_str()),
        ("EXAMROOM_MEDIA__UDP_PORT_MIN", "40000"),
        ("EXAMROOM_MEDIA__UDP_PORT_MAX", "40049"),
    ]);
    if mode.starts_with("turn") {
        env.extend([
            ("EXAMROOM_MEDIA__ICE_TCP", "false"),
            ("EXAMROOM_MEDIA__TURN_URLS", turn_urls.as_str()),
            ("EXAMROOM_MEDIA__TURN_SECRET_FILE", secret.as_str()),
        ]);
    }
    let broker = net.broker.dev_broker(&data, &env, BROKER, BROKER);
    let passed = format!("browser firewall flow: {mode} passed");
    let mut node = net.client.command("node");
    node.env("HOME", &home);
    let log = run_browser_script(node, "firewall-flow.mjs", &broker, &data, &[mode], &passed);
    assert!(
        net.dropped_udp() > 0,
        "the browser tried UDP and the firewall dropped it"
    );
    broker.assert_no_panic();
    log
}

#[test]
fn video_works_with_udp_blocked_over_ice_tcp_turn_tcp_and_turns_443_and_the_pre_call_test_says_so() {
    if !crate::netns::browser_prerequisites(&["/usr/bin/turnserver"]) {
        return;
    }
    for mode in ["ice-tcp", "turn-tcp", "turns", "turns-untrusted", "blocked"] {
        let log = video_with_udp_blocked(mode);
        for line in log
            .lines()
            .filter(|l| l.contains("framesDecoded") || l.starts_with("pre-call"))
        {
            println!("{mode}: {line}");
        }
    }
}
