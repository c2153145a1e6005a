//! Close codes (RFC 6455 private range 4000-4999), documented in `docs/protocol.md`.

/// The session expired or was revoked; sign in again.
pub const SESSION_ENDED: u16 = 4001;
/// The first frame was not a valid `auth` frame or the token was refused.
pub const AUTH_FAILED: u16 = 4003;
/// No `auth` frame arrived in time.
pub const AUTH_TIMEOUT: u16 = 4008;
/// A frame exceeded `messaging.max_frame_bytes` (standard "message too big").
pub const TOO_BIG: u16 = 1009;
/// The socket kept sending past `limits.socket_frames` after a `rate_limited` error frame.
pub const FLOODING: u16 = 4029;
/// Reconnect (after a short random delay) and sync: this node may have missed frames from the others.
pub const RECONNECT: u16 = 4012;
