//! Server-side sessions. The client holds a random bearer secret (a cookie for staff, a token for the patient
//! widget); the database holds only its SHA-256, so a leaked database row cannot be replayed. Staff sessions
//! end after an idle timeout and an absolute lifetime; patient sessions end when the portal's ID token expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{AuthError, Principal, Role};
use crate::clock::now_ms;
use crate::crypto::DataKey;
use crate::ids::{SessionId, SubjectId};
use crate::pii::Pii;
use crate::store::{Db, SessionRow};

/// Last-seen updates are written at most this often per session, so reads do not turn into writes.
const TOUCH_INTERVAL_MS: i64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Staff,
    Patient,
    /// A patient's guest in one visit (no account: opened by the visit's one-time link).
    Guest,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Staff => "staff",
            SessionKind::Patient => "patient",
            SessionKind::Guest => "guest",
        }
    }
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub kind: SessionKind,
    pub principal: Principal,
    pub expires_at_ms: i64,
    pub idle_timeout_ms: Option<i64>,
}

/// What a new session starts with.
pub struct NewSession {
    pub kind: SessionKind,
    pub subject: SubjectId,
    pub roles: Vec<Role>,
    /// Routing skills of a nurse (from the provider's claims); empty for patients.
    pub skills: Vec<String>,
    pub display_name: Option<Pii<String>>,
    /// A patient's birth date from the portal's ID token (`birthdate`), for the nurse to confirm who she treats.
    pub birthdate: Option<Pii<String>>,
    pub expires_at_ms: i64,
    pub idle_timeout_ms: Option<i64>,
}

pub struct Sessions {
    db: Db,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Marks a patient's name or birth date sealed under their session token (`identity_key`).
const SEALED: &str = "sealed:";

/// A patient's verified name and birth date are PHI: their session row keeps them sealed under a key derived
/// from the session's bearer token, which the broker stores only hashed. The database alone cannot read them;
/// each request that presents the token can. (Staff names are not PHI and stay readable for the pages that
/// name nurses.)
fn identity_key(token: &str) -> DataKey {
    DataKey::derive(token.as_bytes(), "examroom-session-identity-v1")
}

fn seal_identity(
    key: &DataKey,
    session: &str,
    value: Option<&Pii<String>>,
) -> Result<Option<String>, AuthError> {
    value
        .map(|v| {
            key.seal(v.expose().as_bytes(), session.as_bytes())
                .map(|sealed| format!("{SEALED}{sealed}"))
                .map_err(|_| AuthError::SessionInvalid)
        })
        .transpose()
}

/// A stored name or birth date as the principal carries it: opened when sealed (a value that does not open
/// under this token is dropped, never shown), as stored otherwise (staff; rows from before sealing).
fn open_identity(key: &DataKey, session: &str, stored: Option<String>) -> Option<Pii<String>> {
    let stored = stored?;
    match stored.strip_prefix(SEALED) {
        None => Some(Pii::new(stored)),
        Some(sealed) => key
            .open(sealed, session.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Pii::new),
    }
}

impl Sessions {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Creates a session and returns it with its bearer secret (shown to the client once).
    pub async fn create(&self, new: NewSession) -> Result<(Session, SecretString), AuthError> {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        let now = now_ms();
        let id = SessionId::random();
        let roles: Vec<&str> = new.roles.iter().map(|r| r.as_str()).collect();
        let (display_name, birthdate) = match new.kind {
            // A guest's name is personal data as much as a patient's.
            SessionKind::Patient | SessionKind::Guest => {
                let key = identity_key(&token);
                (
                    seal_identity(&key, id.as_str(), new.display_name.as_ref())?,
                    seal_identity(&key, id.as_str(), new.birthdate.as_ref())?,
                )
            }
            SessionKind::Staff => (
                new.display_name.as_ref().map(|n| n.expose().clone()),
                new.birthdate.as_ref().map(|n| n.expose().clone()),
            ),
        };
        self.db
            .insert_session(&SessionRow {
                id: id.as_str().to_string(),
                token_hash: token_hash(&token),
                kind: new.kind.as_str().to_string(),
                subject: new.subject.as_str().to_string(),
                roles: roles.join(" "),
                skills: new.skills.join(" "),
                display_name,
                birthdate,
                created_at: now,
                last_seen_at: now,
                idle_timeout_ms: new.idle_timeout_ms,
                expires_at: new.expires_at_ms,
                revoked_at: None,
            })
            .await?;
        // The staff directory names people in the console and reports; a sign-in does not fail for it (the
        // session's own name is the fallback).
        if new.kind == SessionKind::Staff
            && let Err(e) = self
                .db
                .remember_staff(
                    new.subject.as_str(),
                    new.display_name.as_ref().map(|n| n.expose().as_str()),
                    &roles.join(" "),
                    now,
                )
                .await
        {
            tracing::warn!(error = %e, "staff directory not updated");
        }
        let session = Session {
            id: id.clone(),
            kind: new.kind,
            principal: Principal {
                subject: new.subject,
                roles: new.roles,
                skills: new.skills,
                scopes: Vec::new(),
                session: Some(id),
                display_name: new.display_name,
                birthdate: new.birthdate,
            },
            expires_at_ms: new.expires_at_ms,
            idle_timeout_ms: new.idle_timeout_ms,
        };
        Ok((session, SecretString::from(token)))
    }

