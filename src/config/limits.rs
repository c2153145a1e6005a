//! `[limits]`: how often each class of caller may do the things an attacker or a runaway client would repeat.
//! Each class is a token bucket: `burst` at once, refilled at `per_minute`. The defaults spare real clinics: staff
//! are limited per person, never per address (a hospital puts every nurse behind one NAT address), and a socket
//! that reconnects with the session it already has is never limited.

use serde::Deserialize;

/// One bucket: up to `burst` at once, `per_minute` on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Patient sessions opened from one portal ID token's subject.
    pub patient_session_per_subject: RateLimit,
    /// Patient sessions opened from one client address (portals behind a proxy: set `server.trusted_proxies`).
    pub patient_session_per_address: RateLimit,
    /// Staff sign-ins completed by one person.
    pub staff_sign_in_per_subject: RateLimit,
    /// Frames one chat socket may send; a socket over it gets a `rate_limited` error frame, and one that keeps
    /// going is closed with 4029.
    pub socket_frames: RateLimit,
    /// Recording lists, streams and downloads by one person.
    pub recording_access_per_user: RateLimit,
    /// Compliance reports (and report exports) by one person.
    pub reports_per_user: RateLimit,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            patient_session_per_subject: RateLimit::new(30, 10),
            patient_session_per_address: RateLimit::new(300, 60),
            staff_sign_in_per_subject: RateLimit::new(20, 10),
            // A person types far slower; video signaling (trickled candidates) comes in short bursts.
            socket_frames: RateLimit::new(1200, 200),
            // A player seeks with many range requests.
            recording_access_per_user: RateLimit::new(600, 120),
            reports_per_user: RateLimit::new(60, 20),
        }
    }
}

impl LimitsConfig {
    /// A bucket that allows nothing would lock everyone out.
    pub(super) fn problems(&self) -> Vec<super::Problem> {
        self.all()
            .into_iter()
            .filter(|(_, l)| l.per_minute == 0 || l.burst == 0)
            .map(|(key, _)| super::Problem::new(key, "per_minute and burst must both be at least 1"))
            .collect()
    }

    /// Every bucket, by its key.
    pub fn all(&self) -> [(&'static str, RateLimit); 6] {
        [
            (
                "limits.patient_session_per_subject",
                self.patient_session_per_subject,
            ),
            (
                "limits.patient_session_per_address",
                self.patient_session_per_address,
            ),
            ("limits.staff_sign_in_per_subject", self.staff_sign_in_per_subject),
            ("limits.socket_frames", self.socket_frames),
            ("limits.recording_access_per_user", self.recording_access_per_user),
            ("limits.reports_per_user", self.reports_per_user),
        ]
    }
}
