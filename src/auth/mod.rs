//! Who is calling: staff through the workforce OpenID provider (the broker is the relying party), patients
//! through the clinic portal's ID token, machine clients through client-credentials access tokens. This module
//! establishes identity and sessions; it never decides what an identity may do (that is `policy`).

pub mod jwt;

pub mod session;
pub mod staff;

pub use crate::role::Role;
pub use session::{Session, SessionKind, Sessions};

use crate::ids::{SessionId, SubjectId};
use crate::pii::Pii;

/// An authenticated caller, as the policy sees it. Serialisable: a node forwards a caller's video frame to the
/// node hosting the visit with the caller as it authenticated them (over the signed node-to-node channel).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    pub subject: SubjectId,
    pub roles: Vec<Role>,
    /// Routing skills (nurses); empty otherwise.
    pub skills: Vec<String>,
    /// OAuth scopes of a service principal; empty for people.
    pub scopes: Vec<String>,
    /// The server-side session behind a cookie or patient bearer token; `None` for service tokens.
    pub session: Option<SessionId>,
    pub display_name: Option<Pii<String>>,
    /// A patient's birth date as the portal's ID token gave it; `None` for staff.
    pub birthdate: Option<Pii<String>>,
}

impl Principal {
    /// The role audit events attribute an action to: the first mapped role.
    pub fn primary_role(&self) -> Role {
        self.roles.first().copied().unwrap_or(Role::Anonymous)
    }
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Why a credential was refused. The codes are stable and appear in JSON errors and audit reasons; none of
/// them echoes token contents.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    MissingCredentials,
    #[error("token rejected: {0}")]
    Token(#[from] jwt::TokenError),
    #[error("session expired or unknown")]
    SessionInvalid,
    #[error("sign-in failed: {0}")]
    SignIn(String),
    #[error("the account has no examroom role")]
    NoRole,
    #[error("identity provider unavailable")]
    ProviderUnavailable,
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl AuthError {
    /// Short machine-readable reason for audit events and metrics labels.
    pub fn reason_code(&self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "missing_credentials",
            AuthError::Token(t) => t.code(),
            AuthError::SessionInvalid => "session_invalid",
            AuthError::SignIn(_) => "sign_in_failed",
            AuthError::NoRole => "no_role",
            AuthError::ProviderUnavailable => "provider_unavailable",
            AuthError::Store(_) => "store_error",
        }
    }
}
