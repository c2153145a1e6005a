//! Key rotation with the real broker and command line: a key-encryption key replaced (`keys rewrap`, then the
//! old key removed, every message still readable), an audit signing key replaced (checkpoints of both keys
//! verify, online and in an export, only while the old public key is kept), and the TURN secret replaced with
//! coturn accepting both secrets during the overlap and only the new one after.

use std::path::Path;

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::Broker;
use crate::demo::patient_token;

/// `examroom ARGS` with `env` (a dev data directory's commands see the environment `examroom dev` was given).
fn examroom_env(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::common::examroom_with_env(args, &env)
}

fn kek_env(files: &[&Path]) -> (&'static str, String) {
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("{:?}", f.display().to_string()))
        .collect();
    ("EXAMROOM_MESSAGING__KEK_FILES", format!("[{}]", list.join(", ")))
}

fn generate(kind: &str, out: &Path) -> String {
    let (code, text) =
        crate::common::examroom(&["keys", "generate", "--kind", kind, "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    text
}

fn dev(data: &Path, env: &[(&str, String)]) -> Broker {
    let mut all: Vec<(&str, &str)> = FAST_ROUTING.to_vec();
    all.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
    Broker::dev(data, &all)
}

#[tokio::test]
async fn a_rotated_kek_rewraps_every_data_key_and_the_old_one_can_be_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let (old, new) = (dir.path().join("kek-old.hex"), dir.path().join("kek-new.hex"));
    generate("kek", &old);
    assert!(
        crate::common::examroom(&[
            "keys",
            "generate",
            "--kind",
            "kek",
            "--out",
            old.to_str().unwrap()
        ])
        .1
        .contains("never overwritten"),
        "a key file is never overwritten"
    );

    // Two conversations under the old key.
    let env = [kek_env(&[&old])];
    let broker = dev(&data, &env);
    let token = patient_token(&broker.url, &data, "patient").await;
    let mut ws = Ws::patient(&broker.url, &token).await;
    let first = ws.start("triage", "kek-1").await;
    ws.say(&first, "m1", "my rash is spreading").await;
    let second = ws.start("spanish", "kek-2").await;
    ws.say(&second, "m2", "me duele la cabeza").await;
    drop(ws);
    drop(broker);

    // The new key first: new data keys are wrapped by it at once, old ones still open with the old key.
    let generated = generate("kek", &new);
    let new_id = generated.split_whitespace().nth(2).unwrap().to_string();
    let both = [kek_env(&[&new, &old])];
    let broker = dev(&data, &both);
    let mut ws = Ws::patient(&broker.url, &token).await;
    let third = ws.start("triage", "kek-3").await;
    ws.say(&third, "m3", "after the new key").await;
    let (code, status) = examroom_env(&["keys", "status", "--data-dir", data_arg], &both);
    assert_eq!(code, Some(0), "{status}");
    assert!(
        status.contains("still needed"),
        "the old key still wraps two conversations:\n{status}"
    );
    assert!(status.contains(&format!("{new_id}  current")), "{status}");

    // Re-wrap beside the running broker; a second run finds nothing left.
    let (code, out) = examroom_env(&["keys", "rewrap", "--data-dir", data_arg], &both);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("re-wrapped 2 conversation keys under {new_id}")),
        "{out}"
    );
    assert!(out.contains("can be removed"), "{out}");
    let (_, again) = examroom_env(&["keys", "rewrap", "--data-dir", data_arg], &both);
    assert!(again.contains("0 data key(s) re-wrapped"), "{again}");
    drop(ws);
    drop(broker);

    // The old key is gone: everything still decrypts.
    std::fs::remove_file(&old).unwrap();
    let only_new = [kek_env(&[&new])];
    let broker = dev(&data, &only_new);
    let mut ws = Ws::patient(&broker.url, &token).await;
    for (conversation, body) in [
        (&first, "my rash is spreading"),
        (&second, "me duele la cabeza"),
        (&third, "after the new key"),
    ] {
        let messages = ws.sync(conversation, 0).await;
        assert!(
            messages.iter().any(|m| m["body"] == body),
            "{conversation} readable after the old key's removal: {messages:?}"
        );
    }
    let (code, status) = examroom_env(&["keys", "status", "--data-dir", data_arg], &only_new);
    assert_eq!(code, Some(0), "nothing names a missing key:\n{status}");
    broker.assert_no_panic();
}

