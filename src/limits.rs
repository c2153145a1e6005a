//! Rate limits per class of caller (`[limits]`): a keyed token bucket (`governor`'s GCRA) per class, keyed by
//! subject, user or client address. A refusal says how long to wait, which the HTTP layer sends as `429` with
//! `Retry-After`. Keys are pseudonyms or addresses, never names; idle keys are forgotten by housekeeping.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::limits::{LimitsConfig, RateLimit};

/// The classes of `[limits]` answered over HTTP (socket frames: [`Limits::frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    PatientSessionPerSubject,
    PatientSessionPerAddress,
    StaffSignInPerSubject,
    RecordingAccessPerUser,
    ReportsPerUser,
}

impl Class {
    /// The class's key under `[limits]`, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::PatientSessionPerSubject => "patient_session_per_subject",
            Class::PatientSessionPerAddress => "patient_session_per_address",
            Class::StaffSignInPerSubject => "staff_sign_in_per_subject",
            Class::RecordingAccessPerUser => "recording_access_per_user",
            Class::ReportsPerUser => "reports_per_user",
        }
    }
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {} s", retry_seconds(*.0))]
pub struct Limited(pub Duration);

impl Limited {
    /// Whole seconds to wait, at least one (`Retry-After` takes seconds).
    pub fn retry_after_seconds(&self) -> u64 {
        retry_seconds(self.0)
    }
}

fn retry_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn quota(limit: RateLimit) -> Quota {
    // Validation refuses zeros; `max(1)` only keeps this total.
    let per_minute = NonZeroU32::new(limit.per_minute.max(1)).expect("non-zero");
    let burst = NonZeroU32::new(limit.burst.max(1)).expect("non-zero");
    Quota::per_minute(per_minute).allow_burst(burst)
}

pub struct Limits {
    keyed: Vec<(Class, DefaultKeyedRateLimiter<String>)>,
    /// Socket frames per session (so a reconnect does not refill it), and the second budget that frames over
    /// the first drain before the socket is closed as flooding.
    frames: DefaultKeyedRateLimiter<String>,
    patience: DefaultKeyedRateLimiter<String>,
}

/// What becomes of one socket frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    Allowed,
    /// Over the budget: dropped, with a warning.
    OverBudget,
    /// Over both budgets: the socket is closed.
    Flooding,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let keyed = [
            (
                Class::PatientSessionPerSubject,
                config.patient_session_per_subject,
            ),
            (
                Class::PatientSessionPerAddress,
                config.patient_session_per_address,
            ),
            (Class::StaffSignInPerSubject, config.staff_sign_in_per_subject),
            (Class::RecordingAccessPerUser, config.recording_access_per_user),
            (Class::ReportsPerUser, config.reports_per_user),
        ]
        .into_iter()
        .map(|(class, limit)| (class, governor::RateLimiter::keyed(quota(limit))))
        .collect();
        Self {
            keyed,
            frames: governor::RateLimiter::keyed(quota(config.socket_frames)),
            patience: governor::RateLimiter::keyed(quota(config.socket_frames)),
        }
    }

    /// Takes one token of `class` for `key`, or says how long to wait.
    pub fn check(&self, class: Class, key: &str) -> Result<(), Limited> {
        let (_, limiter) = self
            .keyed
            .iter()
            .find(|(c, _)| *c == class)
            .expect("every class has a limiter");
        limiter
            .check_key(&key.to_string())
            .map_err(|not_until| Limited(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Charges one frame of the socket(s) of `session` (text, binary and ping alike).
    pub fn frame(&self, session: &String) -> Frame {
        if self.frames.check_key(session).is_ok() {
            Frame::Allowed
        } else if self.patience.check_key(session).is_ok() {
            Frame::OverBudget
        } else {
            Frame::Flooding
        }
    }

    /// Forgets keys whose buckets are full again (housekeeping), so memory follows recent callers only.
    pub fn forget_idle(&self) {
        for limiter in self
            .keyed
            .iter()
            .map(|(_, l)| l)
            .chain([&self.frames, &self.patience])
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait_per_key() {
        let config = LimitsConfig {
            reports_per_user: RateLimit::new(60, 2),
            ..LimitsConfig::default()
        };
        let limits = Limits::new(&config);
        assert!(limits.check(Class::ReportsPerUser, "a").is_ok());
        assert!(limits.check(Class::ReportsPerUser, "a").is_ok());
        let refused = limits.check(Class::ReportsPerUser, "a").unwrap_err();
        assert!(refused.0 <= Duration::from_secs(1), "{refused:?}");
        assert_eq!(refused.retry_after_seconds(), 1);
        // Another key, and another class, have their own buckets.
        assert!(limits.check(Class::ReportsPerUser, "b").is_ok());
        assert!(limits.check(Class::RecordingAccessPerUser, "a").is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(Limited(Duration::from_millis(1)).retry_after_seconds(), 1);
        assert_eq!(Limited(Duration::from_millis(1500)).retry_after_seconds(), 2);
        assert_eq!(Limited(Duration::from_secs(3)).retry_after_seconds(), 3);
        assert_eq!(Limited(Duration::ZERO).retry_after_seconds(), 1);
    }
}
