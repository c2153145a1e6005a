//! Persistence: one connection pool over SQLite (the default) or PostgreSQL (for several nodes), with the same
//! portable migrations and queries on both. This module stores and loads rows; it holds no business rules.

mod audit;
mod cluster;
mod context;
mod conversations;
mod keys;
mod logins;
mod recordings;
mod retention;
mod scheduled_reports;
mod segments;
mod sessions;
mod staff;
mod visit_hosts;
mod visits;

pub use audit::{AuditHead, AuditRow, Checkpoint, Outcome};
pub use cluster::{BusItem, BusListener, NodeRow, PresenceRow};
pub use context::WrapUpRow;
pub use conversations::{AppendOutcome, ConversationRow, ConversationState, MessageRow};
pub use keys::{WrappedKeyKind, WrappedKeyRow};
pub use logins::LoginRow;
pub use recordings::{NewRecording, RecordingPhase, RecordingRow};
pub use retention::ConversationShred;
pub use scheduled_reports::ScheduledReportRow;
pub use segments::SegmentRow;
pub use sessions::{SessionRow, StaffSignedIn};
pub use visit_hosts::{HostRow, VisitHostRow};
pub use visits::ClassificationRow;

use std::borrow::Cow;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("database unavailable: {0}")]
    Unavailable(&'static str),
    #[error("not supported on this database: {0}")]
    Unsupported(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle shared by the whole broker.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// For connections outside the pool (the bus listener).
    url: std::sync::Arc<SecretString>,
    /// The message writer's queue (group commit), started with the first append.
    appender: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<conversations::PendingAppend>>>,
}

/// The migrations, embedded so a deployment is one binary; the same files run on SQLite and PostgreSQL.
/// During a rolling upgrade a node of the previous release runs against this release's schema
/// (docs/operations.md, "Upgrades"): migrations only add tables, columns with defaults and indexes, and a
/// binary meets migrations newer than its own without refusing to start.
fn migrator() -> Migrator {
    let m = |version, name, sql: &'static str| {
        Migration::new(
            version,
            Cow::Borrowed(name),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    let mut migrator = Migrator::with_migrations(vec![
        m(
            1,
            "foundation",
            include_str!("../../migrations/0001_foundation.sql"),
        ),
        m(
            2,
            "messaging",
            include_str!("../../migrations/0002_messaging.sql"),
        ),
        m(
            3,
            "recordings",
            include_str!("../../migrations/0003_recordings.sql"),
        ),
        m(
            4,
            "audit_checkpoints",
            include_str!("../../migrations/0004_audit_checkpoints.sql"),
        ),
        m(5, "siem", include_str!("../../migrations/0005_siem.sql")),
        m(
            6,
            "visit_classifications",
            include_str!("../../migrations/0006_visit_classifications.sql"),
        ),
        m(
            7,
            "break_glass",
            include_str!("../../migrations/0007_break_glass.sql"),
        ),
        m(8, "cluster", include_str!("../../migrations/0008_cluster.sql")),
        m(
            9,
            "node_load",
            include_str!("../../migrations/0009_node_load.sql"),
        ),
        m(
            10,
            "visit_hosts",
            include_str!("../../migrations/0010_visit_hosts.sql"),
        ),
        m(
            11,
            "recording_writer",
            include_str!("../../migrations/0011_recording_writer.sql"),
        ),
        m(
            12,
            "recording_segments",
            include_str!("../../migrations/0012_recording_segments.sql"),
        ),
        m(
            13,
            "patient_context",
            include_str!("../../migrations/0013_patient_context.sql"),
        ),
        m(
            14,
            "segment_cues",
            include_str!("../../migrations/0014_segment_cues.sql"),
        ),
        m(
            15,
            "staff_directory",
            include_str!("../../migrations/0015_staff_directory.sql"),
        ),
        m(
            16,
            "evidence_indexes",
            include_str!("../../migrations/0016_evidence_indexes.sql"),
        ),
        m(
            17,
            "agent_authorization",
            include_str!("../../migrations/0017_agent_authorization.sql"),
        ),
        m(
            18,
            "scheduled_reports",
            include_str!("../../migrations/0018_scheduled_reports.sql"),
        ),
    ]);
    migrator.set_ignore_missing(true);
    migrator
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &SecretString, max_connections: Option<u32>) -> Result<Self, StoreError> {
        install_default_drivers();
        let url = url.expose_secret();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
            && let Some(dir) = std::path::Path::new(&path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Corrupt(format!("data directory: {e}")))?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.unwrap_or(if backend == Backend::Sqlite { 4 } else { 10 }))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers; FULL sync so an acknowledged write survives power loss.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let migrator = migrator();
        migrator.run(&pool).await?;
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let newer: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE version > $1")
            .bind(known)
            .fetch_all(&pool)
            .await?;
        if !newer.is_empty() {
            tracing::warn!(
                ?newer,
                "the database schema is newer than this binary (a rolling upgrade in progress): upgrade this node"
            );
        }
        Ok(Self {
            pool,
            backend,
            url: std::sync::Arc::new(SecretString::from(url.to_string())),
            appender: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For `/readyz`: a round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_paths() {
        assert_eq!(
            super::sqlite_path("sqlite:///tmp/x.db?mode=rwc").as_deref(),
            Some("/tmp/x.db")
        );
        assert_eq!(super::sqlite_path("sqlite:./a/b.db").as_deref(), Some("./a/b.db"));
        assert_eq!(super::sqlite_path("sqlite::memory:"), None);
    }

    /// A node of the previous release starts on a schema a newer release migrated (a rolling upgrade).
    #[tokio::test]
    async fn a_schema_with_newer_migrations_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let url =
            secrecy::SecretString::from(format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display()));
        let db = super::Db::connect(&url, Some(1)).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from a newer release', 1, x'00', 0)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        db.close().await;
        let again = super::Db::connect(&url, Some(1)).await;
        assert!(again.is_ok(), "{:?}", again.err());
    }

    /// What makes a migration unsafe for a node of the previous release still running on the schema.
    fn destructive(sql: &str) -> Option<String> {
        let sql: String = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        for statement in sql
            .split(';')
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        {
            let alter = statement.starts_with("ALTER ");
            let add_column = alter && statement.contains("ADD COLUMN");
            let unsafe_because = if statement.starts_with("DROP ") || (alter && statement.contains(" DROP "))
            {
                Some("drops")
            } else if alter && statement.contains(" RENAME ") {
                Some("renames")
            } else if alter && (statement.contains("ALTER COLUMN") || statement.contains(" TYPE ")) {
                Some("changes a column")
            } else if add_column && statement.contains("NOT NULL") && !statement.contains("DEFAULT") {
                Some("adds a NOT NULL column without a default (the previous release inserts without it)")
            } else {
                None
            };
            if let Some(why) = unsafe_because {
                return Some(format!("{why}: {statement}"));
            }
        }
        None
    }

    /// Migrations newer than the previous release's last one (`deploy/previous-release`) only add, so its nodes
    /// keep running during a rolling upgrade (docs/operations.md, "Upgrades").
    #[test]
    fn migrations_since_the_previous_release_only_add() {
        let release = include_str!("../../deploy/previous-release");
        let last: u32 = release.split_whitespace().nth(2).unwrap().parse().unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let version: u32 = name.split('_').next().unwrap().parse().unwrap();
            if version > last {
                let sql = std::fs::read_to_string(&path).unwrap();
                assert_eq!(
                    destructive(&sql),
                    None,
                    "{name} would break the previous release's nodes"
                );
            }
        }
        assert!(destructive("CREATE TABLE a (type TEXT NOT NULL); CREATE INDEX a_x ON a (type);").is_none());
        assert!(destructive("ALTER TABLE a ADD COLUMN y BIGINT NOT NULL DEFAULT 0;").is_none());
        for bad in [
            "DROP TABLE a;",
            "ALTER TABLE a DROP COLUMN y;",
            "ALTER TABLE a RENAME COLUMN y TO z;",
            "ALTER TABLE a ALTER COLUMN y TYPE TEXT;",
            "ALTER TABLE a ADD COLUMN y BIGINT NOT NULL;",
        ] {
            assert!(destructive(bad).is_some(), "{bad}");
        }
    }

    /// Every file in `migrations/` is applied (a file added without its line here would silently not be).
    #[test]
    fn every_migration_file_is_applied() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
            .count();
        assert_eq!(super::migrator().iter().count(), files);
    }
}
