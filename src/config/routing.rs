//! `[routing]`: how the waiting room hands patients to nurses — offers, wrap-up, how many chats a nurse holds,
//! and how long people who drop out (a patient's phone, a nurse's browser) are waited for.

use serde::Deserialize;

use super::Problem;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RoutingConfig {
    /// How long a nurse has to accept an offer before it goes to someone else.
    pub offer_timeout_seconds: u64,
    /// Wrap-up after a chat ends, during which the nurse gets no offers.
    pub wrap_up_seconds: u64,
    /// Chats a nurse may hold at once.
    pub max_chats_per_nurse: usize,
    /// Handle time assumed for estimates before a queue has history.
    pub default_handle_seconds: u64,
    /// How long a waiting patient whose connection dropped keeps their place (offered to nobody meanwhile)
    /// before leaving the queue as abandoned; for a chat with a nurse, how long they show as reconnecting.
    pub patient_grace_seconds: u64,
    /// How long a nurse may be away or disconnected with chats before they go back to the front of their queue.
    pub stranded_grace_seconds: u64,
    /// What a nurse picks when wrapping a chat up (with optional notes), in the order shown.
    pub dispositions: Vec<String>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            offer_timeout_seconds: 30,
            wrap_up_seconds: 60,
            max_chats_per_nurse: 3,
            default_handle_seconds: 300,
            patient_grace_seconds: 60,
            stranded_grace_seconds: 120,
            dispositions: [
                "Advice given",
                "Appointment booked",
                "Prescription request sent",
                "Referred to urgent or emergency care",
                "Patient left before help",
                "Other (see notes)",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

impl RoutingConfig {
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.max_chats_per_nurse == 0 {
            p.push(Problem::new("routing.max_chats_per_nurse", "must be at least 1"));
        }
        if self.offer_timeout_seconds == 0 {
            p.push(Problem::new(
                "routing.offer_timeout_seconds",
                "must be at least 1",
            ));
        }
        if !(1..=3600).contains(&self.patient_grace_seconds) {
            p.push(Problem::new(
                "routing.patient_grace_seconds",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=3600).contains(&self.stranded_grace_seconds) {
            p.push(Problem::new(
                "routing.stranded_grace_seconds",
                "must be between 1 and 3600",
            ));
        }
        if self.dispositions.is_empty() {
            p.push(Problem::new(
                "routing.dispositions",
                "must list at least one disposition",
            ));
        }
        for (i, d) in self.dispositions.iter().enumerate() {
            if d.trim().is_empty() || d.chars().count() > 80 {
                p.push(Problem::new(
                    format!("routing.dispositions[{i}]"),
                    "must be 1 to 80 characters",
                ));
            }
        }
        p
    }
}
