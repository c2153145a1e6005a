//! Access decisions: one function, `(subject, action, resource) → allow or deny with a reason`, driven by the
//! rules in `policies/access.toml`. Deny by default. A [`Grant`] can only be made here, so code that needs
//! permission cannot proceed without a decision. This module does no I/O beyond reading its file at startup.

pub mod recording;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::auth::{Principal, Role};
use crate::config::Problem;
use crate::ids::SubjectId;

/// The shipped default policy, used when `policy.access_file` is unset.
pub const DEFAULT_ACCESS_POLICY: &str = include_str!("../../policies/access.toml");

/// Every action the broker asks about; a policy naming anything else is refused at startup (a typo would
/// otherwise silently grant nothing, or in a later edit the wrong thing).
pub const ACTIONS: &[&str] = &[
    "session.read",
    "session.revoke",
    "conversation.create",
    "conversation.read",
    "conversation.write",
    "queue.work",
    "visit.join",
    "visit.recording_state.set",
    "queue.stats.read",
    "recording.list",
    "recording.view",
    "recording.stream",
    "recording.download",
    "recording.hold",
    "audit.read",
    "audit.verify",
    "audit.report",
    "system.status.read",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Session,
    Conversation,
    Visit,
    Recording,
    Queue,
    AuditLog,
    System,
}

impl ResourceKind {
    /// Resources that are or contain PHI.
    pub fn is_patient_data(self) -> bool {
        matches!(
            self,
            ResourceKind::Conversation | ResourceKind::Visit | ResourceKind::Recording
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Session => "session",
            ResourceKind::Conversation => "conversation",
            ResourceKind::Visit => "visit",
            ResourceKind::Recording => "recording",
            ResourceKind::Queue => "queue",
            ResourceKind::AuditLog => "audit_log",
            ResourceKind::System => "system",
        }
    }
}

/// What the subject wants to act on, with the facts conditions need.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: ResourceKind,
    /// Opaque id for audit events (`None` for collections).
    pub id: Option<String>,
    pub owner: Option<SubjectId>,
    pub assignees: Vec<SubjectId>,
}

