//! Audit checkpoints end to end: a dev broker writes events, `audit checkpoint` signs the head, `audit export`
//! writes the events, checkpoints and public key, and `audit verify --events … --checkpoints … --public-key …`
//! checks them offline — passing when intact, and naming an edit, a cut tail and a forged checkpoint.

use crate::common::Broker;

#[tokio::test]
async fn exported_audit_verifies_offline_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = Broker::dev(&data, &[]);
    // A few audited events: sign-ins.
    for user in ["nurse", "compliance", "supervisor"] {
        crate::demo::staff_cookie(&broker.url, &data, user).await;
    }
    broker.terminate();
    let d = data.to_str().unwrap();
    let (code, out) = crate::common::examroom(&["audit", "checkpoint", "--data-dir", d]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("checkpoint signed at event"), "{out}");
    let export = dir.path().join("export");
    let e = export.to_str().unwrap();
    let (code, out) = crate::common::examroom(&["audit", "export", "--data-dir", d, "--out", e]);
    assert_eq!(code, Some(0), "{out}");

    let verify = |events: &str| {
        crate::common::examroom(&[
            "audit",
            "verify",
            "--events",
            events,
            "--checkpoints",
            export.join("checkpoints.jsonl").to_str().unwrap(),
            "--public-key",
            export.join("audit-public-key.hex").to_str().unwrap(),
        ])
    };
    let events_path = export.join("events.jsonl");
    let (code, out) = verify(events_path.to_str().unwrap());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("audit export intact"), "{out}");

    let events = std::fs::read_to_string(&events_path).unwrap();
    let lines: Vec<&str> = events.lines().collect();
    assert!(lines.len() >= 3);
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, events.replacen("\"success\"", "\"failure\"", 1)).unwrap();
    let (code, out) = verify(edited.to_str().unwrap());
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("was edited"), "{out}");

    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).unwrap();
    let (code, out) = verify(cut.to_str().unwrap());
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("truncated"), "{out}");

    // A checkpoint whose signature does not fit is forged.
    let cps = std::fs::read_to_string(export.join("checkpoints.jsonl")).unwrap();
    let mut cp: serde_json::Value = serde_json::from_str(cps.lines().next().unwrap()).unwrap();
    cp["at_ms"] = serde_json::json!(cp["at_ms"].as_i64().unwrap() + 1);
    std::fs::write(export.join("checkpoints.jsonl"), format!("{cp}\n")).unwrap();
    let (code, out) = verify(events_path.to_str().unwrap());
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("forged"), "{out}");
}
