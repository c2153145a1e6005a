//! examroom: a telehealth session broker. A patient signed in to the clinic portal opens a secure chat, waits in
//! a waiting room, and is elevated to video by a nurse through examroom's own WebRTC SFU, with recording under
//! policy. This crate holds the broker; `main.rs` is only the command line.
//!
//! Module map: `config` (typed configuration), `auth` (identity and sessions), `policy` (access decisions),
//! `audit` (hash-chained audit trail), `store` (SQLite/PostgreSQL), `http` (routers and middleware),
//! `dev_idp` (the development OpenID provider of `examroom dev`), `telemetry` (logs and metrics).

pub mod app;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod dev;
pub mod dev_idp;
pub mod http;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod media;
pub mod messaging;
pub mod pii;
pub mod policy;
pub mod protocol;
pub mod recording;
pub mod role;
pub mod store;
pub mod telemetry;
pub mod triage;
pub mod visit;
pub mod waiting_room;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::AppState;

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish for at most the
/// configured grace period. Background jobs stop with the server.
pub async fn serve(
    app: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut workers = workers::Workers::new(app.workers.clone());
    // Cluster-wide work runs on one node at a time, under a lease of the same name (docs/cluster.md); on
    // SQLite the only node simply runs it.
    let cluster = app.cluster.clone();
    spawn_leased(&mut workers, &app, "audit-checkpoints", audit_checkpoints);
    spawn_leased(&mut workers, &app, "housekeeping", housekeeping);
    spawn_leased(&mut workers, &app, "alerts", alerts);
    spawn_leased(&mut workers, &app, "scheduled-reports", scheduled_reports);
    workers.spawn(
        "routing",
        on_drain_hand_over(
            &app,
            cluster.leased("routing", {
                let messaging = app.messaging.clone();
                move |stop| messaging.clone().run_leader(stop)
            }),
        ),
    );
    workers.spawn(
        "siem-delivery",
        on_drain_hand_over(
            &app,
            cluster.leased("siem-delivery", {
                let (db, hooks) = (app.db.clone(), app.config.siem.webhooks.clone());
                move |stop| audit::siem::run(db.clone(), hooks.clone(), stop)
            }),
        ),
    );
    workers.spawn(
        "visit-failover",
        on_drain_hand_over(
            &app,
            cluster.leased("visit-failover", {
                let video = app.video.clone();
                move |stop| video.clone().run_failover(stop)
            }),
        ),
    );
    // This node's own work: its visits, its spool, its sockets, its place in the cluster.
    workers.spawn("video-timers", |stop| app.video.clone().run_timers(stop));
    workers.spawn("recording-recovery", |stop| {
        app.video.clone().recover_recordings(stop)
    });
    workers.spawn("session-revocations", {
        let app = app.clone();
        |stop| session_revocations(app, stop)
    });
    workers.spawn("observability", {
        let app = app.clone();
        |stop| observability(app, stop)
    });
    workers.spawn("rate-limits", {
        let app = app.clone();
        |stop| forget_idle_limits(app, stop)
    });
    workers.spawn("bus-publisher", |stop| {
        app.messaging.clone().run_bus_publisher(stop)
    });
    workers.spawn("bus-listener", |stop| {
        app.messaging.clone().run_bus_listener(stop)
    });
    let internal = if cluster.is_shared() {
        let c = &app.config.cluster;
        let bound = TcpListener::bind(&c.internal_listen)
            .await
            .map_err(|e| anyhow::anyhow!("cluster.internal_listen: {}: {e}", c.internal_listen))?;
        let url = c
            .internal_url
            .clone()
            .unwrap_or(format!("http://{}", bound.local_addr()?));
        tracing::info!(node = %cluster.node_id(), internal = %url, "joining the cluster");
        cluster.set_internal_url(url);
        Some(bound)
    } else {
        None
    };
    workers.spawn("cluster-membership", {
        let m = &app.config.media;
        let media = if m.announced_ips.is_empty() {
            &m.bind_ips
        } else {
            &m.announced_ips
        }
        .join(",");
        let me = app.clone();
        let load: Arc<dyn Fn() -> cluster::NodeLoad + Send + Sync> = Arc::new(move || cluster::NodeLoad {
            sockets: me.messaging.hub.connections() as i64,
            live_visits: me.video.live_visits() as i64,
            draining: me.is_draining(),
        });
        let gauges = (
            app.metrics.cluster_nodes.clone(),
            app.metrics.cluster_leases.clone(),
        );
        |stop| cluster.clone().run_membership(media, load, gauges, stop)
    });
    if let Some(internal) = internal {
        let router = http::internal::router(app.clone());
        let mut stop = workers.stop_signal();
        tokio::spawn(async move {
            let served = axum::serve(internal, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "internal listener failed");
            }
        });
    }
    let stop_rx = workers.stop_signal();
    let grace = Duration::from_secs(app.config.server.shutdown_grace_seconds);
    let router = http::router(app.clone());
    let mut drained = stop_rx.clone();
    // Chat frames are small and latency-bound: without TCP_NODELAY a second small frame on a socket (an
    // acknowledgement right after the message's echo) waits for the client's delayed ACK, about 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    let stopping = workers.stop_sender();
    // The peer address reaches handlers (per-address rate limits; see `http::extract::client_address`).
    let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let draining = app.clone();
    let by_command = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asked = by_command.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let mut requested = draining.draining.subscribe();
        tokio::select! {
            _ = shutdown => tracing::info!("stop requested: draining"),
            _ = requested.wait_for(|d| *d) => {
                tracing::info!("drain requested by `examroom drain`");
                asked.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        draining.drain().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping.send(true);
    });
    tokio::select! {
        result = server => result?,
        _ = async {
            let _ = drained.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("grace period over; closing remaining connections"),
    }
    workers.shutdown(WORKER_STOP_DEADLINE).await;
    app.db.close().await;
    if by_command.load(std::sync::atomic::Ordering::Relaxed) {
        // `examroom drain` waits to see this node leave the cluster; as a Kubernetes preStop hook it runs in
        // this container and dies with it, so give it a moment to see the node gone and exit 0.
        tokio::time::sleep(DRAIN_COMMAND_LINGER).await;
    }
    Ok(())
}

