//! The broker in this test's process: `examroom::serve` on an ephemeral loopback listener with SQLite and the
//! development provider, wired exactly as `examroom dev` wires it, so socket and REST rules are tested in
//! milliseconds without a child process. Tests that need the real binary (start-up, signals, crashes, network
//! namespaces, logs) keep using `common::Broker`. A panic in the broker's code (a handler's task, which the
//! server would otherwise swallow) fails the test when its `TestApp` is dropped. Panics are counted per thread:
//! a `#[tokio::test]` runs the broker's tasks on its own thread, so one test's broker never blames another's.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

thread_local! {
    /// Panics on this thread raised outside the test code itself (the test's own assertions live under `tests/`).
    static BROKER_PANICS: Cell<usize> = const { Cell::new(0) };
}

fn count_broker_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.location().is_some_and(|l| !l.file().starts_with("tests/")) {
                BROKER_PANICS.with(|n| n.set(n.get() + 1));
            }
            previous(info);
        }));
    });
}

pub struct TestApp {
    pub url: String,
    /// The data directory (`examroom.db`, `dev-idp/credentials.json`).
    pub data: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    panics_before: usize,
}

impl TestApp {
    /// Starts a broker with the `EXAMROOM_*` overrides in `env`; it stops when the value is dropped (or with
    /// the test's runtime).
    pub async fn spawn(env: &[(&str, &str)]) -> TestApp {
        count_broker_panics();
        let panics_before = BROKER_PANICS.with(Cell::get);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let mut env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        // A dropped broker drains first; one that still hosts a probe's visit would wait the default 30 s for
        // it with its database connections open, and the suite's brokers would exhaust PostgreSQL's.
        if !env.iter().any(|(k, _)| k == "EXAMROOM_CLUSTER__DRAIN_SECONDS") {
            env.push(("EXAMROOM_CLUSTER__DRAIN_SECONDS".into(), "2".into()));
        }
        if let Some(db) = crate::storage::suite_database(&data) {
            env.push(("EXAMROOM_DATABASE__URL".into(), db));
        }
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
            panics_before,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if !std::thread::panicking() {
            assert_eq!(
                BROKER_PANICS.with(Cell::get),
                self.panics_before,
                "the broker panicked while this test ran (the message is above)"
            );
        }
    }
}
