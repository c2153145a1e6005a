//! Recording policies (`policies/recording.toml`): whether a visit is recorded, whether consent is needed,
//! how long the recording is kept and who may view it. Overlapping policies resolve to the strictest
//! reading (longest retention, consent if any asks, only roles all allow, screen share only if all allow), so
//! adding a policy can never weaken another. Validated at startup and by `check-config`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::auth::Role;
use crate::config::Problem;

pub const DEFAULT_RECORDING_POLICY: &str = include_str!("../../policies/recording.toml");

/// Longest retention accepted (a typo of a few zeros should not keep a recording for a century).
const MAX_RETENTION_DAYS: u32 = 36_500;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    policies: Vec<RecordingPolicy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingPolicy {
    pub id: String,
    /// Queue names, or `*` for every queue.
    pub queues: Vec<String>,
    /// Visit types this policy covers (`video` today).
    pub visit_types: Vec<String>,
    pub record: bool,
    #[serde(default = "yes")]
    pub consent_required: bool,
    pub retention_days: u32,
    pub viewer_roles: Vec<Role>,
    #[serde(default)]
    pub record_screen_share: bool,
}

fn yes() -> bool {
    true
}

/// What applies to one visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingDecision {
    /// The policies that matched and asked for recording, by id.
    pub policies: Vec<String>,
    pub consent_required: bool,
    pub retention_days: u32,
    pub viewer_roles: Vec<Role>,
    pub record_screen_share: bool,
}

impl RecordingDecision {
    /// What the patient agrees to, said from the policy itself (who may view the recording, how long it is
    /// kept), so the consent question can never promise less than the policy allows. English.
    pub fn consent_text(&self) -> String {
        self.consent_text_in(ConsentLanguage::English)
    }

    /// The same question in every other language the widget speaks, by language tag: the widget shows the one
    /// of its language (the broker does not know which language a patient reads; the wording stays ours).
    pub fn consent_translations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("es".to_string(), self.consent_text_in(ConsentLanguage::Spanish))])
    }

    fn consent_text_in(&self, lang: ConsentLanguage) -> String {
        let es = lang == ConsentLanguage::Spanish;
        let who: Vec<&str> = self
            .viewer_roles
            .iter()
            .map(|r| match (r, es) {
                (Role::ComplianceOfficer, false) => "the clinic's compliance officers",
                (Role::ComplianceOfficer, true) => "los responsables de cumplimiento normativo de la clínica",
                (Role::Supervisor, false) => "nursing supervisors",
                (Role::Supervisor, true) => "los supervisores de enfermería",
                (Role::Nurse, false) => "nurses",
                (Role::Nurse, true) => "los enfermeros",
                (Role::ItHelpdesk, false) => "IT support staff",
                (Role::ItHelpdesk, true) => "los técnicos de soporte informático",
                (_, false) => "other clinic staff",
                (_, true) => "otros miembros del personal de la clínica",
            })
            .collect();
        let and = if es { "y" } else { "and" };
        let who = match who.as_slice() {
            [] => None,
            [one] => Some((*one).to_string()),
            [init @ .., last] => Some(format!("{} {and} {last}", init.join(", "))),
        };
        let days = self.retention_days;
        // Whole years (give or take the leap days a policy adds) read better than 2192 days.
        let years = (f64::from(days) / 365.25).round();
        let (year, years_word, day, days_word) = if es {
            ("año", "años", "día", "días")
        } else {
            ("year", "years", "day", "days")
        };
        let kept = if days >= 365 && (years * 365.25 - f64::from(days)).abs() <= 3.0 {
            format!("{years} {}", if years == 1.0 { year } else { years_word })
        } else {
            format!("{days} {}", if days == 1 { day } else { days_word })
        };
        if es {
            // Every viewer phrase is plural, so "pueden" agrees with one role or several.
            let who = who.map_or("Nadie en la clínica puede ver la grabación".to_string(), |w| {
                format!("Solo pueden ver la grabación {w}")
            });
            format!(
                "Acepto que esta consulta por video se grabe para mi historial médico. {who} (otro personal \
                 clínico solo en una emergencia declarada, que queda registrada y se revisa); se elimina después \
                 de {kept}, salvo que la ley exija conservarla más tiempo."
            )
        } else {
            let who = who.map_or("No one at the clinic can view the recording".to_string(), |w| {
                format!("Only {w} can view the recording")
            });
            format!(
                "I agree that this video visit is recorded for my medical record. {who} (other clinical staff \
                 only in a declared emergency, which is recorded and reviewed); it is deleted after {kept} \
                 unless the law requires keeping it longer."
            )
        }
    }
}

/// The languages the consent question is worded in (those of the widget's message catalogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsentLanguage {
    English,
    Spanish,
}

