//! Named background workers: every loop the broker runs beside its requests (timers, housekeeping, audit
//! checkpoints, SIEM delivery, recovery of recordings a crash cut) is started here under a name, reports whether
//! it is running, stopped or failed, and is stopped on shutdown within a deadline — a worker that does not finish
//! in time is aborted and named in the log. A worker receives a stop signal and returns when it changes; a panic is caught and shown as
//! `failed`, never taking the broker down. (The cluster work will put some of these under leases.)

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Running,
    /// Returned (after a stop signal, or because its work was done).
    Stopped,
    /// Panicked; its last words are in the log.
    Failed,
    /// Did not stop within the shutdown deadline and was aborted.
    Aborted,
}

/// The workers' states by name, shared with whoever reports them (`/api/v1/system/status`).
#[derive(Clone, Default)]
pub struct WorkerStatus(Arc<Mutex<BTreeMap<&'static str, WorkerState>>>);

impl WorkerStatus {
    fn set(&self, name: &'static str, state: WorkerState) {
        self.0.lock().expect("worker status lock").insert(name, state);
    }

    /// Every worker started so far, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, WorkerState> {
        self.0.lock().expect("worker status lock").clone()
    }
}

/// Tells the workers to stop.
#[derive(Clone)]
pub struct StopSender(watch::Sender<bool>);

impl StopSender {
    pub fn send(&self, stop: bool) -> Result<(), watch::error::SendError<bool>> {
        self.0.send(stop)
    }
}

/// Starts workers and stops them together.
pub struct Workers {
    stop: watch::Sender<bool>,
    status: WorkerStatus,
    /// Each worker's watcher (which records how it ended) and the worker's own abort handle.
    running: Vec<(&'static str, JoinHandle<()>, AbortHandle)>,
}

impl Workers {
    pub fn new(status: WorkerStatus) -> Self {
        Self {
            stop: watch::channel(false).0,
            status,
            running: Vec::new(),
        }
    }

    /// A receiver of the stop signal (true once stopping), for work that is not a worker itself.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Runs `work(stop)` as the worker `name`.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, work: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let status = self.status.clone();
        status.set(name, WorkerState::Running);
        let inner = tokio::spawn(work(self.stop.subscribe()));
        let abort = inner.abort_handle();
        let handle = tokio::spawn(async move {
            match inner.await {
                Ok(()) => status.set(name, WorkerState::Stopped),
                Err(e) if e.is_panic() => {
                    tracing::error!(worker = name, "background worker panicked");
                    status.set(name, WorkerState::Failed);
                }
                Err(_) => status.set(name, WorkerState::Aborted),
            }
        });
        self.running.push((name, handle, abort));
    }

    /// A handle that tells every worker to stop, for a shutdown path that does not own the runner.
    pub fn stop_sender(&self) -> StopSender {
        StopSender(self.stop.clone())
    }

    /// Tells every worker to stop (they see it at their next wait).
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops every worker: the signal, then at most `deadline` for all of them together; those still running
    /// are aborted and named.
    pub async fn shutdown(self, deadline: Duration) {
        self.request_stop();
        let until = tokio::time::Instant::now() + deadline;
        for (name, mut handle, abort) in self.running {
            if tokio::time::timeout_at(until, &mut handle).await.is_err() {
                tracing::warn!(worker = name, "worker did not stop in time; aborted");
                abort.abort();
                let _ = handle.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_report_their_state_and_stop_within_the_deadline() {
        let status = WorkerStatus::default();
        let mut workers = Workers::new(status.clone());
        workers.spawn("polite", |mut stop| async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        workers.spawn("done", |_| async {});
        workers.spawn("stubborn", |_| std::future::pending());
        workers.spawn("broken", |_| async { panic!("a bug") });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = status.snapshot();
        assert_eq!(now["polite"], WorkerState::Running);
        assert_eq!(now["done"], WorkerState::Stopped);
        assert_eq!(now["broken"], WorkerState::Failed);
        workers.shutdown(Duration::from_millis(200)).await;
        let after = status.snapshot();
        assert_eq!(after["polite"], WorkerState::Stopped);
        assert_eq!(after["stubborn"], WorkerState::Aborted);
    }
}