    /// The live session behind a bearer secret, refreshing its idle clock.
    pub async fn resolve(&self, token: &SecretString) -> Result<Session, AuthError> {
        let row = self
            .db
            .session_by_token_hash(&token_hash(token.expose_secret()))
            .await?
            .ok_or(AuthError::SessionInvalid)?;
        let now = now_ms();
        let mut idle_expired = row
            .idle_timeout_ms
            .is_some_and(|idle| now - row.last_seen_at > idle);
        // A patient's idle clock runs only while no socket refreshes it, and not while they wait in a queue
        // (a phone that locked its screen in the waiting room keeps its place and its session).
        if idle_expired && row.kind == "patient" && self.db.is_waiting(&row.subject).await? {
            idle_expired = false;
        }
        if row.revoked_at.is_some() || now >= row.expires_at || idle_expired {
            return Err(AuthError::SessionInvalid);
        }
        // Refreshed often enough that an open socket's re-checks keep even a short idle rule from expiring.
        let touch_every = row
            .idle_timeout_ms
            .map_or(TOUCH_INTERVAL_MS, |idle| TOUCH_INTERVAL_MS.min(idle / 3));
        if now - row.last_seen_at > touch_every {
            self.db.touch_session(&row.id, now).await?;
        }
        let kind = match row.kind.as_str() {
            "patient" => SessionKind::Patient,
            "guest" => SessionKind::Guest,
            _ => SessionKind::Staff,
        };
        let roles = row
            .roles
            .split_whitespace()
            .filter_map(|r| r.parse::<Role>().ok())
            .collect();
        let key = identity_key(token.expose_secret());
        let display_name = open_identity(&key, &row.id, row.display_name);
        let birthdate = open_identity(&key, &row.id, row.birthdate);
        let id = SessionId::new(row.id);
        Ok(Session {
            id: id.clone(),
            kind,
            principal: Principal {
                subject: SubjectId::new(row.subject),
                roles,
                skills: row.skills.split_whitespace().map(str::to_string).collect(),
                scopes: Vec::new(),
                session: Some(id),
                display_name,
                birthdate,
            },
            expires_at_ms: row.expires_at,
            idle_timeout_ms: row.idle_timeout_ms,
        })
    }

    pub async fn revoke(&self, id: &SessionId) -> Result<(), AuthError> {
        self.db.revoke_session(id.as_str(), now_ms()).await?;
        Ok(())
    }

    /// Keeps at most `max` live patient sessions for a subject, `keep` (the one just opened) always among them;
    /// the oldest beyond it are revoked. Returns the ids revoked.
    pub async fn cap_patient_sessions(
        &self,
        subject: &SubjectId,
        keep: &SessionId,
        max: usize,
    ) -> Result<Vec<SessionId>, AuthError> {
        let now = now_ms();
        let mut live = self.db.live_session_ids("patient", subject.as_str(), now).await?;
        live.retain(|id| id != keep.as_str());
        let mut revoked = Vec::new();
        for id in live.into_iter().skip(max.max(1) - 1) {
            self.db.revoke_session(&id, now).await?;
            revoked.push(SessionId::new(id));
        }
        Ok(revoked)
    }

    /// Ends every live session of a subject at once (an administrator removed the person); returns the ids.
    pub async fn revoke_subject(&self, subject: &SubjectId) -> Result<Vec<SessionId>, AuthError> {
        let now = now_ms();
        // Grants first: a failure between the two must not leave an emergency grant to a revoked person.
        self.db.expire_break_glass_of(subject.as_str(), now).await?;
        let ids = self.db.revoke_sessions_of(subject.as_str(), now).await?;
        Ok(ids.into_iter().map(SessionId::new).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_s_identity_is_sealed_under_the_token_and_bound_to_the_session() {
        let key = identity_key("token-one");
        let name = Pii::new("Ana Example".to_string());
        let stored = seal_identity(&key, "s1", Some(&name)).unwrap().unwrap();
        assert!(stored.starts_with(SEALED) && !stored.contains("Ana"), "{stored}");
        let opened = open_identity(&key, "s1", Some(stored.clone())).unwrap();
        assert_eq!(opened.expose(), "Ana Example");
        // Another token, or the value moved to another session's row: nothing, rather than a wrong name.
        assert!(open_identity(&identity_key("token-two"), "s1", Some(stored.clone())).is_none());
        assert!(open_identity(&key, "s2", Some(stored)).is_none());
        // Staff names (and rows from before sealing) are read as stored.
        let plain = open_identity(&key, "s1", Some("Nora Demo".into())).unwrap();
        assert_eq!(plain.expose(), "Nora Demo");
        assert_eq!(seal_identity(&key, "s1", None).unwrap(), None);
    }
}
