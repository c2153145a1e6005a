//! Access decisions: one function, `(subject, action, resource) → allow or deny with a reason`, driven by the
//! rules in `policies/access.toml`. Deny by default. An [`Authorized`] proof can only be made here, and the
//! domain calls that touch patient data take one, so code that needs permission cannot proceed without a
//! decision. Recordings carry one more fact, the viewer roles of their recording policy: a viewer needs a rule's
//! grant *and* one of those roles, decided here and nowhere else. This module does no I/O beyond reading its file
//! at startup, and is the only place that compares roles.

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
    "conversation.preview",
    "conversation.wrap_up",
    "conversation.transfer",
    "conversation.wrap_up.view",
    "conversation.transcript.view",
    "queue.work",
    "visit.create",
    "visit.answer",
    "visit.join",
    "visit.invite",
    "visit.admit",
    "visit.consult",
    "visit.consult_answer",
    "visit.end",
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
    "break_glass.request",
    "media.test",
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
    /// For a waiting conversation: the nurse it is offered to now (until she accepts, declines or it expires).
    pub offered_to: Option<SubjectId>,
    /// For a recording: the roles its recording policy lets view it (`None` when no policy covers it any more:
    /// nobody views it).
    pub viewer_roles: Option<Vec<Role>>,
    /// Who holds a live break-glass grant for this very resource (declared, audited emergency access).
    pub break_glass: Vec<SubjectId>,
    /// For a conversation: it has not ended (waiting, or with a nurse).
    pub live: bool,
}

