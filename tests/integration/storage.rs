//! The same storage suite on SQLite and PostgreSQL: migrations, sessions, single-use sign-in state, and the
//! audit chain (concurrent appends, tamper detection).

use std::sync::Arc;

use examroom::audit::verify::{ChainBreak, verify_stored};
use examroom::audit::{AuditEvent, Auditor, Outcome};
use examroom::auth::session::NewSession;
use examroom::auth::{Role, SessionKind, Sessions};
use examroom::clock::now_ms;
use examroom::ids::SubjectId;
use examroom::store::{Db, LoginRow};
use secrecy::SecretString;
use sqlx::Connection;

/// A fresh PostgreSQL database on the test cluster, or `None` when no cluster is configured (allowed only
/// outside the full test script, which sets `TEST_REQUIRE_POSTGRES`).
pub async fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("TEST_REQUIRE_POSTGRES").is_err(),
            "TEST_POSTGRES_URL is required"
        );
        eprintln!("TEST_POSTGRES_URL unset: skipping the PostgreSQL run (scripts/test.sh provides one)");
        return None;
    };
    let name = format!("examroom_test_{}", crate::common::random());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// Databases the brokers of the PostgreSQL run use, by data directory.
static SUITE_DATABASES: std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Whether this run is the suite's PostgreSQL run (`TEST_DATABASE=postgres`, set by `scripts/test.sh`).
pub fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE").as_deref() == Ok("postgres")
}

/// In the PostgreSQL run, the database of the broker whose data directory is `data` (created on its first
/// start, kept across restarts), reached over the test cluster's Unix socket (a broker inside a network
/// namespace reaches it too); `None` on SQLite.
pub fn suite_database(data: &std::path::Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    if let Some(url) = SUITE_DATABASES.lock().unwrap().get(data) {
        return Some(url.clone());
    }
    let url = socket_database();
    SUITE_DATABASES
        .lock()
        .unwrap()
        .insert(data.to_path_buf(), url.clone());
    Some(url)
}

/// A new database on the test cluster, reached over its Unix socket (a broker inside a network namespace
/// reaches it too); the cluster must be there (`scripts/test.sh` starts it).
pub fn socket_database() -> String {
    let admin = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL is required on PostgreSQL");
    let socket = std::env::var("TEST_POSTGRES_SOCKET_DIR").expect("TEST_POSTGRES_SOCKET_DIR is required");
    let name = format!("examroom_suite_{}", crate::common::random());
    // The socket's name carries the cluster's port; tests inside a network namespace reach only the socket.
    let port = url::Url::parse(&admin).unwrap().port().unwrap_or(5432);
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            &socket,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    format!("postgres://postgres@localhost:{port}/{name}?host={socket}")
}

/// The database of the broker whose data directory is `data`: its PostgreSQL database in that run, else its
/// SQLite file.
pub fn database_url(data: &std::path::Path) -> String {
    SUITE_DATABASES
        .lock()
        .unwrap()
        .get(data)
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data.join("examroom.db").display()))
}

/// A pool on [`database_url`], for a test to read (or seed) what its broker stored.
pub async fn pool(data: &std::path::Path) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&database_url(data)).await.unwrap()
}

/// Runs `suite` against SQLite and, when available, PostgreSQL.
async fn on_both<F, Fut>(suite: F)
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    suite(Db::connect(&SecretString::from(sqlite), None).await.unwrap()).await;
    if let Some(pg) = postgres_database().await {
        suite(Db::connect(&SecretString::from(pg), None).await.unwrap()).await;
    }
}

fn auditor(db: &Db) -> Auditor {
    Auditor::new(db.clone(), examroom::telemetry::Metrics::new().audit_events)
}

async fn append(a: &Auditor, n: usize) {
    for i in 0..n {
        a.record(
            AuditEvent::new("test.event", format!("thing:{i}"), Outcome::Success)
                .actor("tester", Role::Nurse),
        )
        .await
        .unwrap();
    }
}