#[tokio::test]
async fn a_rotated_audit_signing_key_keeps_old_checkpoints_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let (old, new) = (dir.path().join("audit-old.pk8"), dir.path().join("audit-new.pk8"));
    let old_public = generate("audit-signing", &old)
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    generate("audit-signing", &new);

    let signing = |file: &Path| ("EXAMROOM_AUDIT__SIGNING_KEY_FILE", file.display().to_string());
    let before = [signing(&old)];
    let broker = dev(&data, &before);
    patient_token(&broker.url, &data, "patient").await;
    let (code, out) = examroom_env(&["audit", "checkpoint", "--data-dir", data_arg], &before);
    assert_eq!(code, Some(0), "{out}");
    drop(broker);

    // Rotated: the new key signs, the old public key is kept for the checkpoints it signed.
    let after = [
        signing(&new),
        (
            "EXAMROOM_AUDIT__PREVIOUS_PUBLIC_KEYS",
            format!("[\"{old_public}\"]"),
        ),
    ];
    let broker = dev(&data, &after);
    patient_token(&broker.url, &data, "patient").await;
    let (code, out) = examroom_env(&["audit", "checkpoint", "--data-dir", data_arg], &after);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = examroom_env(&["audit", "verify", "--data-dir", data_arg], &after);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 checkpoints verified"), "{out}");
    let (_, status) = examroom_env(&["keys", "status", "--data-dir", data_arg], &after);
    assert!(
        status.contains("previous") && status.contains("1 checkpoint(s)"),
        "{status}"
    );

    // An export carries both public keys and verifies offline.
    let export = dir.path().join("export");
    let (code, out) = examroom_env(
        &[
            "audit",
            "export",
            "--out",
            export.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ],
        &after,
    );
    assert_eq!(code, Some(0), "{out}");
    let file = |n: &str| export.join(n).display().to_string();
    let offline = [
        "audit",
        "verify",
        "--events",
        &file("events.jsonl"),
        "--checkpoints",
        &file("checkpoints.jsonl"),
        "--public-key",
        &file("audit-public-key.hex"),
    ];
    let (code, out) = crate::common::examroom(&offline);
    assert_eq!(code, Some(0), "{out}");

    // Without the old public key its checkpoint no longer verifies, and status says why.
    let forgotten = [signing(&new)];
    let (code, out) = examroom_env(&["audit", "verify", "--data-dir", data_arg], &forgotten);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("forged"), "{out}");
    let (code, status) = examroom_env(&["keys", "status", "--data-dir", data_arg], &forgotten);
    assert_eq!(code, Some(2), "{status}");
    assert!(status.contains("UNKNOWN"), "{status}");
    broker.assert_no_panic();
}

/// coturn on loopback with the given shared secrets (several are accepted at once: the rotation's overlap),
/// stopped by the PID the test started.
struct Coturn(std::process::Child, u16);