#[derive(Debug, Clone)]
pub struct RecordingPolicies {
    policies: Vec<RecordingPolicy>,
}

impl RecordingPolicies {
    /// Loads the file (or the built-in one), checking it against the configured queue names.
    pub fn load(path: Option<&Path>, queues: &[String]) -> Result<Self, Vec<Problem>> {
        let (text, key) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| {
                    vec![Problem::new(
                        "policy.recording_file",
                        format!("{}: {e}", p.display()),
                    )]
                })?,
                "policy.recording_file",
            ),
            None => (DEFAULT_RECORDING_POLICY.to_string(), "policies/recording.toml"),
        };
        Self::parse(&text, key, queues)
    }

    /// Viewer roles other than compliance officers: allowed, but the widget tells patients that only
    /// compliance staff can view their recording, so an operator must hear about it (`check-config`, start).
    pub fn viewer_warnings(&self, key: &str) -> Vec<Problem> {
        let mut w = Vec::new();
        for (i, p) in self.policies.iter().enumerate() {
            for r in p.viewer_roles.iter().filter(|r| **r != Role::ComplianceOfficer) {
                w.push(Problem::new(
                    format!("{key}: policies[{i}].viewer_roles"),
                    format!(
                        "`{}` may view recordings, but patients are told only compliance staff can",
                        r.as_str()
                    ),
                ));
            }
        }
        w
    }

    pub fn parse(text: &str, key: &str, queues: &[String]) -> Result<Self, Vec<Problem>> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| vec![Problem::new(key, e.message().to_string())])?;
        let mut problems = Vec::new();
        let mut ids = BTreeSet::new();
        for (i, p) in file.policies.iter().enumerate() {
            let at = |field: &str| format!("{key}: policies[{i}].{field}");
            if p.id.trim().is_empty() || !ids.insert(p.id.clone()) {
                problems.push(Problem::new(at("id"), "must be present and unique"));
            }
            if p.queues.is_empty() {
                problems.push(Problem::new(at("queues"), "list queue names or \"*\""));
            }
            for q in &p.queues {
                if q != "*" && !queues.contains(q) {
                    problems.push(Problem::new(at("queues"), format!("unknown queue `{q}`")));
                }
            }
            for t in &p.visit_types {
                if t != "video" {
                    problems.push(Problem::new(
                        at("visit_types"),
                        format!("unknown visit type `{t}` (known: video)"),
                    ));
                }
            }
            if p.record && !(1..=MAX_RETENTION_DAYS).contains(&p.retention_days) {
                problems.push(Problem::new(
                    at("retention_days"),
                    format!("must be between 1 and {MAX_RETENTION_DAYS}"),
                ));
            }
            if p.record && p.viewer_roles.is_empty() {
                problems.push(Problem::new(at("viewer_roles"), "name at least one role"));
            }
            for r in &p.viewer_roles {
                if !matches!(r, Role::ComplianceOfficer | Role::Supervisor) {
                    problems.push(Problem::new(
                        at("viewer_roles"),
                        format!(
                            "`{}` may not view recordings (compliance_officer or supervisor only)",
                            r.as_str()
                        ),
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(Self {
                policies: file.policies,
            })
        } else {
            Err(problems)
        }
    }

    /// The recording rules for a visit of `visit_type` in `queue`; `None` when nothing asks to record it.
    pub fn decide(&self, queue: &str, visit_type: &str) -> Option<RecordingDecision> {
        let matching: Vec<&RecordingPolicy> = self
            .policies
            .iter()
            .filter(|p| p.record)
            .filter(|p| p.queues.iter().any(|q| q == "*" || q == queue))
            .filter(|p| p.visit_types.iter().any(|t| t == visit_type))
            .collect();
        let first = matching.first()?;
        let mut viewers: Vec<Role> = first.viewer_roles.clone();
        viewers.retain(|r| matching.iter().all(|p| p.viewer_roles.contains(r)));
        Some(RecordingDecision {
            policies: matching.iter().map(|p| p.id.clone()).collect(),
            consent_required: matching.iter().any(|p| p.consent_required),
            retention_days: matching.iter().map(|p| p.retention_days).max().unwrap_or(0),
            viewer_roles: viewers,
            record_screen_share: matching.iter().all(|p| p.record_screen_share),
        })
    }
}

#[cfg(test)]
mod tests {
    /// A decision that asks consent, with these viewers and this retention.
    fn d(viewers: Vec<Role>, days: u32) -> RecordingDecision {
        RecordingDecision {
            policies: vec!["p".into()],
            consent_required: true,
            retention_days: days,
            viewer_roles: viewers,
            record_screen_share: false,
        }
    }

    #[test]
    fn consent_text_says_who_may_view_and_for_how_long() {
        let only = d(vec![Role::ComplianceOfficer], 2555).consent_text();
        assert!(
            only.contains("Only the clinic's compliance officers can view"),
            "{only}"
        );
        assert!(only.contains("deleted after 7 years"), "{only}");
        assert!(d(vec![], 2192).consent_text().contains("after 6 years"));
        let two = d(vec![Role::Supervisor, Role::ComplianceOfficer], 30).consent_text();
        assert!(
            two.contains("Only nursing supervisors and the clinic's compliance officers"),
            "{two}"
        );
        assert!(two.contains("after 30 days"), "{two}");
        assert!(
            d(vec![], 1)
                .consent_text()
                .contains("No one at the clinic can view the recording"),
            "{}",
            d(vec![], 1).consent_text()
        );
    }

    #[test]
    fn the_consent_question_is_worded_in_spanish_too() {
        let es = |d: RecordingDecision| d.consent_translations().remove("es").unwrap();
        let only = es(d(vec![Role::ComplianceOfficer], 2555));
        assert!(
            only.starts_with("Acepto que esta consulta por video se grabe"),
            "{only}"
        );
        assert!(
            only.contains(
                "Solo pueden ver la grabación los responsables de cumplimiento normativo de la clínica"
            ),
            "{only}"
        );
        assert!(only.contains("se elimina después de 7 años"), "{only}");
        let two = es(d(vec![Role::Supervisor, Role::ComplianceOfficer], 1));
        assert!(
            two.contains("los supervisores de enfermería y los responsables"),
            "{two}"
        );
        assert!(two.contains("después de 1 día,"), "{two}");
        assert!(es(d(vec![], 366)).contains("Nadie en la clínica puede ver la grabación"));
        assert!(es(d(vec![], 366)).contains("después de 1 año,"));
    }

    use super::*;

    fn queues() -> Vec<String> {
        vec!["triage".into(), "spanish".into(), "behavioral".into()]
    }

    #[test]
    fn the_shipped_policy_is_valid_and_records_video_with_consent() {
        let p = RecordingPolicies::load(None, &queues()).unwrap();
        let d = p.decide("triage", "video").unwrap();
        assert!(d.consent_required);
        assert_eq!(d.retention_days, 2192);
        assert_eq!(d.viewer_roles, vec![Role::ComplianceOfficer]);
        assert!(p.decide("triage", "chat").is_none());
    }

    #[test]
    fn overlapping_policies_resolve_to_the_strictest_reading() {
        let text = r#"
            [[policies]]
            id = "all"
            queues = ["*"]
            visit_types = ["video"]
            record = true
            consent_required = false
            retention_days = 365
            viewer_roles = ["compliance_officer", "supervisor"]
            record_screen_share = true

            [[policies]]
            id = "behavioral"
            queues = ["behavioral"]
            visit_types = ["video"]
            record = true
            consent_required = true
            retention_days = 3650
            viewer_roles = ["compliance_officer"]

            [[policies]]
            id = "spanish-off"
            queues = ["spanish"]
            visit_types = ["video"]
            record = false
            retention_days = 1
            viewer_roles = []
        "#;
        let p = RecordingPolicies::parse(text, "t", &queues()).unwrap();
        let d = p.decide("behavioral", "video").unwrap();
        assert_eq!(d.policies, vec!["all", "behavioral"]);
        assert_eq!(d.retention_days, 3650, "longest retention");
        assert!(d.consent_required, "consent if any requires it");
        assert_eq!(
            d.viewer_roles,
            vec![Role::ComplianceOfficer],
            "only roles all allow"
        );
        assert!(!d.record_screen_share, "screen share only if all allow");
        let d = p.decide("triage", "video").unwrap();
        assert!(!d.consent_required && d.record_screen_share && d.retention_days == 365);
        // A policy with record = false does not switch another one off.
        assert!(p.decide("spanish", "video").is_some());
    }

    #[test]
    fn every_problem_names_its_key() {
        let text = r#"
            [[policies]]
            id = "bad"
            queues = ["nowhere"]
            visit_types = ["hologram"]
            record = true
            retention_days = 0
            viewer_roles = ["nurse", "it_helpdesk"]

            [[policies]]
            id = "bad"
            queues = []
            visit_types = ["video"]
            record = true
            retention_days = 10
            viewer_roles = []
        "#;
        let problems = RecordingPolicies::parse(text, "policy.recording_file", &queues()).unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        for needle in [
            "policies[0].queues",
            "policies[0].visit_types",
            "policies[0].retention_days",
            "policies[0].viewer_roles",
            "policies[1].id",
            "policies[1].queues",
            "policies[1].viewer_roles",
        ] {
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "{needle} missing in {text:?}"
            );
        }
        let unknown =
            RecordingPolicies::parse("[[policies]]\nid='x'\nretain='forever'", "k", &queues()).unwrap_err();
        assert!(unknown[0].to_string().contains("unknown field"), "{unknown:?}");
    }
}
