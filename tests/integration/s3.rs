//! The S3 object store against real S3-compatible servers, each started by this test on loopback and stopped
//! by its PID: `moto[server]` (versioning, Object Lock, legal hold) and `s3s-fs` (real SigV4 checks,
//! multipart). Small and multipart uploads, lengths and ranged reads, Object Lock retention and legal hold set
//! on the objects, deletion of every version, and an outage: with the server stopped an upload fails and
//! loses nothing; once it is back the same upload succeeds. `scripts/test.sh` installs both servers and
//! exports their paths.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::Client;
use examroom::recording::objects::{ObjectError, ObjectStore, S3Objects, S3Settings};

use crate::common::free_port;

pub struct Server {
    child: Child,
    pub endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on port {port} did not start");
}

pub fn moto(port: u16) -> Option<Server> {
    let bin = std::env::var("TEST_MOTO_SERVER").ok()?;
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server");
    wait_listening(port);
    Some(Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

fn s3s_fs(port: u16, dir: &Path) -> Option<Server> {
    let bin = std::env::var("TEST_S3S_FS").ok()?;
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "AKEXAMROOM",
            "--secret-key",
            "examroom-secret",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs");
    wait_listening(port);
    Some(Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

fn servers_required() -> bool {
    let required = std::env::var("TEST_REQUIRE_S3").is_ok();
    if !required {
        eprintln!("TEST_MOTO_SERVER / TEST_S3S_FS unset: skipping (scripts/test.sh installs both)");
    }
    required
}

fn settings(endpoint: &str, bucket: &str, object_lock: bool) -> S3Settings {
    S3Settings {
        endpoint: Some(endpoint.to_string()),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        path_style: true,
        credentials: Some(("AKEXAMROOM".into(), "examroom-secret".into())),
        object_lock: object_lock.then(|| "GOVERNANCE".to_string()),
        multipart_threshold: 6 * 1024 * 1024,
        part_size: 5 * 1024 * 1024,
    }
}

pub async fn raw_client(endpoint: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKEXAMROOM",
            "examroom-secret",
            None,
            None,
            "test",
        ))
        .http_client(examroom::recording::objects::http_client())
        .build();
    Client::from_conf(conf)
}

fn sealed_file(dir: &Path, name: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// What every S3 server must do for us.
async fn conformance(store: &S3Objects, dir: &Path) {
    let (small, small_data) = sealed_file(dir, "small", 300_000);
    store
        .put_file("r-small.erec", &small, 4_102_444_800_000, false)
        .await
        .unwrap();
    assert_eq!(store.len("r-small.erec").await.unwrap(), 300_000);
    assert_eq!(
        store.read("r-small.erec", 1000, 500).await.unwrap(),
        small_data[1000..1500]
    );

    // Above the threshold: uploaded in three parts.
    let (big, big_data) = sealed_file(dir, "big", 11 * 1024 * 1024 + 123);
    store
        .put_file("r-big.erec", &big, 4_102_444_800_000, false)
        .await
        .unwrap();
    assert_eq!(store.len("r-big.erec").await.unwrap(), big_data.len() as u64);
    let at = 10 * 1024 * 1024;
    assert_eq!(
        store.read("r-big.erec", at as u64, 4096).await.unwrap(),
        big_data[at..at + 4096]
    );

    assert!(matches!(
        store.len("r-missing.erec").await,
        Err(ObjectError::NotFound)
    ));
    assert!(store.delete("r-small.erec").await.unwrap() >= 1);
    assert!(matches!(
        store.len("r-small.erec").await,
        Err(ObjectError::NotFound)
    ));
}

#[tokio::test]
async fn s3_store_against_moto_with_object_lock_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(server) = moto(port) else {
        assert!(!servers_required(), "TEST_MOTO_SERVER is required");
        return;
    };
    let raw = raw_client(&server.endpoint).await;
    raw.create_bucket()
        .bucket("recordings")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let store = S3Objects::new(&settings(&server.endpoint, "recordings", true)).await;
    conformance(&store, dir.path()).await;

    // Object Lock retention and legal hold are set on the object itself.
    let (file, _) = sealed_file(dir.path(), "locked", 1000);
    let until = 4_102_444_800_000; // 2100-01-01
    store.put_file("r-locked.erec", &file, until, true).await.unwrap();
    let head = raw
        .head_object()
        .bucket("recordings")
        .key("r-locked.erec")
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("GOVERNANCE"));
    assert_eq!(
        head.object_lock_retain_until_date()
            .map(|d| d.to_millis().unwrap()),
        Some(until)
    );
    assert_eq!(
        head.object_lock_legal_hold_status().map(|s| s.as_str()),
        Some("ON")
    );
    store.set_legal_hold("r-locked.erec", false).await.unwrap();
    let head = raw
        .head_object()
        .bucket("recordings")
        .key("r-locked.erec")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.object_lock_legal_hold_status().map(|s| s.as_str()),
        Some("OFF")
    );

    // Two uploads make two versions (Object Lock buckets are versioned); deletion removes both.
    store.put_file("r-locked.erec", &file, 0, false).await.unwrap();
    assert_eq!(store.delete("r-locked.erec").await.unwrap(), 2);
    let versions = raw
        .list_object_versions()
        .bucket("recordings")
        .prefix("r-locked.erec")
        .send()
        .await
        .unwrap();
    assert!(
        versions.versions().is_empty() && versions.delete_markers().is_empty(),
        "every version gone"
    );

    // An outage: the upload fails and the sealed file is still there; after the restart it goes through.
    drop(server);
    let (pending, _) = sealed_file(dir.path(), "pending", 5000);
    let err = store
        .put_file("r-pending.erec", &pending, 0, false)
        .await
        .unwrap_err();
    assert!(matches!(err, ObjectError::Unavailable(_)), "{err}");
    assert!(pending.exists(), "nothing lost while the store is down");
    let server = moto(port).unwrap();
    let raw = raw_client(&server.endpoint).await;
    raw.create_bucket()
        .bucket("recordings")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    store
        .put_file("r-pending.erec", &pending, 0, false)
        .await
        .unwrap();
    assert_eq!(store.len("r-pending.erec").await.unwrap(), 5000);
}

