//! `deploy/examroom.example.toml` is a real production configuration: it passes `check-config` with only its
//! key files created, `check-config` refuses it without TURN and warns when media would stay on loopback, and
//! the broker starts from it — PostgreSQL, S3 with Object Lock (moto), the staff and portal providers (panva
//! oidc-provider) standing in for the example's placeholders — and staff and patients sign in.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{
    Broker, OidcProvider, SendJson, TestKey, client, free_port, location, op_id_token, op_interactions,
};

pub const EXAMPLE: &str = include_str!("../../deploy/examroom.example.toml");

/// The example with every `/etc/examroom/…` file it names created under `dir` (keys of the right shape, the
/// shipped policies, a database URL of `database_url`), and the text pointing at them.
pub fn example_config(dir: &Path, database_url: &str) -> String {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let hex_key = || examroom::ids::random_hex(32);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "audit-signing.pk8",
            examroom::audit::checkpoint::Signer::generate_pkcs8(),
        ),
        ("database-url", database_url.into()),
        ("staff-client-secret", "staff-secret-for-tests\n".into()),
        ("kek-2026.hex", hex_key().into()),
        ("pseudonym.key", hex_key().into()),
        ("cluster.key", hex_key().into()),
        ("turn-secret", hex_key().into()),
        ("s3-secret-key", "examroom-secret".into()),
        ("siem-secret", hex_key().into()),
        ("metrics-token", "metrics-token-for-tests".into()),
        (
            "access.toml",
            std::fs::read(root.join("policies/access.toml")).unwrap(),
        ),
        (
            "recording.toml",
            std::fs::read(root.join("policies/recording.toml")).unwrap(),
        ),
    ];
    let mut files = files;
    files.extend(siem_certificates(dir));
    for (name, content) in &files {
        let path = etc.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    // Every file the example's settings name is one of those: a new key file must be added above.
    for line in EXAMPLE.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for named in line.split("/etc/examroom/").skip(1) {
            let name: String = named
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-._".contains(*c))
                .collect();
            assert!(
                files.iter().any(|(f, _)| *f == name),
                "the example names /etc/examroom/{name}, which this test does not create"
            );
        }
    }
    let text = EXAMPLE.replace("/etc/examroom/", &format!("{}/", etc.display()));
    text.replace("/var/lib/examroom", &dir.join("data").display().to_string())
}

/// A CA and the client certificate it issued (EC P-256, made with openssl): the example's mutual TLS to the SIEM.
fn siem_certificates(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let work = dir.join("siem-ca");
    std::fs::create_dir_all(&work).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
    ];
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut ca = vec![
        "req",
        "-x509",
        "-subj",
        "/CN=siem-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    ca.extend(ec);
    run(&ca);
    let mut req = vec![
        "req",
        "-subj",
        "/CN=examroom",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ];
    req.extend(&ec[..5]);
    run(&req);
    // A v3 certificate (rustls refuses v1): `-extfile` adds the extension that makes it one.
    std::fs::write(work.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "x509",
        "-extfile",
        "client.ext",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "client.pem",
    ]);
    let read = |f: &str| std::fs::read(work.join(f)).unwrap();
    vec![
        ("siem-ca.pem", read("ca.pem")),
        ("siem-client.pem", read("client.pem")),
        ("siem-client.key", read("client.key")),
    ]
}

fn check_config(text: &str, dir: &Path) -> (Option<i32>, String) {
    let path = dir.join("examroom.toml");
    std::fs::write(&path, text).unwrap();
    crate::common::examroom(&["check-config", "--config", path.to_str().unwrap()])
}

