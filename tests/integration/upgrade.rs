//! A rolling upgrade: a node of the previous release (built from the tag `deploy/previous-release` names, by
//! `scripts/previous-release.sh`) runs beside a node of this tree on one PostgreSQL database that this tree
//! migrated; chats cross between the two versions both ways; then the old node drains and comes back as this
//! release with the same id, and nothing acknowledged is lost.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::chat::Ws;
use crate::common::Broker;
use crate::demo::{patient_token, staff_cookie};

fn version(bin: &Path) -> String {
    let out = Command::new(bin).arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A patient on `patient_node` and a nurse on `nurse_node` chat: offered, accepted, messages live both ways.
async fn chat_across(patient: &mut Ws, nurse: &mut Ws, key: &str) -> (String, Vec<i64>) {
    nurse.presence("ready").await;
    let conversation = patient.start("triage", key).await;
    nurse.offer_for(&conversation).await;
    nurse
        .send(json!({"v": 1, "type": "accept", "conversation_id": conversation}))
        .await;
    patient.expect("assigned").await;
    let mut acked = Vec::new();
    for i in 0..5 {
        let ack = patient
            .say(&conversation, &format!("{key}-p{i}"), &format!("patient {i}"))
            .await;
        let seq = ack["seq"].as_i64().unwrap();
        acked.push(seq);
        nurse
            .wait("the patient's message, live on the other node", move |v| {
                v["type"] == "message" && v["seq"].as_i64() == Some(seq)
            })
            .await;
    }
    let ack = nurse.say(&conversation, &format!("{key}-n"), "nurse reply").await;
    let seq = ack["seq"].as_i64().unwrap();
    acked.push(seq);
    patient
        .wait("the nurse's reply, live on the other node", move |v| {
            v["type"] == "message" && v["seq"].as_i64() == Some(seq)
        })
        .await;
    (conversation, acked)
}

#[tokio::test]
async fn a_previous_release_node_runs_beside_this_one_then_is_upgraded_in_place() {
    let Ok(previous) = std::env::var("TEST_PREVIOUS_RELEASE_BIN") else {
        assert!(
            std::env::var("TEST_REQUIRE_PREVIOUS_RELEASE").is_err(),
            "TEST_PREVIOUS_RELEASE_BIN is required (scripts/previous-release.sh builds it)"
        );
        return;
    };
    let Some(database) = crate::storage::postgres_database().await else {
        return;
    };
    let previous = Path::new(&previous);
    let (old_version, new_version) = (
        version(previous),
        version(Path::new(env!("CARGO_BIN_EXE_examroom"))),
    );
    assert_ne!(old_version, new_version, "two releases side by side");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = |id: &'static str| {
        [
            ("EXAMROOM_DATABASE__URL", database.clone()),
            ("EXAMROOM_CLUSTER__NODE_ID", id.to_string()),
            ("EXAMROOM_CLUSTER__HEARTBEAT_SECONDS", "1".into()),
            ("EXAMROOM_CLUSTER__DEAD_AFTER_SECONDS", "3".into()),
            ("EXAMROOM_CLUSTER__DRAIN_SECONDS", "2".into()),
        ]
    };
    let start = |bin: &Path, id: &'static str| {
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("EXAMROOM_")) {
            cmd.env_remove(k);
        }
        let env = env(id);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Broker::dev_at(cmd, &data, &env, &["--listen", "127.0.0.1:0"])
    };
    // This release migrates the database first; the previous release then runs on that schema.
    let new = start(Path::new(env!("CARGO_BIN_EXE_examroom")), "node-new");
    let mut old = start(previous, "node-old");

    // Both ways across the two versions.
    let token = patient_token(&old.url, &data, "patient").await;
    let mut patient = Ws::patient(&old.url, &token).await;
    let nurse_cookie = staff_cookie(&new.url, &data, "nurse").await;
    let mut nurse = Ws::staff(&new.url, &nurse_cookie).await;
    let (first, mut acked) = chat_across(&mut patient, &mut nurse, "old-to-new").await;

    let token2 = patient_token(&new.url, &data, "patient2").await;
    let mut patient2 = Ws::patient(&new.url, &token2).await;
    let nurse2_cookie = staff_cookie(&old.url, &data, "nurse2").await;
    let mut nurse2 = Ws::staff(&old.url, &nurse2_cookie).await;
    nurse.presence("away").await;
    let (second, acked2) = chat_across(&mut patient2, &mut nurse2, "new-to-old").await;

    // The old node drains (SIGTERM, as an orchestrator stops it) and comes back as this release.
    assert!(
        old.terminate().success(),
        "the previous release drains and exits cleanly"
    );
    old.assert_no_panic();
    drop((patient, nurse2));
    let upgraded = start(Path::new(env!("CARGO_BIN_EXE_examroom")), "node-old");
    let mut patient = Ws::patient(&upgraded.url, &token).await;
    let ack = patient.say(&first, "after-upgrade", "after the upgrade").await;
    acked.push(ack["seq"].as_i64().unwrap());
    let transcript = nurse.sync(&first, 0).await;
    let stored: Vec<i64> = transcript.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    for seq in &acked {
        assert!(
            stored.contains(seq),
            "acknowledged message {seq} kept ({stored:?})"
        );
    }
    let transcript = patient2.sync(&second, 0).await;
    assert_eq!(transcript.len(), acked2.len(), "{transcript:?}");

    let (code, status) = crate::common::examroom_with_env(
        &["cluster", "status", "--data-dir", data.to_str().unwrap()],
        &[("EXAMROOM_DATABASE__URL", database.as_str())],
    );
    assert_eq!(code, Some(0), "{status}");
    assert!(
        status.contains("node-old") && status.contains("node-new"),
        "{status}"
    );
    new.assert_no_panic();
    upgraded.assert_no_panic();
}