impl Resource {
    pub fn new(kind: ResourceKind, id: Option<String>) -> Self {
        Self {
            kind,
            id,
            owner: None,
            assignees: Vec::new(),
        }
    }
    pub fn owned_by(mut self, owner: SubjectId) -> Self {
        self.owner = Some(owner);
        self
    }
    pub fn assigned_to(mut self, assignees: Vec<SubjectId>) -> Self {
        self.assignees = assignees;
        self
    }
    /// `kind:id` for audit events.
    pub fn audit_name(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id.as_deref().unwrap_or("*"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Owner,
    Assigned,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    id: String,
    roles: Vec<Role>,
    actions: Vec<String>,
    resources: Vec<ResourceKind>,
    #[serde(default)]
    condition: Option<Condition>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    rules: Vec<Rule>,
}

/// Permission to perform one action on one resource. Only [`AccessPolicy::decide`] creates it.
#[derive(Debug)]
pub struct Grant {
    rule: String,
}

impl Grant {
    /// The rule that allowed the action, for audit events.
    pub fn rule(&self) -> &str {
        &self.rule
    }
}

/// A refusal and why.
#[derive(Debug, Clone)]
pub struct Denial {
    pub reason: String,
}

pub struct AccessPolicy {
    rules: Vec<Rule>,
}

impl AccessPolicy {
    pub fn load(path: Option<&Path>) -> Result<Self, Vec<Problem>> {
        let (text, key) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| {
                    vec![Problem::new(
                        "policy.access_file",
                        format!("{}: {e}", p.display()),
                    )]
                })?,
                "policy.access_file",
            ),
            None => (DEFAULT_ACCESS_POLICY.to_string(), "policies/access.toml"),
        };
        Self::parse(&text, key)
    }

    pub fn parse(text: &str, key: &str) -> Result<Self, Vec<Problem>> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| vec![Problem::new(key, e.message().to_string())])?;
        let mut problems = Vec::new();
        let mut ids = BTreeSet::new();
        for (i, rule) in file.rules.iter().enumerate() {
            let at = format!("{key}: rules[{i}] ({})", rule.id);
            if !ids.insert(rule.id.clone()) {
                problems.push(Problem::new(&at, "duplicate rule id"));
            }
            for action in &rule.actions {
                if !ACTIONS.contains(&action.as_str()) {
                    problems.push(Problem::new(&at, format!("unknown action `{action}`")));
                }
            }
            if rule.roles.contains(&Role::ItHelpdesk) && rule.resources.iter().any(|r| r.is_patient_data()) {
                problems.push(Problem::new(
                    &at,
                    "the it_helpdesk role may not be granted patient data",
                ));
            }
            if rule.roles.contains(&Role::Anonymous) {
                problems.push(Problem::new(
                    &at,
                    "rules cannot grant anything to anonymous callers",
                ));
            }
        }
        if problems.is_empty() {
            Ok(Self { rules: file.rules })
        } else {
            Err(problems)
        }
    }

    /// The decision. The first rule that matches allows; nothing matching denies.
    pub fn decide(&self, subject: &Principal, action: &str, resource: &Resource) -> Result<Grant, Denial> {
        for rule in &self.rules {
            let role_ok = rule.roles.iter().any(|r| subject.has_role(*r));
            if !role_ok
                || !rule.actions.iter().any(|a| a == action)
                || !rule.resources.contains(&resource.kind)
            {
                continue;
            }
            if !rule.scopes.iter().all(|s| subject.scopes.contains(s)) {
                continue;
            }
            let condition_ok = match rule.condition {
                None => true,
                Some(Condition::Owner) => resource.owner.as_ref() == Some(&subject.subject),
                Some(Condition::Assigned) => resource.assignees.contains(&subject.subject),
            };
            if condition_ok {
                return Ok(Grant {
                    rule: rule.id.clone(),
                });
            }
        }
        let roles: Vec<&str> = subject.roles.iter().map(|r| r.as_str()).collect();
        Err(Denial {
            reason: format!(
                "no rule allows {} to {action} on {}",
                if roles.is_empty() {
                    "anonymous".to_string()
                } else {
                    roles.join("+")
                },
                resource.kind.as_str()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(sub: &str, role: Role) -> Principal {
        Principal {
            subject: SubjectId::new(sub),
            roles: vec![role],
            skills: vec![],
            scopes: vec![],
            session: None,
            display_name: None,
        }
    }

    fn policy() -> AccessPolicy {
        AccessPolicy::parse(DEFAULT_ACCESS_POLICY, "default").unwrap()
    }

    #[test]
    fn shipped_policy_is_valid() {
        policy();
    }

    #[test]
    fn deny_by_default_with_a_reason() {
        let d = policy()
            .decide(
                &person("n1", Role::Nurse),
                "audit.read",
                &Resource::new(ResourceKind::AuditLog, None),
            )
            .unwrap_err();
        assert!(d.reason.contains("nurse"), "{}", d.reason);
    }

    #[test]
    fn it_helpdesk_gets_no_patient_data_for_any_action() {
        let p = policy();
        let helpdesk = person("h1", Role::ItHelpdesk);
        for kind in [
            ResourceKind::Conversation,
            ResourceKind::Visit,
            ResourceKind::Recording,
        ] {
            let r = Resource::new(kind, Some("x".into()))
                .owned_by(SubjectId::new("h1"))
                .assigned_to(vec![SubjectId::new("h1")]);
            for action in ACTIONS {
                assert!(p.decide(&helpdesk, action, &r).is_err(), "{action} on {kind:?}");
            }
        }
        assert!(
            p.decide(
                &helpdesk,
                "system.status.read",
                &Resource::new(ResourceKind::System, None)
            )
            .is_ok()
        );
    }

    #[test]
    fn a_policy_granting_helpdesk_patient_data_is_refused() {
        let text = r#"[[rules]]
            id = "bad"
            roles = ["it_helpdesk"]
            actions = ["recording.view"]
            resources = ["recording"]"#;
        let problems = AccessPolicy::parse(text, "test").err().unwrap();
        assert!(problems[0].message.contains("it_helpdesk"));
    }

    #[test]
    fn unknown_actions_are_refused() {
        let text = r#"[[rules]]
            id = "typo"
            roles = ["nurse"]
            actions = ["conversation.raed"]
            resources = ["conversation"]"#;
        assert!(AccessPolicy::parse(text, "test").is_err());
    }

    #[test]
    fn conditions_owner_and_assigned() {
        let p = policy();
        let conv = Resource::new(ResourceKind::Conversation, Some("c1".into()))
            .owned_by(SubjectId::new("pat"))
            .assigned_to(vec![SubjectId::new("n1")]);
        assert!(
            p.decide(&person("pat", Role::Patient), "conversation.read", &conv)
                .is_ok()
        );
        assert!(
            p.decide(&person("other", Role::Patient), "conversation.read", &conv)
                .is_err()
        );
        assert!(
            p.decide(&person("n1", Role::Nurse), "conversation.read", &conv)
                .is_ok()
        );
        assert!(
            p.decide(&person("n2", Role::Nurse), "conversation.read", &conv)
                .is_err()
        );
    }

    #[test]
    fn service_rules_need_their_scopes() {
        let p = policy();
        let visit = Resource::new(ResourceKind::Visit, Some("v1".into()));
        let mut emr = person("emr", Role::Service);
        assert!(p.decide(&emr, "visit.recording_state.set", &visit).is_err());
        emr.scopes = vec!["recording:pause-others".into()];
        assert_eq!(
            p.decide(&emr, "visit.recording_state.set", &visit)
                .unwrap()
                .rule(),
            "emr-pause-others"
        );
    }
}
