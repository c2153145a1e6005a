//! Video frames for a visit another node hosts (`visit::placement`): forwarded there over the signed
//! node-to-node channel with the caller as this node authenticated them. The host applies the same policy and
//! audit as to its own sockets and answers with the frames for this socket; its later frames (candidates,
//! connection states, the end) come over the bus. A socket that opens here asks the hosts of its person's visits
//! for them (a reload rejoins), and one that closes tells the hosts it relayed to.

use serde::{Deserialize, Serialize};

use super::reply::{Connection, error};
use crate::app::App;
use crate::auth::Principal;
use crate::ids::{RequestId, SubjectId};
use crate::protocol::{ClientFrame, ServerFrame};
use crate::visit::placement::{Host, PlacementError, Remote};

pub const VIDEO_PATH: &str = "/internal/v1/video";
pub const VIDEO_CLOSED_PATH: &str = "/internal/v1/video/socket-closed";
pub const VIDEO_LIVE_PATH: &str = "/internal/v1/video/live";

/// A caller's video frame, as the node holding their socket forwards it.
#[derive(Serialize, Deserialize)]
pub struct Forwarded {
    pub principal: Principal,
    /// The socket's request id (a rejoin from another socket replaces this one's connection).
    pub request_id: RequestId,
    pub frame: ClientFrame,
}

#[derive(Serialize, Deserialize)]
pub struct SocketClosed {
    pub request_id: RequestId,
}

#[derive(Serialize, Deserialize)]
pub struct LiveOf {
    pub subject: SubjectId,
}

/// The visit a video frame names, if it names one.
fn visit_of(frame: &ClientFrame) -> Option<&str> {
    match frame {
        ClientFrame::VideoAnswer { visit_id, .. }
        | ClientFrame::VideoOffer { visit_id, .. }
        | ClientFrame::VideoServerAnswer { visit_id, .. }
        | ClientFrame::VideoCandidate { visit_id, .. }
        | ClientFrame::VideoLeave { visit_id, .. }
        | ClientFrame::VideoEnd { visit_id, .. }
        | ClientFrame::VideoMedia { visit_id, .. }
        | ClientFrame::VideoMode { visit_id, .. }
        | ClientFrame::GuestInvite { visit_id, .. }
        | ClientFrame::GuestAdmit { visit_id, .. }
        | ClientFrame::GuestRemove { visit_id, .. }
        | ClientFrame::ConsultStaff { visit_id, .. }
        | ClientFrame::ConsultInvite { visit_id, .. }
        | ClientFrame::ConsultAnswer { visit_id, .. } => Some(visit_id),
        _ => None,
    }
}

/// Where this frame's visit lives (`Moving` while this node hands it to another).
pub async fn host_for(app: &App, frame: &ClientFrame) -> Result<Host, PlacementError> {
    let placement = &app.video.placement;
    if let ClientFrame::VideoRequest { conversation_id, .. } = frame {
        return placement.host_for_conversation(conversation_id.as_str()).await;
    }
    let Some(visit) = visit_of(frame) else {
        return Ok(Host::Here);
    };
    if app.video.is_moving(visit) {
        return Err(PlacementError::Moving);
    }
    placement.host_of_visit(visit).await
}

fn relayed(bytes: &[u8]) -> Option<Vec<ServerFrame>> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(bytes).ok()?;
    Some(values.into_iter().map(ServerFrame::Relayed).collect())
}

/// Sends `frame` to the host; its answer for this socket.
pub async fn forward(app: &App, conn: &Connection, to: &Remote, frame: ClientFrame) -> Vec<ServerFrame> {
    // The host needs who the caller is, not their name (PII stays on the node that authenticated them).
    let mut principal = conn.principal.clone();
    principal.display_name = None;
    principal.birthdate = None;
    let body = Forwarded {
        principal,
        request_id: conn.request_id.clone(),
        frame,
    };
    let body = serde_json::to_vec(&body).expect("frames serialise");
    app.video.placement.relayed(&conn.request_id, to);
    match app.video.placement.call(to, VIDEO_PATH, body).await {
        Ok(bytes) => relayed(&bytes)
            .unwrap_or_else(|| error("unavailable", "the server hosting this video answered nonsense")),
        Err(e) => {
            tracing::warn!(error = %e, node = %to.node, "video frame not relayed to its host");
            error(
                "unavailable",
                "the server hosting this video did not answer; try again",
            )
        }
    }
}

/// What the hosts of `subject`'s visits elsewhere tell a socket that just opened here.
pub async fn live_elsewhere(app: &App, subject: &SubjectId) -> Vec<ServerFrame> {
    let hosts = match app.video.placement.remote_hosts_of(subject).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "visits on other nodes could not be looked up");
            return Vec::new();
        }
    };
    let mut frames = Vec::new();
    for host in hosts {
        let body = serde_json::to_vec(&LiveOf {
            subject: subject.clone(),
        })
        .expect("serialises");
        match app.video.placement.call(&host, VIDEO_LIVE_PATH, body).await {
            Ok(bytes) => frames.extend(relayed(&bytes).unwrap_or_default()),
            Err(e) => tracing::warn!(error = %e, node = %host.node, "a visit's host did not answer"),
        }
    }
    frames
}

/// Tells the hosts this socket relayed to that it closed (they close its connections), when `tell`.
pub async fn socket_closed(app: &App, socket: &RequestId, tell: bool) {
    let hosts = app.video.placement.socket_closed(socket);
    if !tell {
        return;
    }
    for host in hosts {
        let body = serde_json::to_vec(&SocketClosed {
            request_id: socket.clone(),
        })
        .expect("serialises");
        if let Err(e) = app.video.placement.call(&host, VIDEO_CLOSED_PATH, body).await {
            tracing::warn!(error = %e, node = %host.node, "a visit's host was not told a socket closed");
        }
    }
}