#[tokio::test]
async fn s3_store_against_s3s_fs_with_real_sigv4() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = s3s_fs(free_port(), &dir.path().join("fs")) else {
        assert!(!servers_required(), "TEST_S3S_FS is required");
        return;
    };
    let raw = raw_client(&server.endpoint).await;
    raw.create_bucket().bucket("recordings").send().await.unwrap();
    let store = S3Objects::new(&settings(&server.endpoint, "recordings", false)).await;
    conformance(&store, dir.path()).await;

    // Wrong credentials are refused (s3s-fs checks SigV4 for real).
    let mut wrong = settings(&server.endpoint, "recordings", false);
    wrong.credentials = Some(("AKEXAMROOM".into(), "not-the-secret".into()));
    let wrong = S3Objects::new(&wrong).await;
    let (file, _) = sealed_file(dir.path(), "x", 10);
    assert!(matches!(
        wrong.put_file("r-x.erec", &file, 0, false).await,
        Err(ObjectError::Unavailable(_))
    ));
}

/// Scheduled reports on S3 with Object Lock: stored under the bucket's lock until `keep_days` have passed,
/// and verified from the bucket.
#[tokio::test]
async fn scheduled_reports_are_locked_in_the_bucket_for_their_keep_days() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(server) = moto(port) else {
        assert!(!servers_required(), "TEST_MOTO_SERVER is required");
        return;
    };
    let raw = raw_client(&server.endpoint).await;
    raw.create_bucket()
        .bucket("evidence")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let store = std::sync::Arc::new(S3Objects::new(&settings(&server.endpoint, "evidence", true)).await);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    crate::storage::suite_database(&data);
    let db = examroom::store::Db::connect(
        &secrecy::SecretString::from(crate::storage::database_url(&data)),
        Some(1),
    )
    .await
    .unwrap();
    let evidence = examroom::audit::evidence::Evidence {
        db: db.clone(),
        audit: examroom::audit::Auditor::new(db.clone(), examroom::telemetry::Metrics::new().audit_events),
        objects: std::sync::Arc::new(examroom::recording::objects::Archive(store)),
        work_dir: data.clone(),
    };
    let config: examroom::config::reports::ReportsConfig = toml::from_str(
        "[[schedules]]\nname = 'daily-consent'\nreport = 'consent'\nevery = 'daily'\nkeep_days = 400\n",
    )
    .unwrap();
    let signer = examroom::audit::checkpoint::Signer::from_pkcs8(
        &examroom::audit::checkpoint::Signer::generate_pkcs8(),
    )
    .unwrap();
    let now = examroom::clock::now_ms();
    assert_eq!(evidence.run_due(&config, &signer, now).await, 1);
    assert_eq!(
        evidence.run_due(&config, &signer, now + 1000).await,
        0,
        "once per period"
    );
    let row = db.scheduled_reports(10).await.unwrap().remove(0);
    let head = raw
        .head_object()
        .bucket("evidence")
        .key(&row.object_key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode().map(|m| m.as_str()), Some("GOVERNANCE"));
    assert_eq!(
        head.object_lock_retain_until_date()
            .map(|d| d.to_millis().unwrap() / 1000),
        Some((now + 400 * 86_400_000) / 1000)
    );
    let check = evidence.check(&row, &[signer.public_key()]).await.unwrap();
    assert!(check.valid, "{check:?}");
    db.close().await;
}
