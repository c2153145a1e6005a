//! `GET /api/v1/ws`: the chat socket. Staff authenticate with their session cookie; the patient widget sends an
//! `auth` frame with its session token first. The session is re-checked while the socket lives, and the socket
//! closes with a defined code when it ends (or when its node drains and it takes part in no visit here). Chat
//! frames are handled in `chat`, video frames in `video` (or relayed by `relay` to the node hosting the visit);
//! both answer errors and audit through `reply`.

mod chat;
mod relay;
mod reply;
pub(crate) mod video;

pub(crate) use relay::{Forwarded, LiveOf, SocketClosed, VIDEO_CLOSED_PATH, VIDEO_LIVE_PATH, VIDEO_PATH};
pub(crate) use reply::Connection;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;

use super::extract::{request_id, session_cookie};
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Session;
use crate::limits::Frame;
use crate::protocol::{ClientFrame, ServerFrame, close};

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// A WebSocket ping goes to every socket this often (browsers answer by themselves, background tabs too)...
const PING_EVERY: Duration = Duration::from_secs(4);
/// ...and a socket heard from for this long is dead: a cut network shows no error on an open socket until TCP
/// gives up, minutes later, and until then the nurse would not see the patient reconnecting, nor would a
/// dropped video connection's reconnect limit start.
const SILENT_LIMIT: Duration = Duration::from_secs(12);

/// Read buffer of a socket (see `upgrade`).
const IDLE_READ_BUFFER: usize = 4 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/ws", get(upgrade))
}

async fn upgrade(State(app): State<AppState>, parts: Parts, ws: WebSocketUpgrade) -> Response {
    let cookie = session_cookie(&parts, app.config.is_tls());
    let rid = request_id(&parts);
    let max = app.config.messaging.max_frame_bytes;
    // Most sockets sit idle in a waiting room with small frames: tungstenite's 128 KiB default read buffer per
    // socket dominated the broker's memory at 10,000 sockets. The buffer still grows for a large frame (SDP).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(IDLE_READ_BUFFER)
        .on_upgrade(move |socket| run(app, socket, cookie, rid))
}

fn text(frame: &ServerFrame) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(frame).expect("frames serialise"),
    ))
}