impl Resource {
    pub fn new(kind: ResourceKind, id: Option<String>) -> Self {
        Self {
            kind,
            id,
            owner: None,
            assignees: Vec::new(),
            offered_to: None,
            viewer_roles: None,
            break_glass: Vec::new(),
            live: false,
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
    pub fn offered_to(mut self, nurse: Option<SubjectId>) -> Self {
        self.offered_to = nurse;
        self
    }
    /// A recording (or the collection of them) viewable by `roles` under the recording policy.
    pub fn viewable_by(mut self, roles: Vec<Role>) -> Self {
        self.viewer_roles = Some(roles);
        self
    }
    /// A conversation that has not ended.
    pub fn live(mut self, live: bool) -> Self {
        self.live = live;
        self
    }
    /// The people holding a live break-glass grant for it.
    pub fn break_glass_for(mut self, holders: Vec<SubjectId>) -> Self {
        self.break_glass = holders;
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
    /// The conversation is being offered to the caller right now (who the patient is, before accepting).
    Offered,
    /// The caller holds a live break-glass grant for this resource (`POST /api/v1/break-glass`).
    BreakGlass,
    /// The conversation has not ended (a supervisor following a chat in progress; an ended one is a record).
    Live,
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

/// Proof that the policy let one subject perform one action on one resource, carrying what the decision was
/// about (a visit id, a conversation or recording row). Only [`AccessPolicy::authorize`] makes one: the fields
/// are private and there is no other constructor, so a domain call that takes `&Authorized<T>` cannot run
/// without a decision, and acts for [`Authorized::subject`], never for an identity passed beside it.
#[derive(Debug)]
pub struct Authorized<T> {
    subject: SubjectId,
    action: String,
    rule: String,
    resource: T,
}

impl<T> Authorized<T> {
    /// Who was allowed.
    pub fn subject(&self) -> &SubjectId {
        &self.subject
    }
    /// What they were allowed to do.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// The rule that allowed the action, for audit events.
    pub fn rule(&self) -> &str {
        &self.rule
    }
    /// What the decision was about.
    pub fn resource(&self) -> &T {
        &self.resource
    }

    /// Refuses a proof made for another action: a domain call accepts only the decision it needs (a
    /// `recording.view` proof does not stream, a `visit.join` proof does not pause).
    pub fn require(&self, actions: &[&str]) -> Result<(), Denial> {
        if actions.contains(&self.action.as_str()) {
            Ok(())
        } else {
            Err(Denial {
                reason: format!(
                    "a proof for {} cannot be used for {}",
                    self.action,
                    actions.join(" or ")
                ),
            })
        }
    }
}

impl<T> Authorized<Option<T>> {
    /// A decision about something that may not exist: the proof of what was found, if anything.
    pub fn transpose(self) -> Option<Authorized<T>> {
        let Authorized {
            subject,
            action,
            rule,
            resource,
        } = self;
        resource.map(|resource| Authorized {
            subject,
            action,
            rule,
            resource,
        })
    }
}

/// A decision about nothing more than the action (collections, system status).
pub type Grant = Authorized<()>;

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
            if rule.roles.contains(&Role::System) {
                problems.push(Problem::new(
                    &at,
                    "the system role is the broker's own background work; rules cannot grant it anything",
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
    #[cfg(test)]
    fn decide(&self, subject: &Principal, action: &str, resource: &Resource) -> Result<Grant, Denial> {
        self.authorize(subject, action, resource, ())
    }

    /// The decision, and on success the proof carrying `value` (what the caller loaded to decide about).
    pub(crate) fn authorize<T>(
        &self,
        subject: &Principal,
        action: &str,
        resource: &Resource,
        value: T,
    ) -> Result<Authorized<T>, Denial> {
        let (rule, condition) = self.matching_rule(subject, action, resource)?;
        // A recording is viewed only by a role its recording policy names, whatever a rule grants; one whose
        // viewers are not known (an unknown id, no policy any more) is viewed by nobody. Break-glass is the
        // declared exception to the roles (the consent text says so), never to a recording nobody may view.
        if resource.kind == ResourceKind::Recording
            && action.starts_with("recording.")
            && !resource.viewer_roles.as_ref().is_some_and(|roles| {
                condition == Some(Condition::BreakGlass) || roles.iter().any(|r| subject.has_role(*r))
            })
        {
            return Err(Denial {
                reason: format!(
                    "the recording policy does not let {} view {}",
                    roles_of(subject),
                    if resource.id.is_some() {
                        "this recording"
                    } else {
                        "recordings"
                    }
                ),
            });
        }
        Ok(Authorized {
            subject: subject.subject.clone(),
            action: action.to_string(),
            rule,
            resource: value,
        })
    }

    /// Whether a break-glass grant could matter here: a `break_glass` rule names one of the subject's roles, this
    /// action and this kind of resource. Only then are the grants worth looking up.
    pub fn break_glass_applies(&self, subject: &Principal, action: &str, kind: ResourceKind) -> bool {
        self.rules.iter().any(|r| {
            r.condition == Some(Condition::BreakGlass)
                && r.roles.iter().any(|role| subject.has_role(*role))
                && r.actions.iter().any(|a| a == action)
                && r.resources.contains(&kind)
        })
    }

    /// Whether `subject` may do `action` on `resource`, for shaping what a client is shown (a nurse's presence
    /// controls, the recordings a list includes). It grants nothing; an access attempt uses [`Self::authorize`].
    pub fn permits(&self, subject: &Principal, action: &str, resource: &Resource) -> bool {
        self.authorize(subject, action, resource, ()).is_ok()
    }

    fn matching_rule(
        &self,
        subject: &Principal,
        action: &str,
        resource: &Resource,
    ) -> Result<(String, Option<Condition>), Denial> {
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
                Some(Condition::Offered) => resource.offered_to.as_ref() == Some(&subject.subject),
                Some(Condition::BreakGlass) => resource.break_glass.contains(&subject.subject),
                Some(Condition::Live) => resource.live,
            };
            if condition_ok {
                return Ok((rule.id.clone(), rule.condition));
            }
        }
        Err(Denial {
            reason: format!(
                "no rule allows {} to {action} on {}",
                roles_of(subject),
                resource.kind.as_str()
            ),
        })
    }

    /// The ids of the rules, in file order (for tests that take one away).
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.id.as_str()).collect()
    }
}

fn roles_of(subject: &Principal) -> String {
    if subject.roles.is_empty() {
        "anonymous".to_string()
    } else {
        subject
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
}

#[cfg(test)]
mod tests;
