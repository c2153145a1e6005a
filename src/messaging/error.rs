//! The messaging layer's one error type and the code each becomes on the socket (mapped once, here).

use crate::crypto::CryptoError;
use crate::store::StoreError;
use crate::waiting_room::RoutingError;

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("unknown queue")]
    UnknownQueue,
    #[error("{0}")]
    WrongProof(String),
    #[error("conversation is closed")]
    Closed,
    #[error("routing: {0}")]
    Routing(#[from] RoutingError),
    #[error("encryption: {0}")]
    Crypto(#[from] CryptoError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the routing leader could not be reached")]
    RoutingUnavailable,
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("the chat is still open: wrap it up after it ends")]
    StillOpen,
    #[error("not one of the configured dispositions")]
    UnknownDisposition,
    #[error("too long")]
    TooLong,
    #[error("this chat is wrapped up already")]
    AlreadyWrappedUp,
    #[error("that colleague cannot take a chat now")]
    ColleagueUnavailable,
}

impl From<crate::policy::Denial> for MessagingError {
    fn from(d: crate::policy::Denial) -> Self {
        Self::WrongProof(d.reason)
    }
}

impl MessagingError {
    /// The code a client gets (the socket's error frame).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownQueue => "unknown_queue",
            Self::WrongProof(_) => "forbidden",
            Self::Closed => "conversation_closed",
            Self::Routing(_) => "no_such_offer",
            Self::RoutingUnavailable | Self::Cluster(_) => "unavailable",
            Self::Crypto(_) | Self::Store(_) => "internal",
            Self::StillOpen => "conversation_open",
            Self::UnknownDisposition => "unknown_disposition",
            Self::TooLong => "too_long",
            Self::AlreadyWrappedUp => "already_wrapped_up",
            Self::ColleagueUnavailable => "colleague_unavailable",
        }
    }
}
