//! SIEM delivery over mutual TLS: HAProxy terminates TLS in front of two receivers started by the test and
//! requires a client certificate issued by the test's CA. The webhook with the client certificate and the
//! pinned CA gets every event; one without a client certificate, and one pinning another CA, get nothing and
//! their delivery cursors do not move (nothing is lost: they would deliver once fixed).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Broker, free_port};

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate it issues for `name` with the given extensions.
fn issue(dir: &Path, ca: &str, name: &str, ext: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let subj = format!("/CN={name}");
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(&req, dir);
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let (ca_crt, ca_key, extfile) = (format!("{ca}.crt"), format!("{ca}.key"), format!("{name}.ext"));
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &crt,
            "-extfile",
            &extfile,
        ],
        dir,
    );
}

fn authority(dir: &Path, name: &str) {
    let (key, crt, subj) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN={name}"),
    );
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &subj,
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
        dir,
    );
}

async fn cursor(data: &Path, hook: &str) -> i64 {
    let pool = crate::storage::pool(data).await;
    let row: Option<(i64,)> = sqlx::query_as("SELECT last_seq FROM siem_cursors WHERE name = $1")
        .bind(hook)
        .fetch_optional(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.map_or(0, |(s,)| s)
}

#[tokio::test]
async fn events_reach_a_receiver_that_requires_a_client_certificate_and_no_other() {
    let have = |bin: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("haproxy") && have("openssl")) {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "haproxy and openssl are required"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    authority(d, "ca");
    authority(d, "other-ca");
    issue(
        d,
        "ca",
        "receiver",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    issue(d, "ca", "broker", "extendedKeyUsage=clientAuth\n");
    let pem = d.join("receiver.pem");
    std::fs::write(
        &pem,
        std::fs::read_to_string(d.join("receiver.crt")).unwrap()
            + &std::fs::read_to_string(d.join("receiver.key")).unwrap(),
    )
    .unwrap();

    let (with_cert, with_port) = crate::siem::receiver().await;
    let (without_cert, without_port) = crate::siem::receiver().await;
    for r in [&with_cert, &without_cert] {
        r.lock().unwrap().up = true;
    }
    let (tls_a, tls_b) = (free_port(), free_port());
    let ca = d.join("ca.crt");
    // Both front ends refuse a client without a certificate issued by the test's CA.
    let config = format!(
        "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
         frontend a\n  bind 127.0.0.1:{tls_a} ssl crt {pem} ca-file {ca} verify required\n  default_backend a\n\
         frontend b\n  bind 127.0.0.1:{tls_b} ssl crt {pem} ca-file {ca} verify required\n  default_backend b\n\
         backend a\n  server a 127.0.0.1:{with_port}\nbackend b\n  server b 127.0.0.1:{without_port}\n",
        pem = pem.display(),
        ca = ca.display(),
    );
    let cfg = d.join("haproxy.cfg");
    std::fs::write(&cfg, config).unwrap();
    let _proxy = Haproxy(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let secret = d.join("siem-secret");
    std::fs::write(&secret, crate::siem::SECRET).unwrap();
    let (s, cert, key, other) = (
        secret.display(),
        d.join("broker.crt"),
        d.join("broker.key"),
        d.join("other-ca.crt"),
    );
    let hooks = format!(
        "[{{name = \"mtls\", url = \"https://127.0.0.1:{tls_a}/hook\", secret_file = \"{s}\", ca_file = \"{ca}\", \
         client_cert_file = \"{cert}\", client_key_file = \"{key}\"}}, \
         {{name = \"no-cert\", url = \"https://127.0.0.1:{tls_b}/hook\", secret_file = \"{s}\", ca_file = \"{ca}\"}}, \
         {{name = \"other-ca\", url = \"https://127.0.0.1:{tls_a}/hook\", secret_file = \"{s}\", \
         ca_file = \"{other}\", client_cert_file = \"{cert}\", client_key_file = \"{key}\"}}]",
        ca = ca.display(),
        cert = cert.display(),
        key = key.display(),
        other = other.display(),
    );
    let data = d.join("data");
    let broker = Broker::dev(&data, &[("EXAMROOM_SIEM__WEBHOOKS", hooks.as_str())]);
    for user in ["compliance", "nurse"] {
        crate::demo::staff_cookie(&broker.url, &data, user).await;
    }
    let events: Vec<(i64,)> = crate::chat::query_db(&data, "SELECT seq FROM audit_events").await;
    assert!(events.len() >= 2, "sign-ins are audited");
    let last = events.iter().map(|(s,)| *s).max().unwrap();
    let mut delivered = 0;
    for _ in 0..150 {
        // The cursor first: it moves only after the receiver answered, so what it counts has arrived.
        let done = cursor(&data, "mtls").await >= last;
        delivered = with_cert.lock().unwrap().seen.len();
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered >= events.len(),
        "the receiver requiring a client certificate got every event ({delivered} of {})",
        events.len()
    );
    // The failing webhooks have retried meanwhile (their first retry comes after a second).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        without_cert.lock().unwrap().seen.is_empty(),
        "no event passes without a client certificate"
    );
    assert_eq!(cursor(&data, "no-cert").await, 0, "nothing counted as delivered");
    assert_eq!(
        cursor(&data, "other-ca").await,
        0,
        "a receiver whose certificate another CA issued is not trusted"
    );
    assert!(cursor(&data, "mtls").await > 0);
    broker.assert_no_panic();
}
