//! Retention of the PHI besides recordings, with an injected clock (`examroom retention sweep --now`): a
//! closed chat's messages and context go after `retention.conversation_days`, its wrap-up after
//! `retention.wrap_up_days` and with it the conversation record and data key; a visit record once its
//! recordings are deleted; an open chat, a recent one and one whose visit's recording is on legal hold stay.
//! Each removal leaves a receipt in the audit chain, which the retention report lists, and the chain verifies.

use examroom::store::{Db, NewRecording};
use secrecy::SecretString;

const DAY: i64 = 86_400_000;

async fn exec(pool: &sqlx::AnyPool, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A conversation with two messages, a context and (when `wrapped_at`) a wrap-up; closed at `closed` (open when
/// `None`).
async fn chat(pool: &sqlx::AnyPool, id: &str, closed: Option<i64>, wrapped_at: Option<i64>) {
    let closed_sql = closed.map_or("NULL".into(), |c| c.to_string());
    exec(
        pool,
        &format!(
            "INSERT INTO conversations (id, reference, queue, patient, start_key, nurse, state, kek_id, wrapped_key, \
             enqueued_at, closed_at, last_activity_at) VALUES ('{id}', 'ER-{id}', 'triage', 'patient-1', '{id}', \
             'nurse-1', 'closed', 'k', 'wrapped-{id}', 1000, {closed_sql}, 1000)"
        ),
    )
    .await;
    for seq in 1..=2 {
        exec(
            pool,
            &format!(
                "INSERT INTO messages (conversation_id, seq, sender, sender_role, idempotency_key, body, at_ms) \
                 VALUES ('{id}', {seq}, 'patient-1', 'patient', 'k{seq}', 'sealed', 1000)"
            ),
        )
        .await;
    }
    exec(
        pool,
        &format!("INSERT INTO conversation_context (conversation_id, sealed) VALUES ('{id}', 'sealed')"),
    )
    .await;
    if let Some(at) = wrapped_at {
        exec(
            pool,
            &format!(
                "INSERT INTO conversation_wrapups (conversation_id, nurse, sealed, at_ms) \
                 VALUES ('{id}', 'nurse-1', 'sealed', {at})"
            ),
        )
        .await;
    }
}

async fn visit(pool: &sqlx::AnyPool, visit: &str, conversation: &str, ended: i64) {
    exec(
        pool,
        &format!(
            "INSERT INTO visit_classifications (visit_id, conversation_id, queue, interaction_type, consent, \
             consent_captured, recording_status, data_classification, created_at, ended_at) VALUES \
             ('{visit}', '{conversation}', 'triage', 'video', 'given', 1, 'enabled', 'phi.chat+media', \
             {ended}, {ended})"
        ),
    )
    .await;
}

async fn count(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap();
    row.0
}

#[tokio::test]
async fn chats_wrap_ups_and_visit_records_go_when_due_and_a_legal_hold_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    crate::storage::suite_database(&data);
    let url = SecretString::from(crate::storage::database_url(&data));
    // Migrate, and a recording on legal hold for the held chat's visit.
    let db = Db::connect(&url, Some(1)).await.unwrap();
    db.insert_recording(&NewRecording {
        id: "r00000000000000000000000a",
        visit_id: "v-held",
        queue: "triage",
        policies: "video-visits",
        consent: "recorded",
        kek_id: "k",
        wrapped_key: "wrapped",
        spool_kek_id: "k",
        spool_wrapped_key: "wrapped",
        started_at: 1_000,
        retain_until: 1_000 + 30 * 365 * DAY,
        writer: "node-test",
        origin_ms: 1_000,
    })
    .await
    .unwrap();
    assert!(db.set_legal_hold("v-held", true).await.unwrap());
    db.close().await;
    let now = 1_893_456_000_000; // 2030-01-01, the sweep's clock
    let pool = crate::storage::pool(&data).await;
    // Old: closed and wrapped up seven years before. Notes kept longer: closed long ago, wrapped up recently.
    chat(
        &pool,
        "c-old",
        Some(now - 7 * 365 * DAY),
        Some(now - 7 * 365 * DAY),
    )
    .await;
    visit(&pool, "v-old", "c-old", now - 7 * 365 * DAY).await;
    chat(&pool, "c-notes", Some(now - 7 * 365 * DAY), Some(now - 10 * DAY)).await;
    chat(&pool, "c-recent", Some(now - 10 * DAY), Some(now - 10 * DAY)).await;
    // Open for seven years (a chat the nurse never closed): not closed, so nothing is due.
    chat(&pool, "c-open", None, None).await;
    chat(
        &pool,
        "c-held",
        Some(now - 7 * 365 * DAY),
        Some(now - 7 * 365 * DAY),
    )
    .await;
    visit(&pool, "v-held", "c-held", now - 7 * 365 * DAY).await;
    let d = data.to_str().unwrap();
    let sweep = |extra: &[&str]| {
        let mut args = vec![
            "retention",
            "sweep",
            "--data-dir",
            d,
            "--now",
            "2030-01-01T00:00:00Z",
        ];
        args.extend(extra);
        crate::common::examroom(&args)
    };

    let (code, out) = sweep(&["--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "due conversation:c-old (2 messages, context true, wrap-up true, data key destroyed true)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "due conversation:c-notes (2 messages, context true, wrap-up false, data key destroyed false)"
        ),
        "{out}"
    );
    assert!(
        !out.contains("c-held") && !out.contains("c-recent") && !out.contains("c-open"),
        "{out}"
    );
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM messages").await,
        10,
        "a dry run removes nothing"
    );

    let (code, out) = sweep(&[]);
    assert_eq!(code, Some(0), "{out}");
    let messages = |c: &'static str| {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                &format!("SELECT COUNT(*) FROM messages WHERE conversation_id = '{c}'"),
            )
            .await
        }
    };
    let exists = |table: &'static str, column: &'static str, id: &'static str| {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                &format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{id}'"),
            )
            .await
                == 1
        }
    };
    // The old chat: everything, its data key with its record, and its visit record.
    assert_eq!(messages("c-old").await, 0);
    assert!(!exists("conversation_context", "conversation_id", "c-old").await);
    assert!(!exists("conversation_wrapups", "conversation_id", "c-old").await);
    assert!(
        !exists("conversations", "id", "c-old").await,
        "record and data key destroyed"
    );
    assert!(!exists("visit_classifications", "visit_id", "v-old").await);
    // Notes kept longer than the chat: the messages go, the notes and the key that opens them stay.
    assert_eq!(messages("c-notes").await, 0);
    assert!(exists("conversation_wrapups", "conversation_id", "c-notes").await);
    assert!(exists("conversations", "id", "c-notes").await);
    // Recent, open and held chats keep everything.
    for c in ["c-recent", "c-open", "c-held"] {
        assert_eq!(messages(c).await, 2, "{c}");
        assert!(exists("conversation_context", "conversation_id", c).await, "{c}");
        assert!(exists("conversations", "id", c).await, "{c}");
    }
    for c in ["c-recent", "c-held"] {
        assert!(exists("conversation_wrapups", "conversation_id", c).await, "{c}");
    }
    assert!(exists("visit_classifications", "visit_id", "v-held").await);

    // Receipts by the retention job, in the chain; a second sweep removes nothing more.
    let receipts: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT resource, reason, actor FROM audit_events WHERE action = 'retention.conversation_deleted' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let resources: Vec<&str> = receipts.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        resources,
        ["conversation:c-notes", "conversation:c-old"],
        "{receipts:?}"
    );
    let old = &receipts[1];
    for field in [
        "\"messages\":2",
        "\"context\":true",
        "\"wrap_up\":true",
        "\"key_destroyed\":true",
    ] {
        assert!(old.1.contains(field), "{field} in {}", old.1);
    }
    assert_eq!(old.2, "system:retention");
    assert!(
        receipts[0].1.contains("\"key_destroyed\":false"),
        "{}",
        receipts[0].1
    );
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'retention.visit_deleted'"
        )
        .await,
        1
    );
    let (code, out) = sweep(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM audit_events WHERE action LIKE 'retention.%'"
        )
        .await,
        3,
        "nothing more to remove"
    );
    // And a dry run now has nothing due: the notes kept longer are not listed again.
    let (code, out) = sweep(&["--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("conversation:"), "{out}");
    pool.close().await;
    // The retention report lists them with their receipts.
    let day = |offset: i64| {
        (chrono::Utc::now() + chrono::Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    let (from, to) = (day(-1), day(1));
    let (code, out) = crate::common::examroom(&[
        "report",
        "retention",
        "--from",
        &from,
        "--to",
        &to,
        "--data-dir",
        d,
    ]);
    assert_eq!(code, Some(0), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["summary"]["chats_and_visit_records_removed"], 3,
        "{report}"
    );
    let old = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == "conversation:c-old")
        .unwrap_or_else(|| panic!("the old chat in {report}"));
    assert_eq!(old["class"], "conversation");
    assert_eq!(old["status"], "deleted");
    assert_eq!(old["receipt"]["key_destroyed"], true);
    let (code, out) = crate::common::examroom(&["audit", "verify", "--data-dir", d]);
    assert_eq!(code, Some(0), "{out}");
}