fn closing(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Authenticates with the cookie, or with the first frame.
async fn authenticate(
    app: &AppState,
    socket: &mut WebSocket,
    cookie: Option<SecretString>,
) -> Result<(Session, SecretString), (u16, &'static str)> {
    if let Some(token) = cookie
        && let Ok(session) = app.sessions.resolve(&token).await
    {
        return Ok((session, token));
    }
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await;
    let Ok(Some(Ok(Message::Text(t)))) = first else {
        return Err(if first.is_err() {
            (close::AUTH_TIMEOUT, "auth_timeout")
        } else {
            (close::AUTH_FAILED, "auth_required")
        });
    };
    let Ok(ClientFrame::Auth { token, .. }) = ClientFrame::parse(t.as_str()) else {
        return Err((close::AUTH_FAILED, "auth_required"));
    };
    let token = SecretString::from(token.expose().clone());
    match app.sessions.resolve(&token).await {
        Ok(session) => Ok((session, token)),
        Err(_) => Err((close::AUTH_FAILED, "session_invalid")),
    }
}

async fn run(
    app: AppState,
    mut socket: WebSocket,
    cookie: Option<SecretString>,
    request_id: crate::ids::RequestId,
) {
    let (session, token) = match authenticate(&app, &mut socket, cookie).await {
        Ok(ok) => ok,
        Err((code, reason)) => {
            app.audit
                .record_or_log(
                    AuditEvent::new("auth.request", "route:/api/v1/ws", Outcome::Denied)
                        .reason(reason)
                        .request(Some(&request_id)),
                )
                .await;
            let _ = socket.send(closing(code, reason)).await;
            return;
        }
    };
    let conn = Connection {
        principal: session.principal,
        request_id,
    };
    let subject = conn.principal.subject.clone();
    let registration = app.messaging.hub.register(&subject);
    let (conn_id, outbound, mut rx, dropped) = (
        registration.id,
        registration.outbound,
        registration.frames,
        registration.dropped,
    );
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                frame = rx.recv() => match frame {
                    Some(frame) => text(&frame),
                    None => break,
                },
                _ = ping.tick() => Message::Ping(Default::default()),
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
        sink
    });
    let _ = outbound.send(chat::welcome(&app, &conn).await).await;
    // A patient who is back (a reload, a phone waking up) is offered again and shown online to the nurse.
    chat::connected(&app, &conn, conn_id).await;
    // A reloaded page learns about its live video visit (prompt or rejoin).
    for frame in app.video.live_of(&subject) {
        let _ = outbound.send(frame).await;
    }
    for frame in relay::live_elsewhere(&app, &subject).await {
        let _ = outbound.send(frame).await;
    }

    let mut recheck = tokio::time::interval(Duration::from_secs(
        app.config.messaging.session_recheck_seconds.max(1),
    ));
    recheck.tick().await;
    // Frames over the session's budget are dropped with a warning (at most one every few seconds); they drain
    // a second budget of the same size, and a socket that empties that one too is flooding and is closed. Per
    // session, so reconnecting refills nothing.
    let budget_key = conn.principal.session.as_ref().map_or_else(
        || {
            format!(
                "subject:{}",
                crate::pii::pseudonym(conn.principal.subject.as_str())
            )
        },
        |s| format!("session:{s}"),
    );
    let mut warned: Option<tokio::time::Instant> = None;
    let mut heard = tokio::time::Instant::now();
    let mut revoked = app.revoked_sessions.subscribe();
    let mut resets = app.messaging.hub.resets();
    // A draining node sends this socket elsewhere (unless its person is in a visit hosted here), after a random
    // delay of up to two seconds so that a node's sockets do not all reconnect at once.
    let mut draining = app.draining.subscribe();
    let leave_after = Duration::from_millis(rand::random::<u64>() % 2_000);
    let mut leave_at = app
        .is_draining()
        .then(|| tokio::time::Instant::now() + leave_after);
    let close_with = loop {
        tokio::select! {
            _ = draining.changed(), if leave_at.is_none() => {
                if *draining.borrow() {
                    leave_at = Some(tokio::time::Instant::now() + leave_after);
                }
            }
            _ = tokio::time::sleep_until(leave_at.unwrap_or_else(tokio::time::Instant::now)), if leave_at.is_some() => {
                if !app.video.takes_part(&subject) {
                    break Some((close::RECONNECT, "draining"));
                }
                leave_at = Some(tokio::time::Instant::now() + Duration::from_millis(500));
            }
            _ = recheck.tick() => {
                match app.sessions.resolve(&token).await {
                    Ok(_) => {}
                    // The database is unreachable: that ends nobody's session (the next re-check decides).
                    Err(crate::auth::AuthError::Store(e)) => {
                        tracing::warn!(error = %e, "session re-check deferred: the database is unavailable");
                    }
                    Err(_) => break Some((close::SESSION_ENDED, "session_ended")),
                }
            }
            // Another's revocation, or a missed one (lagging): the re-check above still covers it.
            id = revoked.recv() => {
                if id.is_ok_and(|id| conn.principal.session.as_ref() == Some(&id)) {
                    break Some((close::SESSION_ENDED, "session_ended"));
                }
            }
            // This node lost frames from the others (its bus link broke): the client reconnects and syncs.
            _ = resets.changed() => break Some((close::RECONNECT, "reconnect")),
            // It fell behind and the hub let go of it: frames are missing, the client syncs.
            _ = dropped.notified() => break Some((close::RECONNECT, "too_slow")),
            _ = tokio::time::sleep_until(heard + SILENT_LIMIT) => {
                tracing::info!("socket silent: closed");
                break None;
            }
            incoming = stream.next() => {
                heard = tokio::time::Instant::now();
                let verdict = match &incoming {
                    Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_))) => app.limits.frame(&budget_key),
                    _ => Frame::Allowed,
                };
                match (verdict, incoming) {
                    (Frame::Flooding, _) => {
                        app.metrics.rate_limited.with_label_values(&["socket_frames"]).inc();
                        tracing::info!("socket closed for flooding");
                        break Some((close::FLOODING, "rate_limited"));
                    }
                    (Frame::OverBudget, _) => {
                        app.metrics.rate_limited.with_label_values(&["socket_frames"]).inc();
                        if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                            warned = Some(tokio::time::Instant::now());
                            let warning = ServerFrame::error("rate_limited", "too many frames; slow down");
                            let _ = outbound.send(warning).await;
                        }
                    }
                    (_, Some(Ok(Message::Text(t)))) => {
                        let replies = match ClientFrame::parse(t.as_str()) {
                            Ok(frame) => chat::handle(&app, &conn, frame).await,
                            Err(e) => {
                                tracing::info!(code = e.code, "refused client frame");
                                vec![ServerFrame::error(e.code, e.message)]
                            }
                        };
                        for r in replies {
                            if outbound.send(r).await.is_err() {
                                break;
                            }
                        }
                        // A slow handler (a relay, the database) is not the socket's silence.
                        heard = tokio::time::Instant::now();
                    }
                    (_, Some(Ok(Message::Binary(_)))) => {
                        let _ = outbound.send(ServerFrame::error("binary_not_supported", "send JSON text frames")).await;
                    }
                    (_, Some(Ok(Message::Close(_))) | None) => break None,
                    (_, Some(Ok(_))) => {}
                    (_, Some(Err(e))) => {
                        let too_big = e.to_string().to_ascii_lowercase().contains("too long")
                            || e.to_string().to_ascii_lowercase().contains("size");
                        break too_big.then_some((close::TOO_BIG, "frame_too_big"));
                    }
                }
            }
        }
    };
    let others = app.messaging.hub.unregister(&subject, conn_id);
    drop(outbound);
    if let Ok(mut sink) = writer.await
        && let Some((code, reason)) = close_with
    {
        let _ = sink.send(closing(code, reason)).await;
    }
    let reconnecting = matches!(close_with, Some((close::RECONNECT, _)));
    chat::disconnected(&app, &conn, conn_id, others, reconnecting).await;
}
