//! The broker in this test's process: `examroom::serve` on an ephemeral loopback listener with SQLite and the
//! development provider, wired exactly as `examroom dev` wires it, so socket and REST rules are tested in
//! milliseconds without a child process. Tests that need the real binary (start-up, signals, crashes, network
//! namespaces, logs) keep using `common::Broker`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

pub struct TestApp {
    pub url: String,
    /// The data directory (`examroom.db`, `dev-idp/credentials.json`).
    pub data: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// Starts a broker with the `EXAMROOM_*` overrides in `env`; it stops when the value is dropped (or with
    /// the test's runtime).
    pub async fn spawn(env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (config, idp) = examroom::dev::config(&data, &addr.to_string(), &url, &env).unwrap();
        let app = examroom::app::App::build(config, Some(idp)).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(examroom::serve(Arc::new(app), listener, async move {
            let _ = stopped.await;
        }));
        TestApp {
            url,
            data,
            _dir: dir,
            stop: Some(stop),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
