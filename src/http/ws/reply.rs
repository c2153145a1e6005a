//! What the frame handlers share: the authenticated connection, the one shape of an error frame, and the one
//! way a frame's outcome is audited.

use crate::app::App;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Principal;
use crate::ids::RequestId;
use crate::protocol::ServerFrame;

/// One authenticated socket: who it is, and the request id of its upgrade (every event it causes carries it).
pub struct Connection {
    pub principal: Principal,
    pub request_id: RequestId,
}

impl Connection {
    pub fn role(&self) -> &'static str {
        self.principal.primary_role().as_str()
    }
}

/// The reply to a frame that could not be served: a code a client can act on, and words a person can read.
pub fn error(code: &str, message: impl Into<String>) -> Vec<ServerFrame> {
    vec![ServerFrame::error(code, message)]
}

/// Audits what a frame did to `resource` (`kind:id`).
pub async fn audit(
    app: &App,
    conn: &Connection,
    action: &str,
    resource: String,
    outcome: Outcome,
    reason: Option<&str>,
) {
    let mut event = AuditEvent::new(action, resource, outcome)
        .by(&conn.principal)
        .request(Some(&conn.request_id));
    if let Some(r) = reason {
        event = event.reason(r);
    }
    app.audit.record_or_log(event).await;
}