#[test]
fn the_shipped_example_is_valid_and_refused_without_turn() {
    let dir = tempfile::tempdir().unwrap();
    let text = example_config(dir.path(), "postgres://examroom@db.internal:5432/examroom");
    let (code, out) = check_config(&text, dir.path());
    assert_eq!(code, Some(0), "the shipped example is valid:\n{out}");
    assert!(!out.contains("warning"), "{out}");

    // No TURN in a configuration served over https: refused, naming the key.
    let start = text.find("turn_urls = [").unwrap();
    let end = start + text[start..].find("]\n").unwrap() + 2;
    let without_turn = format!("{}turn_urls = []\n{}", &text[..start], &text[end..]);
    let (code, out) = check_config(&without_turn, dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("media.turn_urls: a deployment served over https needs a TURN server"),
        "{out}"
    );
    // Only a STUN server is no better.
    let stun_only = format!(
        "{}turn_urls = [\"stun:stun.hospital.example:3478\"]\n{}",
        &text[..start],
        &text[end..]
    );
    assert_eq!(check_config(&stun_only, dir.path()).0, Some(2));

    // Media bound to loopback while browsers come from elsewhere: valid, with a warning naming the key.
    let loopback = text.replace("bind_ips = [\"10.0.0.10\"]", "bind_ips = [\"127.0.0.1\"]");
    let (code, out) = check_config(&loopback, dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("warning: media.bind_ips: only loopback addresses"),
        "{out}"
    );

    // On PostgreSQL (several nodes may share it) no key may be generated per node: each unset key is named.
    let mut per_node = text.clone();
    for key in ["kek_files = [", "pseudonym_key_file = ", "signing_key_file = "] {
        let start = per_node.find(key).unwrap();
        let end = start + per_node[start..].find('\n').unwrap() + 1;
        per_node.replace_range(start..end, "");
    }
    let (code, out) = check_config(&per_node, dir.path());
    assert_eq!(code, Some(2), "{out}");
    for key in [
        "messaging.kek_files",
        "logging.pseudonym_key_file",
        "audit.signing_key_file",
    ] {
        assert!(
            out.contains(&format!(
                "{key}: with PostgreSQL every node must use the same key"
            )),
            "{key}: {out}"
        );
    }

    // A key file others can read is refused, naming its key and the file.
    let kek = dir.path().join("etc/kek-2026.hex");
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (code, out) = check_config(&text, dir.path());
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("messaging.kek_files[0]:")
            && out.contains("kek-2026.hex is readable or writable by group or others"),
        "{out}"
    );
    // Metrics published without a token in a deployment: refused.
    let open_metrics = text.replace(
        &format!(
            "metrics_token_file = \"{}/etc/metrics-token\"",
            dir.path().display()
        ),
        "",
    );
    assert_ne!(open_metrics, text);
    let (code, out) = check_config(&open_metrics, dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("server.metrics_token_file"), "{out}");

    // An announced address that names no bind address is refused, naming the entry.
    let stray = text.replace(
        "announced_ips = [\"203.0.113.10\"]",
        "announced_ips = [\"203.0.113.10/10.0.0.99\"]",
    );
    let (code, out) = check_config(&stray, dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("media.announced_ips[0]: 10.0.0.99 is not in media.bind_ips"),
        "{out}"
    );
}

/// The example's placeholders filled with this test's real components: the providers' URLs and client names,
/// the S3 endpoint, the listener's port. Everything else is as shipped (the SFU binds its address only when
/// someone joins video, which this test does not).
fn filled(text: &str, broker_port: u16, issuer: &str, s3: &str) -> String {
    text.replace("127.0.0.1:8080", &format!("127.0.0.1:{broker_port}"))
        .replace("10.0.0.10:9090", &format!("127.0.0.1:{}", free_port()))
        .replace("https://login.hospital.example", issuer)
        .replace("https://portal-login.hospital.example", issuer)
        .replace("client_id = \"examroom\"", "client_id = \"examroom-staff\"")
        .replace(
            "audiences = [\"patient-portal\"]",
            "audiences = [\"clinic-portal\"]",
        )
        .replace("\"examroom-nurses\" = \"nurse\"", "\"g-nurses\" = \"nurse\"")
        .replace(
            "\"examroom-compliance\" = \"compliance_officer\"",
            "\"g-compliance\" = \"compliance_officer\"",
        )
        .replace("https://s3.eu-central-1.amazonaws.com", s3)
        .replace("path_style = false", "path_style = true")
        // The SIEM receiver: nothing listens there, so deliveries wait (as they would for an unreachable SOC).
        .replace(
            "https://siem.hospital.example/examroom",
            "https://127.0.0.1:9/examroom",
        )
}

