//! How long each class of PHI other than recordings is kept after it ends (recordings keep their policy's
//! retention): a chat's transcript, context and conversation record; the nurse's wrap-up notes; a visit's
//! record and classification. The sweep that enforces them is `messaging::retention`.

use serde::Deserialize;

/// Days each class is kept; six years by default (HIPAA's documentation retention).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// A closed chat's messages and context, counted from its close (and never before the recordings of its
    /// visits); its conversation record and data key go when its wrap-up has gone too.
    pub conversation_days: u32,
    /// The nurse's wrap-up (disposition and notes), counted from when it was saved.
    pub wrap_up_days: u32,
    /// A visit's record and classification row, counted from its end, once its recordings are deleted.
    pub visit_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            conversation_days: 2190,
            wrap_up_days: 2190,
            visit_days: 2190,
        }
    }
}

impl RetentionConfig {
    pub fn ms(days: u32) -> i64 {
        days as i64 * 86_400_000
    }
}
