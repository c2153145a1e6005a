//! The TLS termination example, `deploy/haproxy.example.cfg`, as written (only its certificate, listen addresses
//! and backend replaced) in front of a broker: HTTPS answers, plain HTTP is redirected to HTTPS, and the chat
//! WebSocket is upgraded through the proxy. Clients are curl with the test CA.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::chat::start_dev;
use crate::common::free_port;

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_example_tls_proxy_serves_https_redirects_http_and_upgrades_websockets() {
    let have = |bin: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("haproxy") && have("openssl") && have("curl")) {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "haproxy, openssl and curl are required"
        );
        return;
    }
    let (_data_dir, _data, broker) = start_dev(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (key, cert, pem) = (
        dir.path().join("key.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("examroom.pem"),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&cert).unwrap(),
        std::fs::read_to_string(&key).unwrap()
    );
    std::fs::write(&pem, both).unwrap();

    let (tls_port, plain_port) = (free_port(), free_port());
    let backend = broker.url.trim_start_matches("http://").to_string();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.example.cfg")).unwrap();
    let config: String = example
        .lines()
        .filter(|l| !l.contains("server examroom-1") && !l.contains("server examroom-2"))
        .map(|l| {
            l.replace("/etc/haproxy/certs/examroom.pem", pem.to_str().unwrap())
                .replace("bind :443", &format!("bind 127.0.0.1:{tls_port}"))
                .replace("bind :80", &format!("bind 127.0.0.1:{plain_port}"))
                .replace("10.0.0.11:8080", &backend)
                .replace("maxconn 20000", "maxconn 1000")
        })
        .map(|l| l + "\n")
        .collect();
    assert_ne!(
        config, example,
        "the example still has the lines this test replaces"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &config).unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _proxy = Haproxy(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let resolve = format!("localhost:{tls_port}:127.0.0.1");
    let base = format!("https://localhost:{tls_port}");
    let cacert = cert.to_str().unwrap();
    let started = Instant::now();
    loop {
        let code = curl(&[
            "--cacert",
            cacert,
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/readyz"),
        ]);
        if code == "200" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no 200 over HTTPS through the proxy: {code}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let redirect = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!("http://127.0.0.1:{plain_port}/portal/"),
    ]);
    assert!(
        redirect.starts_with("301 https://"),
        "plain HTTP is redirected: {redirect}"
    );
    let upgrade = curl(&[
        "--cacert",
        cacert,
        "--resolve",
        &resolve,
        "--http1.1",
        "-i",
        "-N",
        "--max-time",
        "2",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        &format!("{base}/api/v1/ws"),
    ]);
    assert!(
        upgrade.starts_with("HTTP/1.1 101"),
        "the WebSocket is upgraded through the proxy:\n{upgrade}"
    );
    broker.assert_no_panic();
}
