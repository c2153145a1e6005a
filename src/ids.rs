//! Typed identifiers. Every id that crosses a module boundary has its own type so a session id can never be
//! passed where an audit sequence or a subject is expected. Opaque ids are random and carry no PHI.

use rand::RngCore;

/// 128 random bits, hex-encoded: unguessable and safe to log, put in URLs or object keys.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Declares a `String`-backed id newtype with the conversions every id needs.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Declares an opaque random id: printable, since it reveals nothing.
macro_rules! opaque_id {
    ($(#[$meta:meta])* $name:ident) => {
        string_id!($(#[$meta])* $name);
        impl $name {
            pub fn random() -> Self {
                Self(random_hex(16))
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// The identity provider's `sub` for a person or the client id of a service principal.
    /// It may be a medical record number at some providers, so it never prints: use
    /// [`crate::pii::pseudonym`] to mention it in logs.
    SubjectId
);

impl std::fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectId([redacted])")
    }
}

opaque_id!(
    /// Correlates one HTTP request across logs, audit events and error bodies.
    RequestId
);

opaque_id!(
    /// Public handle of a server-side session row (never the bearer secret itself).
    SessionId
);

opaque_id!(
    /// A patient's chat with the clinic, from the waiting room to the end of the visit.
    ConversationId
);

string_id!(
    /// A recording: `r` and 24 random hex digits. Safe to print, put in object keys and audit events.
    RecordingId
);

impl RecordingId {
    pub fn random() -> Self {
        Self(format!("r{}", random_hex(12)))
    }

    /// Accepts only something shaped like our ids, so a client's text never reaches an audit event or a key.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 25 && text.starts_with('r') && text[1..].chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| Self(text.to_string()))
    }
}

/// Reads as its text where a `&str` is expected (keys, queries): the id is not secret.
impl std::ops::Deref for RecordingId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for RecordingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordingId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids_never_print_their_value() {
        let s = SubjectId::new("MRN-0042");
        assert!(!format!("{s:?}").contains("0042"));
    }

    #[test]
    fn recording_ids_have_one_shape() {
        let r = RecordingId::random();
        assert_eq!(RecordingId::parse(r.as_str()), Some(r));
        for bad in [
            "",
            "r123",
            "x000000000000000000000000",
            "r00000000000000000000000g",
            "../etc/passwd",
        ] {
            assert_eq!(RecordingId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn random_ids_are_distinct_and_hex() {
        let a = RequestId::random();
        let b = RequestId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }
}
