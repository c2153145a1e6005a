//! When the broker raises an alert to the compliance officer by itself (`audit::alerts`): how many refusals of
//! one person in ten minutes, and how often the recent audit chain is checked.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Refused attempts by one person within ten minutes that raise an alert.
    pub denied_attempts: u32,
    /// How often the chain is checked (an alert comes at most this long after what calls for it).
    pub check_seconds: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            denied_attempts: 5,
            check_seconds: 30,
        }
    }
}