/// Leased work whose stop signal also fires when this node starts draining, when other nodes can take the
/// lease over (PostgreSQL): the routing leader and the cluster's jobs move at once instead of when the node
/// exits. A single node keeps them until it stops.
/// Spawns one of the broker's own cluster-wide jobs: under a lease of its name, handed over on a drain.
fn spawn_leased<Fut>(
    workers: &mut workers::Workers,
    app: &AppState,
    name: &'static str,
    job: fn(AppState, watch::Receiver<bool>) -> Fut,
) where
    Fut: Future<Output = ()> + Send + 'static,
{
    let leased = app.cluster.leased(name, {
        let app = app.clone();
        move |stop| job(app.clone(), stop)
    });
    workers.spawn(name, on_drain_hand_over(app, leased));
}

fn on_drain_hand_over<W, Fut>(
    app: &AppState,
    work: W,
) -> impl FnOnce(watch::Receiver<bool>) -> Fut + use<W, Fut>
where
    W: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let app = app.clone();
    move |mut stop| {
        if !app.cluster.is_shared() {
            return work(stop);
        }
        let (tx, rx) = watch::channel(*stop.borrow());
        let mut drain = app.draining.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = drain.wait_for(|d| *d) => {}
            }
            let _ = tx.send(true);
        });
        work(rx)
    }
}

/// How long background workers get to finish after the server stopped.
const WORKER_STOP_DEADLINE: Duration = Duration::from_secs(5);

/// How long a node asked to drain by `examroom drain` stays up after leaving the cluster (the command checks
/// every 250 ms).
const DRAIN_COMMAND_LINGER: Duration = Duration::from_secs(1);

/// Signs the audit chain's head every minute when it moved.
async fn audit_checkpoints(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let signer = match audit::checkpoint::load_or_create_signer(&app.config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "audit signing key unavailable: no checkpoints");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = audit::checkpoint::checkpoint_now(&app.db, &signer, clock::now_ms()).await {
            tracing::warn!(error = %e, "audit checkpoint failed");
        }
    }
}

