//! Roles examroom knows, and the mapping from an identity provider's group or role claim onto them. At the bottom
//! of the layers (configuration names roles too); only `policy` decides what a role may do.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Nurse,
    Supervisor,
    ComplianceOfficer,
    ItHelpdesk,
    /// A staff interpreter, asked into a patient's video visit by its nurse.
    Interpreter,
    /// A consulting physician, asked into a patient's video visit by its nurse.
    Physician,
    /// A family member or caregiver the patient invited to one visit with a one-time link: no account, a
    /// session bound to that visit.
    Guest,
    /// A machine client (EMR integration) authenticated by client credentials.
    Service,
    /// No credentials; appears only in audit events of refused requests.
    Anonymous,
    /// The broker itself, in audit events of its background work (uploads, recovery, retention) and of its
    /// operator's command line; never granted by a sign-in (not a staff role) nor named by a policy rule.
    System,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Patient,
        Role::Nurse,
        Role::Supervisor,
        Role::ComplianceOfficer,
        Role::ItHelpdesk,
        Role::Interpreter,
        Role::Physician,
        Role::Guest,
        Role::Service,
        Role::Anonymous,
        Role::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Nurse => "nurse",
            Role::Supervisor => "supervisor",
            Role::ComplianceOfficer => "compliance_officer",
            Role::ItHelpdesk => "it_helpdesk",
            Role::Interpreter => "interpreter",
            Role::Physician => "physician",
            Role::Guest => "guest",
            Role::Service => "service",
            Role::Anonymous => "anonymous",
            Role::System => "system",
        }
    }

    /// Roles a workforce sign-in may map to.
    pub fn is_staff(self) -> bool {
        matches!(
            self,
            Role::Nurse
                | Role::Supervisor
                | Role::ComplianceOfficer
                | Role::ItHelpdesk
                | Role::Interpreter
                | Role::Physician
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// Maps the values of the configured claim (a string, a space-separated string, or an array) to roles.
/// Unmapped values are ignored; the result is sorted and deduplicated so sessions compare stably.
pub fn map_roles(claim: Option<&serde_json::Value>, mapping: &BTreeMap<String, String>) -> Vec<Role> {
    let mut roles: Vec<Role> = claim_values(claim)
        .into_iter()
        .filter_map(|v| mapping.get(v))
        .filter_map(|r| r.parse::<Role>().ok())
        .filter(|r| r.is_staff())
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// Maps the same claim's values to routing skills (`auth.staff.skill_mapping`).
pub fn map_skills(claim: Option<&serde_json::Value>, mapping: &BTreeMap<String, String>) -> Vec<String> {
    let mut skills: Vec<String> = claim_values(claim)
        .into_iter()
        .filter_map(|v| mapping.get(v).cloned())
        .collect();
    skills.sort();
    skills.dedup();
    skills
}

fn claim_values(claim: Option<&serde_json::Value>) -> Vec<&str> {
    match claim {
        Some(serde_json::Value::String(s)) => s.split_whitespace().collect(),
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> BTreeMap<String, String> {
        [
            ("g-nurses", "nurse"),
            ("g-compliance", "compliance_officer"),
            ("g-bad", "patient"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn maps_arrays_and_strings() {
        assert_eq!(
            map_roles(Some(&json!(["g-nurses", "other"])), &mapping()),
            vec![Role::Nurse]
        );
        assert_eq!(
            map_roles(Some(&json!("g-compliance g-nurses")), &mapping()),
            vec![Role::Nurse, Role::ComplianceOfficer]
        );
        assert!(map_roles(None, &mapping()).is_empty());
    }

    #[test]
    fn a_claim_can_never_grant_a_non_staff_role() {
        assert!(map_roles(Some(&json!(["g-bad"])), &mapping()).is_empty());
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }
}
