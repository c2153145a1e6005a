//! Per-visit classification flags for compliance reporting: whether recording consent was captured, the kind
//! of interaction, what happened to recording, and the class of data the visit leaves at rest. Flags only,
//! never identifiers of the patient; the visit and conversation ids they sit beside are random. Pure rules: the
//! video service applies them at each step and persists the result.

use serde::Serialize;

use crate::policy::recording::RecordingDecision;
use crate::store::ClassificationRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// Video proposed, not answered yet.
    Pending,
    Given,
    Declined,
    /// The policy records this visit without asking.
    NotRequired,
    /// No policy records this visit: nothing to consent to.
    NotApplicable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    Enabled,
    DisabledByConsent,
    Paused,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub conversation: String,
    pub queue: String,
    pub interaction_type: &'static str,
    pub consent: Consent,
    pub consent_captured: bool,
    pub recording_status: RecordingStatus,
    /// `phi.chat` (the transcript only) or `phi.chat+media` (a recording is kept too).
    pub data_classification: &'static str,
    pub recording: Option<String>,
    /// Seed 003's agent-authorization flag: the nurses who accepted the chat held its queue's skills and the
    /// grant to work queues, and the visit's grant (`visit.create`) let her elevate it; `None` where the chat
    /// was never accepted.
    pub agent_authorized: Option<bool>,
}

impl Classification {
    /// The flags as the store keeps them.
    pub fn row(&self) -> ClassificationRow {
        ClassificationRow {
            conversation: self.conversation.clone(),
            queue: self.queue.clone(),
            interaction_type: self.interaction_type.to_string(),
            consent: word(&self.consent),
            consent_captured: self.consent_captured,
            recording_status: word(&self.recording_status),
            data_classification: self.data_classification.to_string(),
            recording: self.recording.clone(),
            agent_authorized: self.agent_authorized,
        }
    }

    /// A video visit just proposed in a chat, by a nurse the policy let elevate it; `chat_authorized` is the
    /// chat's agent-authorization flag.
    pub fn proposed(conversation: &str, queue: &str, chat_authorized: Option<bool>) -> Self {
        Self {
            conversation: conversation.to_string(),
            queue: queue.to_string(),
            interaction_type: "video",
            consent: Consent::Pending,
            consent_captured: false,
            recording_status: RecordingStatus::None,
            data_classification: "phi.chat",
            recording: None,
            agent_authorized: chat_authorized,
        }
    }

    /// The patient answered the video prompt (and, where the policy asks, the recording question).
    pub fn answered(&mut self, decision: Option<&RecordingDecision>, accept: bool, consent: Option<bool>) {
        let (c, status) = match decision {
            None => (Consent::NotApplicable, RecordingStatus::None),
            Some(d) if d.consent_required => match (accept, consent) {
                (true, Some(true)) => (Consent::Given, RecordingStatus::Enabled),
                (true, _) => (Consent::Declined, RecordingStatus::DisabledByConsent),
                // Declining the video itself never gave consent to record it.
                (false, Some(true)) => (Consent::Given, RecordingStatus::None),
                (false, _) => (Consent::Declined, RecordingStatus::None),
            },
            Some(_) if accept => (Consent::NotRequired, RecordingStatus::Enabled),
            Some(_) => (Consent::NotRequired, RecordingStatus::None),
        };
        self.consent = c;
        self.consent_captured = matches!(c, Consent::Given | Consent::Declined);
        self.recording_status = status;
    }

    /// The recording actually started (or could not).
    pub fn recording_started(&mut self, recording: Option<&str>) {
        match recording {
            Some(id) => {
                self.recording = Some(id.to_string());
                self.data_classification = "phi.chat+media";
            }
            None if self.recording_status == RecordingStatus::Enabled => {
                self.recording_status = RecordingStatus::None;
            }
            None => {}
        }
    }

    /// Secure pause or resume.
    pub fn paused(&mut self, paused: bool) {
        if self.recording.is_some() {
            self.recording_status = if paused {
                RecordingStatus::Paused
            } else {
                RecordingStatus::Enabled
            };
        }
    }
}

/// A flag enum as the word it serialises to.
fn word<T: serde::Serialize>(flag: &T) -> String {
    serde_json::to_value(flag)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(consent_required: bool) -> RecordingDecision {
        RecordingDecision {
            policies: vec!["standard".into()],
            consent_required,
            retention_days: 30,
            viewer_roles: vec![],
            record_screen_share: false,
        }
    }

    #[test]
    fn consent_and_recording_status_follow_the_answer() {
        let mut c = Classification::proposed("c1", "triage", Some(true));
        assert_eq!((c.consent, c.consent_captured), (Consent::Pending, false));
        c.answered(Some(&policy(true)), true, Some(true));
        c.recording_started(Some("r1"));
        assert_eq!(c.recording_status, RecordingStatus::Enabled);
        assert_eq!(c.data_classification, "phi.chat+media");
        assert!(c.consent_captured);
        c.paused(true);
        assert_eq!(c.recording_status, RecordingStatus::Paused);
        c.paused(false);
        assert_eq!(c.recording_status, RecordingStatus::Enabled);

        let mut declined = Classification::proposed("c1", "triage", Some(true));
        declined.answered(Some(&policy(true)), true, Some(false));
        declined.recording_started(None);
        declined.paused(true);
        assert_eq!(declined.recording_status, RecordingStatus::DisabledByConsent);
        assert_eq!(
            (declined.consent, declined.data_classification),
            (Consent::Declined, "phi.chat")
        );

        let mut unrecorded = Classification::proposed("c1", "walk-in", None);
        unrecorded.answered(None, true, None);
        assert_eq!(
            (
                unrecorded.consent,
                unrecorded.consent_captured,
                unrecorded.recording_status
            ),
            (Consent::NotApplicable, false, RecordingStatus::None)
        );

        let mut failed = Classification::proposed("c1", "triage", Some(true));
        failed.answered(Some(&policy(false)), true, None);
        assert_eq!(failed.consent, Consent::NotRequired);
        failed.recording_started(None);
        assert_eq!(
            failed.recording_status,
            RecordingStatus::None,
            "a recording that failed to start is not claimed"
        );
    }
}