impl Coturn {
    fn start(dir: &Path, secrets: &[&Path]) -> Coturn {
        let port = crate::common::free_port();
        let mut cmd = std::process::Command::new("turnserver");
        cmd.args([
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--min-port=49600",
            "--max-port=49700",
            "--use-auth-secret",
            "--realm=examroom.test",
            "--allow-loopback-peers",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--simple-log",
        ])
        .arg(format!("--listening-port={port}"))
        .arg(format!("--pidfile={}", dir.join("turnserver.pid").display()))
        .arg(format!(
            "--userdb={}",
            dir.join(format!("turndb-{port}")).display()
        ))
        .arg(format!("--log-file={}", dir.join("turnserver.log").display()));
        for s in secrets {
            let secret = std::fs::read_to_string(s).unwrap();
            cmd.arg(format!("--static-auth-secret={}", secret.trim()));
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("turnserver (Debian package coturn) is installed by scripts/test.sh");
        let listening = format!(":{port:04X} ");
        for _ in 0..100 {
            let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
            if tcp.to_uppercase().contains(&listening) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Coturn(child, port)
    }

    /// Whether coturn grants a relay allocation to this username and password (`turnutils_uclient`, coturn's
    /// own client, allocates and sends a few packets through the relay).
    fn allocates(&self, username: &str, password: &str) -> bool {
        std::process::Command::new("timeout")
            .args(["20", "turnutils_uclient", "-y", "-n", "1", "-m", "1", "-l", "50"])
            .args([
                "-u",
                username,
                "-w",
                password,
                "-p",
                &self.1.to_string(),
                "127.0.0.1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The TURN credential a started visit hands the patient.
async fn visit_credential(broker: &Broker, data: &Path, key: &str) -> (String, String) {
    let cookie = crate::demo::staff_cookie(&broker.url, data, "nurse").await;
    let mut patient = Ws::patient(&broker.url, &patient_token(&broker.url, data, "patient").await).await;
    let mut nurse = Ws::staff(&broker.url, &cookie).await;
    let (_, visit) = crate::media_peers::chat_then_video_request(&mut patient, &mut nurse, key).await;
    patient
        .send(serde_json::json!({"v": 1, "type": "video_answer", "visit_id": visit, "accept": true}))
        .await;
    let started = patient.expect("video_started").await;
    let turn = started["ice_servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["username"].is_string())
        .unwrap_or_else(|| panic!("a TURN server with a credential: {started}"))
        .clone();
    (
        turn["username"].as_str().unwrap().to_string(),
        turn["credential"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_rotated_turn_secret_overlaps_in_coturn_then_the_old_credentials_stop_working() {
    if !Path::new("/usr/bin/turnserver").exists() {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "coturn is required"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (old, new) = (dir.path().join("turn-old"), dir.path().join("turn-new"));
    generate("turn-secret", &old);
    generate("turn-secret", &new);

    // During the overlap coturn knows both secrets.
    let both = Coturn::start(dir.path(), &[&old, &new]);
    // Each broker on its own data directory: only the secret matters to the credential.
    let broker_with = |secret: &Path, data: &Path| {
        dev(
            data,
            &[
                (
                    "EXAMROOM_MEDIA__TURN_URLS",
                    format!("[\"turn:127.0.0.1:{}?transport=udp\"]", both.1),
                ),
                ("EXAMROOM_MEDIA__TURN_SECRET_FILE", secret.display().to_string()),
            ],
        )
    };
    let broker = broker_with(&old, &data.join("old"));
    let (old_user, old_pass) = visit_credential(&broker, &data.join("old"), "turn-1").await;
    assert!(
        both.allocates(&old_user, &old_pass),
        "the old secret's credential works"
    );
    drop(broker);
    let broker = broker_with(&new, &data.join("new"));
    let (new_user, new_pass) = visit_credential(&broker, &data.join("new"), "turn-2").await;
    assert_ne!(new_pass, old_pass);
    assert!(
        both.allocates(&new_user, &new_pass),
        "the new secret's credential works"
    );
    assert!(
        both.allocates(&old_user, &old_pass),
        "a call started before the switch keeps its relay during the overlap"
    );
    let (_, status) = examroom_env(
        &["keys", "status", "--data-dir", data.join("new").to_str().unwrap()],
        &[("EXAMROOM_MEDIA__TURN_SECRET_FILE", new.display().to_string())],
    );
    assert!(status.contains("credentials last 3600 s"), "{status}");
    drop(both);

    // After the overlap coturn keeps only the new secret.
    let only_new = Coturn::start(dir.path(), &[&new]);
    assert!(only_new.allocates(&new_user, &new_pass));
    assert!(
        !only_new.allocates(&old_user, &old_pass),
        "the old secret's credentials are refused once it is removed"
    );
    broker.assert_no_panic();
}
