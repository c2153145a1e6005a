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
pub mod config;
pub mod crypto;
pub mod dev;
pub mod dev_idp;
pub mod http;
pub mod ids;
pub mod media;
pub mod messaging;
pub mod pii;
pub mod policy;
pub mod recording;
pub mod store;
pub mod telemetry;
pub mod visit;
pub mod waiting_room;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::AppState;

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish for at most the
/// configured grace period. Background jobs stop with the server.
pub async fn serve(
    app: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let housekeeping = tokio::spawn(housekeeping(app.clone(), stop_rx.clone()));
    let timers = tokio::spawn(app.messaging.clone().run_timers(stop_rx.clone()));
    let video_timers = tokio::spawn(app.video.clone().run_timers(stop_rx.clone()));
    let siem = tokio::spawn(audit::siem::run(
        app.db.clone(),
        app.config.siem.webhooks.clone(),
        stop_rx.clone(),
    ));
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
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    tokio::select! {
        result = server => result?,
        _ = async {
            let _ = drained.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("grace period over; closing remaining connections"),
    }
    housekeeping.abort();
    timers.abort();
    video_timers.abort();
    siem.abort();
    app.db.close().await;
    Ok(())
}

/// Periodic work: an audit checkpoint every minute (when the chain moved); every ten minutes, clean-up of
/// ended sessions and abandoned sign-ins and the recording retention sweep.
async fn housekeeping(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let signer = match audit::checkpoint::load_or_create_signer(&app.config.server.data_dir) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "audit signing key unavailable: no checkpoints");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut round = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = store::now_ms();
        if let Some(signer) = &signer
            && let Err(e) = audit::checkpoint::checkpoint_now(&app.db, signer, now).await
        {
            tracing::warn!(error = %e, "audit checkpoint failed");
        }
        round += 1;
        if round % 10 != 1 {
            continue;
        }
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
