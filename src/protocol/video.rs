//! The video part of the protocol's vocabulary: sides, why a visit ended or was declined, the nurse's device
//! check, and a participant's microphone and camera (mute, camera off, audio only).

use serde::{Deserialize, Serialize};

/// Which side of a video visit a participant is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Patient,
    Nurse,
}

/// Why a video visit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Declined,
    PatientEnded,
    NurseEnded,
    /// Both participants were gone for longer than the grace period.
    Abandoned,
    /// The patient did not answer the request within `media.video_prompt_seconds`.
    NoAnswer,
    /// The patient's camera or microphone is blocked or missing (they were shown how to allow it).
    DevicesBlocked,
    /// The chat itself ended.
    ChatEnded,
    /// The server hosting the visit was stopping and the visit did not end within `cluster.drain_seconds`.
    ServerRestart,
    /// One participant's connection dropped and did not come back within `media.reconnect_limit_seconds`.
    ConnectionLost,
    /// To a guest only: the nurse turned them away from the lobby or removed them (the visit goes on).
    Removed,
    /// To a nurse only: she handed the visit on with its chat (to a colleague or a queue; it goes on).
    Transferred,
    /// To a guest only: they left the visit (the visit goes on).
    Left,
}

/// Where a visit's guest stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestState {
    /// A staff interpreter or physician the nurse asked in, who has not answered yet.
    Asked,
    /// Opened the link; waits for the nurse.
    Lobby,
    /// Let in by the nurse: may join the media room.
    Admitted,
    /// Turned away from the lobby, or removed from the visit by the nurse.
    Removed,
}

/// Whose camera and microphone a tile shows (`video_tile`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TileWho {
    /// `patient`, `nurse`, `guest`, `interpreter` or `physician`.
    pub role: &'static str,
    /// A guest's name as they typed it, or a staff member's (the patient's and nurse's are not sent: the role
    /// names them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<crate::pii::Pii<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_id: Option<String>,
}

/// A guest of a visit as the others see them (`video_party`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GuestView {
    /// Opaque (`guest-…`): what the nurse names to admit or remove them.
    pub guest_id: String,
    /// The name the guest typed, or a staff member's display name.
    pub name: crate::pii::Pii<String>,
    /// `guest` (a family member or caregiver with a link), `interpreter` or `physician` (staff the nurse asked).
    pub role: crate::role::Role,
    /// `asked`, `lobby` or `admitted`.
    pub state: GuestState,
    /// Their answer to the recording question, once given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_consent: Option<bool>,
    /// Connected to the media room now.
    pub in_call: bool,
}

/// A staff member the nurse may ask into a visit (`consult_staff`): signed in as an interpreter or physician.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Consultant {
    pub staff_id: crate::ids::SubjectId,
    pub name: Option<String>,
    pub role: crate::role::Role,
    /// Their routing skills (an interpreter's languages).
    pub skills: Vec<String>,
}

/// The result of the nurse's device check: live camera and microphone tracks.
#[derive(Debug, Deserialize, Serialize, PartialEq, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct DeviceCheck {
    pub camera: bool,
    pub microphone: bool,
}

impl DeviceCheck {
    pub fn passed(check: Option<Self>) -> bool {
        check.is_some_and(|c| c.camera && c.microphone)
    }
}

/// Why a patient did not join a video request.
#[derive(Debug, Deserialize, Serialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    Declined,
    DevicesBlocked,
}

/// One participant's microphone and camera as they set them (mute, camera off); both on when they join.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct MediaDevices {
    pub microphone: bool,
    pub camera: bool,
}

impl Default for MediaDevices {
    fn default() -> Self {
        Self {
            microphone: true,
            camera: true,
        }
    }
}

/// Why a visit is audio only.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum AudioOnlyReason {
    /// A participant chose it (a weak link, privacy).
    #[default]
    Requested,
    /// The patient's camera is missing, blocked or failing: they joined with the microphone alone.
    CameraUnavailable,
}
