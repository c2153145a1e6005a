//! The broker's one clock: wall time in milliseconds since the Unix epoch, and how such an instant is written
//! on the wire (RFC 3339, UTC). Cores never call it: the driver reads it and passes `now` in.

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An instant as RFC 3339 in UTC with milliseconds (`2026-12-01T15:04:05.123Z`), as messages and events carry it.
pub fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// An instant as RFC 3339 in UTC to the second (`2026-12-01T15:04:05Z`), for expiry times.
pub fn timestamp_secs(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_in_utc() {
        assert_eq!(timestamp(1_764_601_445_123), "2025-12-01T15:04:05.123Z");
        assert_eq!(timestamp_secs(1_764_601_445_123), "2025-12-01T15:04:05Z");
        assert!(now_ms() > 1_764_601_445_123);
    }
}