/// A break-glass grant opens its resource to its holder until it expires, and a revocation of the person ends it.
#[tokio::test]
async fn break_glass_grants_expire_and_end_with_the_person() {
    on_both(|db| async move {
        db.insert_break_glass("g1", "sup-1", "recording:r1", 1_000, 2_000)
            .await
            .unwrap();
        db.insert_break_glass("g2", "sup-2", "recording:r1", 1_000, 9_000)
            .await
            .unwrap();
        let holders = |now| {
            let db = db.clone();
            async move { db.break_glass_holders("recording:r1", now).await.unwrap() }
        };
        let mut both = holders(1_999).await;
        both.sort();
        assert_eq!(both, ["sup-1", "sup-2"]);
        assert_eq!(holders(2_000).await, ["sup-2"], "expired at its time");
        assert!(
            db.break_glass_holders("recording:r2", 1_500)
                .await
                .unwrap()
                .is_empty(),
            "one resource only"
        );
        db.expire_break_glass_of("sup-2", 3_000).await.unwrap();
        assert!(holders(3_000).await.is_empty(), "revoked with the person");
    })
    .await;
}

#[tokio::test]
async fn sessions_live_expire_and_revoke() {
    on_both(|db| async move {
        let sessions = Sessions::new(db.clone());
        let new = |expires_at_ms, idle: Option<i64>| NewSession {
            kind: SessionKind::Staff,
            subject: SubjectId::new("nurse-1"),
            roles: vec![Role::Nurse],
            skills: vec![],
            display_name: None,
            birthdate: None,
            expires_at_ms,
            idle_timeout_ms: idle,
        };
        let (s, token) = sessions
            .create(new(now_ms() + 60_000, Some(60_000)))
            .await
            .unwrap();
        let resolved = sessions.resolve(&token).await.unwrap();
        assert_eq!(resolved.id, s.id);
        assert_eq!(resolved.principal.roles, vec![Role::Nurse]);
        sessions.revoke(&s.id).await.unwrap();
        assert!(sessions.resolve(&token).await.is_err(), "revoked");

        let (_, expired) = sessions.create(new(now_ms() - 1, None)).await.unwrap();
        assert!(
            sessions.resolve(&expired).await.is_err(),
            "past absolute lifetime"
        );

        let (idle, idle_token) = sessions
            .create(new(now_ms() + 60_000, Some(1_000)))
            .await
            .unwrap();
        db.touch_session(idle.id.as_str(), now_ms() - 5_000)
            .await
            .unwrap();
        assert!(sessions.resolve(&idle_token).await.is_err(), "idle timeout");

        assert!(
            sessions
                .resolve(&SecretString::from("not-a-token".to_string()))
                .await
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
async fn sign_in_state_is_single_use() {
    on_both(|db| async move {
        let row = LoginRow {
            state_hash: "h1".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/".into(),
            created_at: now_ms(),
        };
        db.insert_login(&row).await.unwrap();
        assert_eq!(db.take_login("h1").await.unwrap().unwrap().nonce, "n");
        assert!(db.take_login("h1").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn concurrent_audit_appends_form_one_intact_chain() {
    on_both(|db| async move {
        let a = Arc::new(auditor(&db));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { append(&a, 10).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let summary = verify_stored(&db).await.unwrap().unwrap();
        assert_eq!(summary.events, 40);
    })
    .await;
}

#[tokio::test]
async fn audit_tampering_is_detected_on_both_backends() {
    on_both(|db| async move {
        append(&auditor(&db), 10).await;
        let exec = |sql: &'static str| {
            let db = db.clone();
            async move { sqlx::query(sql).execute(db.pool()).await.unwrap() }
        };
        exec("UPDATE audit_events SET reason = 'x' WHERE seq = 3").await;
        assert_eq!(
            verify_stored(&db).await.unwrap(),
            Err(ChainBreak::Edited { seq: 3 })
        );
        exec("UPDATE audit_events SET reason = '' WHERE seq = 3").await;
        assert!(verify_stored(&db).await.unwrap().is_ok(), "restored");
        // A role or outcome the broker never writes cannot even be read back as an event.
        exec("UPDATE audit_events SET role = 'root' WHERE seq = 3").await;
        let err = verify_stored(&db).await.unwrap_err().to_string();
        assert!(err.contains("role `root`"), "{err}");
        exec("UPDATE audit_events SET role = 'nurse' WHERE seq = 3").await;
        assert!(verify_stored(&db).await.unwrap().is_ok(), "restored");

        exec("UPDATE audit_events SET seq = -1 WHERE seq = 5").await;
        exec("UPDATE audit_events SET seq = 5 WHERE seq = 6").await;
        exec("UPDATE audit_events SET seq = 6 WHERE seq = -1").await;
        assert_eq!(
            verify_stored(&db).await.unwrap(),
            Err(ChainBreak::Reordered {
                seq: 5,
                belongs_at: 6
            })
        );
        exec("UPDATE audit_events SET seq = -1 WHERE seq = 5").await;
        exec("UPDATE audit_events SET seq = 5 WHERE seq = 6").await;
        exec("UPDATE audit_events SET seq = 6 WHERE seq = -1").await;

        exec("DELETE FROM audit_events WHERE seq = 9 OR seq = 10").await;
        assert_eq!(
            verify_stored(&db).await.unwrap(),
            Err(ChainBreak::Truncated { last: 8, head: 10 })
        );

        exec("DELETE FROM audit_events WHERE seq = 4").await;
        assert_eq!(
            verify_stored(&db).await.unwrap(),
            Err(ChainBreak::Missing {
                expected: 4,
                found: 5
            })
        );
    })
    .await;
}

/// Message appends share transactions (group commit) yet behave one by one: concurrent appends get gapless
/// sequence numbers, a resend gets the stored message back, and an append that fails (unknown conversation,
/// a body that cannot be sealed) fails alone and takes no sequence number.
#[tokio::test]
async fn concurrent_message_appends_are_gapless_and_fail_alone() {
    on_both(|db| async move {
        let now = now_ms();
        let c = db
            .create_conversation(&examroom::store::ConversationRow {
                id: examroom::ids::ConversationId::new("c-group"),
                reference: "REF-GROUP".into(),
                queue: "triage".into(),
                patient: SubjectId::new("patient-1"),
                start_key: "k".into(),
                nurse: None,
                state: examroom::store::ConversationState::Waiting,
                priority_boost: 0,
                kek_id: "k1".into(),
                wrapped_key: "w".into(),
                last_seq: 0,
                enqueued_at: now,
                assigned_at: None,
                closed_at: None,
                last_activity_at: now,
            })
            .await
            .unwrap();
        let append = |conversation: &str, key: String, fail: bool| {
            let (db, conversation) = (db.clone(), examroom::ids::ConversationId::new(conversation));
            tokio::spawn(async move {
                db.append_message(
                    &conversation,
                    "patient-1",
                    "patient",
                    &key,
                    now_ms(),
                    move |seq| {
                        if fail {
                            Err(examroom::store::StoreError::Corrupt("cannot seal".into()))
                        } else {
                            Ok(format!("sealed-{seq}"))
                        }
                    },
                )
                .await
            })
        };
        let mut tasks = Vec::new();
        for i in 0..200 {
            tasks.push((i, append(c.id.as_str(), format!("key-{i}"), false)));
            if i % 20 == 0 {
                tasks.push((-1, append("no-such-conversation", format!("lost-{i}"), false)));
                tasks.push((-2, append(c.id.as_str(), format!("unsealable-{i}"), true)));
            }
        }
        let mut seqs = Vec::new();
        for (i, task) in tasks {
            let outcome = task.await.unwrap();
            match i {
                -1 | -2 => assert!(outcome.is_err(), "fails alone"),
                _ => {
                    let o = outcome.unwrap();
                    assert!(!o.duplicate);
                    assert_eq!(
                        o.message.body,
                        format!("sealed-{}", o.message.seq),
                        "sealed for its own number"
                    );
                    seqs.push(o.message.seq);
                }
            }
        }
        seqs.sort();
        assert_eq!(seqs, (1..=200).collect::<Vec<i64>>(), "gapless, each number once");
        // Resends, concurrently with new messages: the stored message comes back.
        let mut tasks = Vec::new();
        for i in 0..50 {
            tasks.push((true, i, append(c.id.as_str(), format!("key-{i}"), false)));
            tasks.push((false, i, append(c.id.as_str(), format!("new-{i}"), false)));
        }
        for (resend, i, task) in tasks {
            let o = task.await.unwrap().unwrap();
            assert_eq!(o.duplicate, resend, "{i}");
            if resend {
                assert_eq!(o.message.idempotency_key, format!("key-{i}"));
            }
        }
        // A resend racing its original (often in the same batch): one message, both told its number.
        let pairs: Vec<_> = (0..20)
            .map(|i| {
                (
                    append(c.id.as_str(), format!("race-{i}"), false),
                    append(c.id.as_str(), format!("race-{i}"), false),
                )
            })
            .collect();
        for (a, b) in pairs {
            let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
            assert_eq!(a.message.seq, b.message.seq);
            assert!(a.duplicate != b.duplicate, "exactly one is new");
        }
        let stored = db.messages_after(&c.id, 0, 1000).await.unwrap();
        assert_eq!(stored.len(), 270);
        assert_eq!(
            stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=270).collect::<Vec<i64>>()
        );
        db.close().await;
    })
    .await;
}
