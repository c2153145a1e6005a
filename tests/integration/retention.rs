//! Retention with an injected clock (`examroom retention sweep --now`): expired recordings are deleted (the
//! whole-file object or every segment removed, data key destroyed, receipt in the audit log), a legal hold keeps
//! one, `--dry-run` deletes nothing, and the audit chain stays intact.

use examroom::recording::objects::{LocalObjects, ObjectStore};
use examroom::store::{Db, NewRecording};
use secrecy::SecretString;

async fn seed_row(db: &Db, id: &str, retain_until: i64) {
    db.insert_recording(&NewRecording {
        id,
        visit_id: &id.replacen('r', "v", 1),
        queue: "triage",
        policies: "video-visits",
        consent: "recorded",
        kek_id: "k",
        wrapped_key: "wrapped",
        spool_kek_id: "k",
        spool_wrapped_key: "wrapped",
        started_at: 1_000,
        retain_until,
        writer: "node-test",
        origin_ms: 1_000,
    })
    .await
    .unwrap();
}

/// A whole-file recording (made before segments): one sealed object.
async fn seed(db: &Db, store: &LocalObjects, id: &str, retain_until: i64) {
    seed_row(db, id, retain_until).await;
    let key = format!("{id}.erec");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"ERREC sealed bytes").unwrap();
    store
        .put_file(&key, file.path(), retain_until, false)
        .await
        .unwrap();
    db.finish_recording(id, 2_000, Some(&key), 18, 10, "{}")
        .await
        .unwrap();
    db.mark_recording_stored(id).await.unwrap();
}

/// A recording made of segments (every recording since segments): two sealed objects and their rows.
async fn seed_segmented(db: &Db, store: &LocalObjects, id: &str, retain_until: i64) {
    seed_row(db, id, retain_until).await;
    for seq in 0..2 {
        let key = format!("{id}.{seq:05}.erseg");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"ERREC sealed segment").unwrap();
        store
            .put_file(&key, file.path(), retain_until, false)
            .await
            .unwrap();
        let row = examroom::store::SegmentRow {
            recording_id: id.into(),
            seq,
            object_key: key,
            plain_bytes: 4,
            sealed_bytes: 20,
            start_ms: 1_000 + seq * 500,
            end_ms: 1_500 + seq * 500,
            video_dims: ",".into(),
            cues: String::new(),
            stored: false,
        };
        db.insert_segment(&row).await.unwrap();
        db.mark_segment_stored(id, seq).await.unwrap();
    }
    db.finish_recording(id, 2_000, None, 40, 8, "{}").await.unwrap();
    db.mark_recording_stored(id).await.unwrap();
}

#[tokio::test]
async fn expired_recordings_go_held_ones_stay_and_receipts_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    crate::storage::suite_database(&data);
    let url = SecretString::from(crate::storage::database_url(&data));
    let db = Db::connect(&url, Some(1)).await.unwrap();
    let store = LocalObjects::new(&data.join("recordings/objects")).unwrap();
    let year_2030 = 1_893_456_000_000; // 2030-01-01
    seed(&db, &store, "r000000000000000000000001", year_2030).await;
    seed(&db, &store, "r000000000000000000000002", year_2030).await;
    seed_segmented(&db, &store, "r000000000000000000000004", year_2030).await;
    seed(
        &db,
        &store,
        "r000000000000000000000003",
        year_2030 + 10 * 365 * 86_400_000,
    )
    .await;
    assert!(
        db.set_legal_hold("v000000000000000000000002", true)
            .await
            .unwrap()
    );
    db.close().await;
    let d = data.to_str().unwrap();

    let (code, out) = crate::common::examroom(&[
        "retention",
        "sweep",
        "--data-dir",
        d,
        "--now",
        "2031-01-01T00:00:00Z",
        "--dry-run",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("would delete r000000000000000000000001"), "{out}");
    assert!(
        out.contains("2 recording(s) past retention (dry run: nothing deleted)"),
        "{out}"
    );
    assert!(
        store.path("r000000000000000000000001.erec").exists(),
        "dry run deletes nothing"
    );

    let (code, out) =
        crate::common::examroom(&["retention", "sweep", "--data-dir", d, "--now", "not-a-time"]);
    assert_ne!(code, Some(0));
    assert!(out.contains("--now"), "{out}");

    let (code, out) = crate::common::examroom(&[
        "retention",
        "sweep",
        "--data-dir",
        d,
        "--now",
        "2031-01-01T00:00:00Z",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deleted r000000000000000000000001"), "{out}");
    assert!(
        !store.path("r000000000000000000000001.erec").exists(),
        "object removed"
    );
    assert!(
        store.path("r000000000000000000000002.erec").exists(),
        "legal hold keeps it"
    );
    for seq in 0..2 {
        let key = format!("r000000000000000000000004.{seq:05}.erseg");
        assert!(!store.path(&key).exists(), "every segment removed: {key}");
    }
    assert!(
        store.path("r000000000000000000000003.erec").exists(),
        "not expired"
    );

    let db = Db::connect(&url, Some(1)).await.unwrap();
    let gone = db.recording("r000000000000000000000001").await.unwrap().unwrap();
    assert_eq!(
        (gone.state.as_str(), gone.wrapped_key.as_str()),
        ("deleted", ""),
        "data key destroyed"
    );
    let held = db.recording("r000000000000000000000002").await.unwrap().unwrap();
    assert_eq!(held.state, examroom::store::RecordingPhase::Stored);
    db.close().await;
    let pool = crate::storage::pool(&data).await;
    let receipts: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT resource, reason, actor, role, request_id FROM audit_events WHERE action = 'recording.deleted'",
    )
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    let segmented = receipts
        .iter()
        .find(|r| r.0 == "recording:r000000000000000000000004")
        .expect("the segmented recording's receipt");
    let both =
        r#""objects":["r000000000000000000000004.00000.erseg","r000000000000000000000004.00001.erseg"]"#;
    assert!(segmented.1.contains(both), "{}", segmented.1);
    let receipts: Vec<_> = receipts
        .into_iter()
        .filter(|r| r.0 != "recording:r000000000000000000000004")
        .collect();
    assert_eq!(receipts[0].0, "recording:r000000000000000000000001");
    // The sweep is the broker's own work: it says so, and its event still carries a correlation id.
    assert_eq!(
        (receipts[0].2.as_str(), receipts[0].3.as_str()),
        ("system:retention", "system")
    );
    assert_eq!(receipts[0].4.len(), 32, "{:?}", receipts[0].4);
    for field in [
        "\"policies\":\"video-visits\"",
        "\"objects\":[\"r000000000000000000000001.erec\"]",
        "\"versions\":1",
        "\"bytes\":18",
    ] {
        assert!(receipts[0].1.contains(field), "{field} in {}", receipts[0].1);
    }
    let (code, out) = crate::common::examroom(&["audit", "verify", "--data-dir", d]);
    assert_eq!(code, Some(0), "{out}");
}