#[tokio::test]
async fn the_broker_starts_from_the_example_and_staff_and_patients_sign_in() {
    let Some(database) = crate::storage::postgres_database().await else {
        return;
    };
    let Some(moto) = crate::s3::moto(free_port()) else {
        assert!(
            std::env::var("TEST_REQUIRE_S3").is_err(),
            "TEST_MOTO_SERVER is required"
        );
        return;
    };
    crate::s3::raw_client(&moto.endpoint)
        .await
        .create_bucket()
        .bucket("hospital-examroom-recordings")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::generate("key-1");
    // The provider redirects to the public URL, as a real one does; the test plays the TLS proxy.
    let op = OidcProvider::start(
        dir.path(),
        free_port(),
        &[&key],
        "https://examroom.hospital.example/auth/callback",
    );
    let port = free_port();
    let text = filled(
        &example_config(dir.path(), &database),
        port,
        &op.issuer,
        &moto.endpoint,
    );
    let config = dir.path().join("examroom.toml");
    std::fs::write(&config, text).unwrap();
    let broker = Broker::serve(&config, &format!("http://127.0.0.1:{port}"));
    let url = broker.url.clone();

    // Staff: authorization code + PKCE through the provider's pages, back through the "proxy".
    let http = client();
    let resp = http.get(format!("{url}/auth/login")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let back = op_interactions(&http, &op, &location(&resp), "nurse-1").await;
    let behind_proxy = back.replace("https://examroom.hospital.example", &url);
    assert_ne!(back, behind_proxy, "{back}");
    let resp = http.get(&behind_proxy).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with("__Host-") && set_cookie.contains("; Secure"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let me: Value = http
        .get(format!("{url}/api/v1/me"))
        .header("cookie", &cookie)
        .json_body()
        .await;
    assert_eq!(me["roles"], serde_json::json!(["nurse"]), "{me}");

    // Patient: the portal's ID token opens a session.
    let id_token = op_id_token(
        &op,
        "clinic-portal",
        "http://127.0.0.1:9/portal-callback",
        "patient-7",
    )
    .await;
    let resp = client()
        .post(format!("{url}/api/v1/patient/sessions"))
        .bearer_auth(&id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Metrics need the bearer token.
    let metrics = |token: Option<&str>| {
        let req = http.get(format!("{url}/metrics"));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    assert_eq!(metrics(None).await.unwrap().status(), 401);
    assert_eq!(metrics(Some("wrong")).await.unwrap().status(), 401);
    let ok = metrics(Some("metrics-token-for-tests")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("examroom_"));

    // The broker is ready on PostgreSQL and says it serves over TLS (HSTS).
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.headers().contains_key("strict-transport-security"));
    broker.assert_no_panic();
    assert!(
        !broker
            .stderr
            .lines()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("media.bind_ips")),
        "no warning for the example's media addresses"
    );
}

/// `examroom network-requirements` on the shipped example: hospital IT's allowlist, without a credential.
#[test]
fn the_example_prints_its_network_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let text = example_config(
        dir.path(),
        "postgres://examroom:db-password@db.internal:5432/examroom",
    );
    let path = dir.path().join("examroom.toml");
    std::fs::write(&path, text).unwrap();
    let (code, out) = crate::common::examroom(&["network-requirements", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    for expected in [
        "browsers  examroom.hospital.example",
        "browsers  203.0.113.10",
        "brokers   login.hospital.example",
        "brokers   portal-login.hospital.example",
        "brokers   s3.eu-central-1.amazonaws.com",
        "brokers   siem.hospital.example",
        "brokers   db.internal",
        "brokers   10.0.0.10",
    ] {
        assert!(out.contains(expected), "{expected} in:\n{out}");
    }
    assert!(out.contains("TURN over TLS"), "{out}");
    assert!(!out.contains("db-password"), "no credential is printed:\n{out}");
    let (code, json) = crate::common::examroom(&[
        "network-requirements",
        "--config",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0));
    let rules: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["protocol"] == "udp" && r["port"] == "40000-40999"),
        "{json}"
    );
}
