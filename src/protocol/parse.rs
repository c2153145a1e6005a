//! Parsing a client frame strictly: serde's error becomes a precise code (`unknown_field`, `duplicate_key`…)
//! with a message that never quotes what the client sent, then the version and idempotency key are checked.

use super::{ClientFrame, MAX_KEY_CHARS, PROTOCOL_VERSION};

/// Why a client frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        let frame: ClientFrame = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let code = if msg.contains("duplicate field") {
                "duplicate_key"
            } else if msg.contains("unknown variant") && msg.contains("expected one of `auth`") {
                "unknown_type"
            } else if msg.contains("unknown field") {
                "unknown_field"
            } else if e.is_syntax() || e.is_eof() {
                "malformed_json"
            } else {
                "invalid_frame"
            };
            FrameError {
                code,
                message: sanitize(code, &msg),
            }
        })?;
        if frame.version() != PROTOCOL_VERSION {
            return Err(FrameError {
                code: "unsupported_version",
                message: format!("protocol version {PROTOCOL_VERSION} expected"),
            });
        }
        if let Some(key) = frame.idempotency_key()
            && (key.is_empty() || key.chars().count() > MAX_KEY_CHARS)
        {
            return Err(FrameError {
                code: "invalid_idempotency_key",
                message: format!("1 to {MAX_KEY_CHARS} characters"),
            });
        }
        Ok(frame)
    }

    fn version(&self) -> u8 {
        match self {
            ClientFrame::Auth { v, .. }
            | ClientFrame::Start { v, .. }
            | ClientFrame::Send { v, .. }
            | ClientFrame::Sync { v, .. }
            | ClientFrame::Preview { v, .. }
            | ClientFrame::WrapUp { v, .. }
            | ClientFrame::Transfer { v, .. }
            | ClientFrame::Colleagues { v, .. }
            | ClientFrame::Presence { v, .. }
            | ClientFrame::Accept { v, .. }
            | ClientFrame::Decline { v, .. }
            | ClientFrame::End { v, .. }
            | ClientFrame::Callback { v, .. }
            | ClientFrame::VideoRequest { v, .. }
            | ClientFrame::VideoAnswer { v, .. }
            | ClientFrame::VideoOffer { v, .. }
            | ClientFrame::VideoServerAnswer { v, .. }
            | ClientFrame::VideoCandidate { v, .. }
            | ClientFrame::VideoLeave { v, .. }
            | ClientFrame::VideoEnd { v, .. }
            | ClientFrame::VideoMedia { v, .. }
            | ClientFrame::VideoMode { v, .. }
            | ClientFrame::GuestInvite { v, .. }
            | ClientFrame::GuestAdmit { v, .. }
            | ClientFrame::GuestRemove { v, .. }
            | ClientFrame::ConsultStaff { v, .. }
            | ClientFrame::ConsultInvite { v, .. }
            | ClientFrame::ConsultAnswer { v, .. }
            | ClientFrame::PrecallStart { v }
            | ClientFrame::PrecallOffer { v, .. }
            | ClientFrame::PrecallCandidate { v, .. }
            | ClientFrame::PrecallEnd { v }
            | ClientFrame::Ping { v } => *v,
        }
    }

    fn idempotency_key(&self) -> Option<&str> {
        match self {
            ClientFrame::Start { idempotency_key, .. } | ClientFrame::Send { idempotency_key, .. } => {
                Some(idempotency_key)
            }
            _ => None,
        }
    }
}

/// serde's messages can quote what the client sent (a value in `invalid type: string "…"`, an unknown field
/// name); a client may have typed PHI there, and error frames are logged by proxies. Quoted input is elided.
fn sanitize(code: &str, msg: &str) -> String {
    match code {
        "unknown_field" => return "unknown field".into(),
        "unknown_type" => return "unknown frame type".into(),
        _ => {}
    }
    if let Some(i) = msg.find("unknown variant") {
        // `unknown variant `X`, expected …`: drop the client's X, keep what was expected.
        let expected = msg[i..]
            .split_once(", expected")
            .map(|(_, e)| e.trim())
            .unwrap_or("");
        return format!("invalid value; expected {expected}");
    }
    let msg = msg.find(" at line ").map_or(msg, |i| &msg[..i]);
    let mut out = String::with_capacity(msg.len());
    let mut quoted = false;
    for ch in msg.chars() {
        if ch == '"' {
            if !quoted {
                out.push_str("\"…");
            } else {
                out.push('"');
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(ch);
        }
    }
    out
}
