//! Why the video service refuses: one enum for the module, with the code a client gets (the socket's error frame;
//! HTTP maps it once in `http::error`) and whether a refusal is an access attempt (audited).

use crate::media::MediaError;
use crate::visit::VisitError;
use crate::visit::guests::GuestError;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(transparent)]
    Visit(#[from] VisitError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the conversation is not open")]
    NoConversation,
    #[error("this call was allowed for another action")]
    WrongProof,
    #[error("another join of the same participant replaced this one")]
    Replaced,
    #[error("this visit is not being recorded")]
    NotRecorded,
    #[error("a reason is required")]
    ReasonRequired,
    #[error("recording failed")]
    Recording,
    #[error("only the nurse's screen, and only when the visit's recording policy records it")]
    ScreenNotRecorded,
    #[error("that person is not signed in as an interpreter or physician")]
    NotConsultant,
    #[error("storage is unavailable")]
    Store(#[from] crate::store::StoreError),
}

impl From<crate::policy::Denial> for VideoError {
    fn from(_: crate::policy::Denial) -> Self {
        Self::WrongProof
    }
}

impl VideoError {
    /// The code a client gets for this refusal (the socket's error frame; HTTP maps it in `http::error`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Visit(VisitError::NotAssignedNurse) => "forbidden",
            Self::Visit(VisitError::NotParticipant | VisitError::UnknownVisit) => "forbidden",
            Self::Visit(VisitError::NotPatient) => "forbidden",
            Self::Visit(VisitError::NotActive) => "video_not_accepted",
            Self::Visit(VisitError::WrapUp) => "in_wrap_up",
            Self::Visit(VisitError::AlreadyAnswered) => "already_answered",
            Self::Visit(VisitError::Guest(e)) => e.code(),
            Self::NoConversation => "forbidden",
            Self::NotRecorded => "not_recorded",
            Self::ReasonRequired => "reason_required",
            Self::Recording => "recording_failed",
            Self::ScreenNotRecorded => "screen_not_recorded",
            Self::NotConsultant => "not_consultant",
            Self::Store(_) => "store_unavailable",
            Self::Replaced => "replaced",
            Self::WrongProof => "forbidden",
            Self::Media(MediaError::InvalidSdp(_)) => "invalid_sdp",
            Self::Media(MediaError::SdpTooLarge(_)) => "sdp_too_large",
            Self::Media(MediaError::TooManyTracks(_)) => "too_many_tracks",
            Self::Media(MediaError::InvalidCandidate) => "invalid_candidate",
            Self::Media(MediaError::NoPeerConnection) => "no_peer_connection",
            Self::Media(MediaError::NoPort) => "media_unavailable",
            Self::Media(MediaError::Engine(_)) => "media_unavailable",
            Self::Media(MediaError::Glare) => "server_offer_pending",
            Self::Media(MediaError::NoServerOffer) => "no_server_offer",
        }
    }

    /// Whether the refusal is someone reaching for a visit or conversation that is not theirs (audited).
    pub fn is_access_attempt(&self) -> bool {
        matches!(
            self,
            Self::Visit(VisitError::NotAssignedNurse)
                | Self::Visit(VisitError::NotParticipant | VisitError::UnknownVisit)
                | Self::Visit(VisitError::NotPatient)
                | Self::Visit(VisitError::NotActive)
                | Self::Visit(VisitError::Guest(
                    GuestError::NotAdmitted | GuestError::LinkInvalid | GuestError::NotAsked
                ))
                | Self::NoConversation
                | Self::WrongProof
        )
    }
}