/// Every ten minutes: clean-up of ended sessions and abandoned sign-ins, and the retention sweeps (recordings, then
/// chats, wrap-ups and visit records).
async fn housekeeping(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = clock::now_ms();
        if let Err(e) = app.db.purge_sessions(now, 24 * 3600 * 1000).await {
            tracing::warn!(error = %e, "session purge failed");
        }
        if let Err(e) = app.db.purge_logins(now - 3600 * 1000).await {
            tracing::warn!(error = %e, "sign-in purge failed");
        }
        match recording::retention::sweep(&app.db, app.video.recording_objects(), &app.audit, now, false)
            .await
        {
            Ok(receipts) if !receipts.is_empty() => {
                tracing::info!(deleted = receipts.len(), "retention sweep deleted recordings");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
        match messaging::retention::sweep(&app.db, &app.audit, &app.config.retention, now, false).await {
            Ok(receipts) if !receipts.is_empty() => {
                tracing::info!(
                    removed = receipts.len(),
                    "retention sweep removed chats and visit records"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "chat retention sweep failed"),
        }
    }
}

/// Every `alerts.check_seconds`: the alerts the recent audit chain calls for, raised once each (`audit::alerts`).
async fn alerts(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let rules = audit::alerts::AlertRules {
        exposure_threshold: app.config.reports.exposure_threshold,
        denied_attempts: app.config.alerts.denied_attempts,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(app.config.alerts.check_seconds));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match audit::alerts::check(&app.db, &app.audit, rules, clock::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(raised = n, "alerts raised"),
            Err(e) => tracing::warn!(error = %e, "alert check failed"),
        }
    }
}

/// Every minute (and at start): the scheduled reports whose period has ended (`audit::evidence`).
async fn scheduled_reports(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    if app.config.reports.schedules.is_empty() {
        return;
    }
    let signer = match audit::checkpoint::load_or_create_signer(&app.config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "audit signing key unavailable: no scheduled reports");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // Failures are logged per schedule and retried on the next tick.
        let stored = app
            .evidence
            .run_due(&app.config.reports, &signer, clock::now_ms())
            .await;
        if stored > 0 {
            tracing::info!(stored, "scheduled reports stored");
        }
    }
}

/// Every 15 seconds (and at start): the gauges an operator alerts on (`deploy/prometheus/alerts.yml`). Every node
/// reports the cluster-wide ones too, so one node's loss never hides them; the rules take the maximum.
async fn observability(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        observe(&app).await;
    }
}

async fn observe(app: &AppState) {
    let m = &app.metrics.ops;
    if let Ok((queues, _)) = app.messaging.queue_stats().await {
        for q in queues {
            let queue = [q.queue.as_str()];
            m.queue_waiting.with_label_values(&queue).set(q.waiting as i64);
            m.queue_longest_wait
                .with_label_values(&queue)
                .set(q.longest_wait_seconds as i64);
            m.queue_ready_nurses
                .with_label_values(&queue)
                .set(q.ready_nurses as i64);
        }
    }
    let now = clock::now_ms();
    match app.db.oldest_unstored_segment().await {
        Ok(oldest) => m
            .outbox_oldest
            .set(oldest.map_or(0, |at| (now - at).max(0) / 1000)),
        Err(e) => tracing::warn!(error = %e, "outbox age unknown"),
    }
    let Ok(head) = app.db.audit_head().await else {
        return;
    };
    let mut lag = 0;
    for hook in &app.config.siem.webhooks {
        if let Ok(delivered) = app.db.siem_cursor(&hook.name).await {
            lag = lag.max(head.seq - delivered);
        }
    }
    m.siem_lag.set(lag);
    match app.db.last_checkpoint().await {
        Ok(Some((seq, at))) => {
            m.checkpoint_age.set((now - at).max(0) / 1000);
            m.uncheckpointed.set((head.seq - seq).max(0));
        }
        Ok(None) => m.uncheckpointed.set(head.seq),
        Err(e) => tracing::warn!(error = %e, "checkpoint age unknown"),
    }
}

/// Every ten minutes: forgets this node's rate-limit buckets of callers gone quiet (they are per node).
async fn forget_idle_limits(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        app.limits.forget_idle();
    }
}

/// Watches the database for revoked sessions (whoever revoked them: this node, another, `examroom sessions
/// revoke`) and tells the open sockets, which close at once instead of at their next re-check.
async fn session_revocations(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    // Each read looks a few seconds back (a revocation stamped in the same millisecond as the newest seen, or
    // committed late, or by a host whose clock lags, is not missed); ids already announced are not repeated.
    const OVERLAP_MS: i64 = 5_000;
    let mut since = clock::now_ms();
    let mut announced: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match app.db.revoked_since(since - OVERLAP_MS).await {
            Ok(revoked) => {
                for (id, at) in revoked {
                    since = since.max(at);
                    if announced.insert(id.clone(), at).is_none() {
                        // Nobody listening (no socket open) is fine.
                        let _ = app.revoked_sessions.send(ids::SessionId::new(id));
                    }
                }
                announced.retain(|_, at| *at > since - 2 * OVERLAP_MS);
            }
            Err(e) => tracing::warn!(error = %e, "revoked sessions could not be read"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
