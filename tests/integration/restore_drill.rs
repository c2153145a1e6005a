//! The restore drill, as an operator would run it: a node with its keys kept apart (key files outside the data
//! directory) and its recordings on S3 chats and records a visit; the database is backed up while it runs
//! (`examroom backup`); the node is killed and its data directory destroyed; a new node starts from the backup
//! and the kept keys, and the conversation and the recording decrypt and the audit chain and its checkpoints
//! verify. Without the key-encryption key the same backup cannot be read.

use serde_json::json;
use std::path::Path;

use crate::chat::{FAST_ROUTING, Ws};
use crate::common::{Broker, examroom};
use crate::demo::{patient_token, staff_cookie};
use crate::media_peers::{active_visit_with, in_namespace, join};
use crate::peer::ClientPeer;
use crate::recording_peers::{pump_paced, recordings_once_stored};

#[test]
fn a_destroyed_node_is_restored_from_its_backup_and_kept_keys() {
    in_namespace("restore_drill::inner_restore_drill");
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
#[ignore = "run inside a network namespace by a_destroyed_node_is_restored_from_its_backup_and_kept_keys"]
async fn inner_restore_drill() {
    let Some(moto) = crate::s3::moto(crate::common::free_port()) else {
        assert!(
            std::env::var("TEST_REQUIRE_S3").is_err(),
            "TEST_MOTO_SERVER is required"
        );
        return;
    };
    crate::s3::raw_client(&moto.endpoint)
        .await
        .create_bucket()
        .bucket("recordings")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, kept) = (dir.path().join("data"), dir.path().join("kept-keys"));
    let file = |name: &str| kept.join(name).display().to_string();
    for (kind, name) in [
        ("kek", "kek.hex"),
        ("audit-signing", "audit-signing.pk8"),
        ("pseudonym", "pseudonym.key"),
    ] {
        let (code, out) = examroom(&["keys", "generate", "--kind", kind, "--out", &file(name)]);
        assert_eq!(code, Some(0), "{out}");
    }
    std::fs::write(kept.join("s3-secret"), "examroom-secret").unwrap();
    let mut env: Vec<(&str, String)> = FAST_ROUTING.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.extend([
        (
            "EXAMROOM_MESSAGING__KEK_FILES",
            format!("[\"{}\"]", file("kek.hex")),
        ),
        ("EXAMROOM_AUDIT__SIGNING_KEY_FILE", file("audit-signing.pk8")),
        ("EXAMROOM_LOGGING__PSEUDONYM_KEY_FILE", file("pseudonym.key")),
        ("EXAMROOM_RECORDING__STORE", "s3".into()),
        ("EXAMROOM_RECORDING__S3__ENDPOINT", moto.endpoint.clone()),
        ("EXAMROOM_RECORDING__S3__BUCKET", "recordings".into()),
        ("EXAMROOM_RECORDING__S3__ACCESS_KEY_ID", "AKEXAMROOM".into()),
        (
            "EXAMROOM_RECORDING__S3__SECRET_ACCESS_KEY_FILE",
            file("s3-secret"),
        ),
    ]);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let data_arg = data.to_str().unwrap();
    // The maintenance commands get the node's environment, as `examroom dev` did.
    let command = |args: &[&str]| {
        let out = Broker::command()
            .args(args)
            .envs(env_ref.iter().copied())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };

    // A day at the clinic: a chat and a recorded visit.
    let mut broker = Broker::dev(&data, &env_ref);
    let url = broker.url.clone();
    let nurse_cookie = staff_cookie(&url, &data, "nurse").await;
    let (mut patient_ws, mut nurse_ws, visit) =
        active_visit_with(&broker, &data, &nurse_cookie, Some(true)).await;
    let mut patient = ClientPeer::new("PATIENT", "NURSE").await;
    let mut nurse = ClientPeer::new("NURSE", "PATIENT").await;
    join(&mut nurse_ws, &mut nurse, &visit).await;
    join(&mut patient_ws, &mut patient, &visit).await;
    pump_paced(&patient, &nurse, 0, 90).await;
    nurse_ws
        .send(json!({"v": 1, "type": "video_end", "visit_id": visit}))
        .await;
    nurse_ws.expect("video_ended").await;
    let compliance = staff_cookie(&url, &data, "compliance").await;
    let before = recordings_once_stored(&url, &compliance).await;
    assert_eq!(before["recordings"][0]["state"], "stored", "{before}");
    // A message after the visit, read back after the restore.
    let token = patient_token(&url, &data, "patient").await;
    let (mut chat, conversation) = patient_socket(&url, &token).await;
    chat.say(&conversation, "drill-1", "the rash is on both arms now")
        .await;
    let (code, out) = command(&["audit", "checkpoint", "--data-dir", data_arg]);
    assert_eq!(code, Some(0), "{out}");

    // The backup, taken while the node runs.
    let backup = dir.path().join("backup.sqlite");
    let (code, out) = command(&[
        "backup",
        "--data-dir",
        data_arg,
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");

    // The node is lost: killed, its data directory destroyed. The identity provider is not the broker's (in
    // production it survives the node); the demo keeps it in the data directory, so it is set aside first.
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    drop((patient, nurse, patient_ws, nurse_ws));
    let idp = dir.path().join("dev-idp");
    copy_dir(&data.join("dev-idp"), &idp);
    std::fs::remove_dir_all(&data).unwrap();

    // Restored: the backup as the new node's database, the identity provider back, keys from where they were kept.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(&backup, data.join("examroom.db")).unwrap();
    copy_dir(&idp, &data.join("dev-idp"));

    let broker = Broker::dev(&data, &env_ref);
    let url = broker.url.clone();
    let token = patient_token(&url, &data, "patient").await;
    let (mut ws, restored) = patient_socket(&url, &token).await;
    assert_eq!(restored, conversation, "the patient's conversation survives");
    let messages = ws.sync(&conversation, 0).await;
    assert!(
        messages
            .iter()
            .any(|m| m["body"] == "the rash is on both arms now"),
        "the conversation decrypts after the restore: {messages:?}"
    );

    let compliance = staff_cookie(&url, &data, "compliance").await;
    let after = recordings_once_stored(&url, &compliance).await;
    let id = after["recordings"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{after}"));
    let webm = crate::common::client()
        .get(format!(
            "{url}/api/v1/recordings/{id}/download?reason=restore%20drill"
        ))
        .header("cookie", &compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(webm.status(), 200);
    let webm = webm.bytes().await.unwrap();
    let blocks = examroom::recording::webm::scan(&webm).unwrap_or_default();
    assert!(
        blocks.iter().filter(|b| b.0 == 1).count() >= 30,
        "the recording decrypts from S3 with the kept key: {} blocks",
        blocks.len()
    );

    let (code, out) = command(&["audit", "verify", "--data-dir", data_arg]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("checkpoints verified"), "{out}");
    broker.assert_no_panic();
    drop(broker);

    // The same backup with the key-encryption key lost (a new one in its place): the data is unreadable, and
    // the status names the key that is missing.
    let other = dir.path().join("another-kek.hex");
    let (code, out) = examroom(&[
        "keys",
        "generate",
        "--kind",
        "kek",
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    let other_list = format!("[\"{}\"]", other.display());
    let (code, status) = {
        let out = Broker::command()
            .args(["keys", "status", "--data-dir", data_arg])
            .envs(env_ref.iter().copied())
            .env("EXAMROOM_MESSAGING__KEK_FILES", &other_list)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    assert_eq!(code, Some(2), "{status}");
    assert!(status.contains("MISSING from the keyring"), "{status}");
}

/// A patient's socket and their open conversation (from the welcome).
async fn patient_socket(url: &str, token: &str) -> (Ws, String) {
    let mut ws = Ws::connect(url, None).await;
    ws.send(json!({"v": 1, "type": "auth", "token": token})).await;
    let welcome = ws.expect("welcome").await;
    let conversation = welcome["conversations"][0]["conversation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an open conversation: {welcome}"))
        .to_string();
    (ws, conversation)
}
