//! Key rotation with the real broker and command line: a key-encryption key replaced (`keys rewrap`, then the
//! old key removed, every message still readable), an audit signing key replaced (checkpoints of both keys
//! verify, online and in an export, only while the old public key is kept), and the TURN secret replaced with
//! coturn accepting both secrets during the overlap and only the new one after.

use std::path::Path;

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::Broker;
use crate::demo::patient_token;

/// `examroom ARGS` with `env` (a dev data directory's commands see the environment `examroom dev` was given).
fn examroom_env(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let mut cmd = Broker::command();
    if let Some(url) = crate::storage::suite_database(Path::new(args[args.len() - 1])) {
        cmd.env("EXAMROOM_DATABASE__URL", url);
    }
    let out = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn kek_env(files: &[&Path]) -> (&'static str, String) {
    let list: Vec<String> = files.iter().map(|f| format!("{:?}", f.display().to_string())).collect();
    ("EXAMROOM_MESSAGING__KEK_FILES", format!("[{}]", list.join(", ")))
}

fn generate(kind: &str, out: &Path) -> String {
    let (code, text) = crate::common::examroom(&["keys", "generate", "--kind", kind, "--out", out.to_str().unwrap()]);
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
        crate::common::examroom(&["keys", "generate", "--kind", "kek", "--out", old.to_str().unwrap()])
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
    assert_eq!(code, 0, "{status}");
    assert!(status.contains("still needed"), "the old key still wraps two conversations:\n{status}");
    assert!(status.contains(&format!("{new_id}  current")), "{status}");

    // Re-wrap beside the running broker; a second run finds nothing left.
    let (code, out) = examroom_env(&["keys", "rewrap", "--data-dir", data_arg], &both);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("re-wrapped 2 conversation keys under {new_id}")), "{out}");
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
    assert_eq!(code, 0, "nothing names a missing key:\n{status}");
    broker.assert_no_panic();
}

#[tokio::test]
async fn a_rotated_audit_signing_key_keeps_old_checkpoints_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let (old, new) = (dir.path().join("audit-old.pk8"), dir.path().join("audit-new.pk8"));
    let old_public = generate("audit-signing", &old).split_whitespace().last().unwrap().to_string();
    generate("audit-signing", &new);

    let signing = |file: &Path| ("EXAMROOM_AUDIT__SIGNING_KEY_FILE", file.display().to_string());
    let before = [signing(&old)];
    let broker = dev(&data, &before);
    patient_token(&broker.url, &data, "patient").await;
    let (code, out) = examroom_env(&["audit", "checkpoint", "--data-dir", data_arg], &before);
    assert_eq!(code, 0, "{out}");
    drop(broker);

    // Rotated: the new key signs, the old public key is kept for the checkpoints it signed.
    let after = [
        signing(&new),
        ("EXAMROOM_AUDIT__PREVIOUS_PUBLIC_KEYS", format!("[\"{old_public}\"]")),
    ];
    let broker = dev(&data, &after);
    patient_token(&broker.url, &data, "patient").await;
    let (code, out) = examroom_env(&["audit", "checkpoint", "--data-dir", data_arg], &after);
    assert_eq!(code, 0, "{out}");
    let (code, out) = examroom_env(&["audit", "verify", "--data-dir", data_arg], &after);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 checkpoints verified"), "{out}");
    let (_, status) = examroom_env(&["keys", "status", "--data-dir", data_arg], &after);
    assert!(status.contains("previous") && status.contains("1 checkpoint(s)"), "{status}");

    // An export carries both public keys and verifies offline.
    let export = dir.path().join("export");
    let (code, out) = examroom_env(
        &["audit", "export", "--out", export.to_str().unwrap(), "--data-dir", data_arg],
        &after,
    );
    assert_eq!(code, 0, "{out}");
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
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("forged"), "{out}");
    let (code, status) = examroom_env(&["keys", "status", "--data-dir", data_arg], &forgotten);
    assert_eq!(code, 2, "{status}");
    assert!(status.contains("UNKNOWN"), "{status}");
    broker.assert_no_panic();
}
