//! The WebSocket protocol (version 1), documented in `docs/protocol.md`. Client frames are parsed strictly:
//! unknown fields, duplicate keys, unknown types and a wrong version are errors with a precise code, never
//! guesses. Server frames are plain serialisable values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::ConversationId;
use crate::pii::Pii;

use crate::media::turn::IceServer;
use crate::media::{ConnectionState, IceCandidate};
use crate::waiting_room::{OfferEnd, Presence};

pub const PROTOCOL_VERSION: u8 = 1;

mod chat;
mod parse;
mod video;

pub use chat::{Colleague, ConversationView, RequeueReason, WrapUpSpec};
pub use parse::FrameError;
pub use video::{
    AudioOnlyReason, Consultant, DeclineReason, DeviceCheck, EndReason, GuestState, GuestView, MediaDevices,
    Side, TileWho,
};

/// Idempotency keys are client-chosen; bounded so they cannot be used to store data.
pub const MAX_KEY_CHARS: usize = 64;

/// Close codes (RFC 6455 private range 4000-4999), documented in `docs/protocol.md`.
pub mod close;

/// Serialisable too: a video frame whose visit another node hosts is forwarded to it as it was parsed here.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame of a client without a session cookie (the patient widget): its session token.
    Auth {
        v: u8,
        /// A credential: never printed.
        token: Pii<String>,
    },
    /// Patient: enter a queue's waiting room (idempotent per key).
    Start {
        v: u8,
        /// The portal's queue; without one, the queue of `language` (else the first queue).
        #[serde(default)]
        queue: Option<String>,
        /// The widget's language (`en`, `es`).
        #[serde(default)]
        language: Option<String>,
        idempotency_key: String,
        /// PHI: why the patient came, in their words (optional; shown to the nurse before she accepts).
        #[serde(default)]
        reason: Option<Pii<String>>,
    },
    /// Nurse: who the patient of a chat offered to her (or hers) is, and why they came. Audited.
    Preview {
        v: u8,
        conversation_id: ConversationId,
    },
    /// Nurse: hand an assigned chat to another `queue` (cold: the patient waits first in line there) or to a
    /// `nurse` (warm: she is asked, the chat stays until she accepts); one of the two. The next nurse sees the
    /// conversation so far.
    Transfer {
        v: u8,
        conversation_id: ConversationId,
        #[serde(default)]
        queue: Option<String>,
        #[serde(default)]
        nurse: Option<crate::ids::SubjectId>,
    },
    /// Nurse: who could take this chat of hers now (`colleagues` answers).
    Colleagues {
        v: u8,
        conversation_id: ConversationId,
    },
    /// Nurse: the wrap-up of a chat she ended — a configured disposition and optional notes (PHI).
    WrapUp {
        v: u8,
        conversation_id: ConversationId,
        disposition: String,
        #[serde(default)]
        notes: Option<Pii<String>>,
    },
    /// Send a chat message; acknowledged once durable.
    Send {
        v: u8,
        conversation_id: ConversationId,
        idempotency_key: String,
        /// PHI: never printed (`Debug` redacts it); the wire format is the plain string.
        body: Pii<String>,
    },
    /// Replay messages after `after_seq` (reconnect, or a nurse opening a transcript).
    Sync {
        v: u8,
        conversation_id: ConversationId,
        after_seq: i64,
    },
    /// Nurse presence: `ready` or `away` (busy and wrap-up follow from work).
    Presence {
        v: u8,
        state: PresenceRequest,
    },
    Accept {
        v: u8,
        conversation_id: ConversationId,
    },
    Decline {
        v: u8,
        conversation_id: ConversationId,
    },
    /// Nurse ends a chat (then wrap-up); a patient leaves the waiting room or the chat.
    End {
        v: u8,
        conversation_id: ConversationId,
    },
    /// Patient: stop waiting and ask to be called back; messages written so far stay with the request.
    Callback {
        v: u8,
        conversation_id: ConversationId,
    },
    Ping {
        v: u8,
    },
    /// Nurse: elevate an assigned chat to video.
    VideoRequest {
        v: u8,
        conversation_id: ConversationId,
        /// The nurse's camera and microphone check for this request (each request carries its own): without a
        /// passing one the request is refused.
        #[serde(default)]
        device_check: Option<DeviceCheck>,
    },
    /// Patient: answer the camera and microphone prompt.
    VideoAnswer {
        v: u8,
        visit_id: String,
        accept: bool,
        /// The answer to the recording-consent question, when the visit's policy asks it.
        #[serde(default)]
        recording_consent: Option<bool>,
        /// The language of the consent question the patient was shown (`en`, `es`), kept with the answer.
        #[serde(default)]
        consent_language: Option<String>,
        /// Why not, when `accept` is false: `declined` (the default) or `devices_blocked`.
        #[serde(default)]
        decline_reason: Option<DeclineReason>,
        /// Join with the microphone alone (the camera is missing, blocked or failing): the visit starts audio only.
        #[serde(default)]
        audio_only: bool,
    },
    /// A participant's SDP offer (first join, rejoin after a reload, or ICE restart).
    VideoOffer {
        v: u8,
        visit_id: String,
        sdp: String,
        /// The nurse's screen capture among the offer's tracks (its `MediaStreamTrack.id`), when the visit's
        /// `video_started` said `record_screen`: recorded; shown to the patient only with `screen_shared`.
        #[serde(default)]
        screen_track: Option<String>,
        /// Show that screen to the other participants too (the nurse's screen share), not only to the recording.
        #[serde(default)]
        screen_shared: bool,
    },
    /// A participant's answer to the SFU's own offer (`video_server_offer`).
    VideoServerAnswer {
        v: u8,
        visit_id: String,
        sdp: String,
    },
    /// A trickled ICE candidate for the participant's connection.
    VideoCandidate {
        v: u8,
        visit_id: String,
        candidate: IceCandidate,
    },
    /// Close this participant's connection; the visit stays and can be rejoined.
    VideoLeave {
        v: u8,
        visit_id: String,
    },
    /// End the video for both; the chat goes on. From a guest: leave the visit (it goes on for the others).
    VideoEnd {
        v: u8,
        visit_id: String,
    },
    /// Patient: a one-time link for a family member or caregiver to join this visit (answered `guest_link`).
    GuestInvite {
        v: u8,
        visit_id: String,
    },
    /// Nurse: let a guest waiting in the lobby in (`admit`), or turn them away.
    GuestAdmit {
        v: u8,
        visit_id: String,
        guest_id: String,
        admit: bool,
    },
    /// Nurse: remove a guest from the visit (waiting or admitted); they cannot come back with the same link.
    GuestRemove {
        v: u8,
        visit_id: String,
        guest_id: String,
    },
    /// Nurse: the interpreters and physicians signed in now, whom she may ask in (answered `consult_staff`).
    ConsultStaff {
        v: u8,
        visit_id: String,
    },
    /// Nurse: ask a staff interpreter or physician into the visit; they join once they accept.
    ConsultInvite {
        v: u8,
        visit_id: String,
        staff_id: String,
    },
    /// Interpreter or physician: accept (join) or decline the nurse's request (`consult_asked`).
    ConsultAnswer {
        v: u8,
        visit_id: String,
        accept: bool,
    },
    /// This participant's microphone and camera (mute, camera off), shown to the other side.
    VideoMedia {
        v: u8,
        visit_id: String,
        microphone: bool,
        camera: bool,
    },
    /// Switch the visit to audio only, or back to video (either participant).
    VideoMode {
        v: u8,
        visit_id: String,
        audio_only: bool,
        #[serde(default)]
        reason: AudioOnlyReason,
    },
    /// Start a pre-call test of the media path (answered `precall_ready`).
    PrecallStart {
        v: u8,
    },
    /// The pre-call test connection's SDP offer (answered `precall_answer`).
    PrecallOffer {
        v: u8,
        sdp: String,
    },
    /// A trickled ICE candidate of the pre-call test connection.
    PrecallCandidate {
        v: u8,
        candidate: IceCandidate,
    },
    /// Close the pre-call test connection (it also closes by itself, see `precall_ready`).
    PrecallEnd {
        v: u8,
    },
}

/// What a participant is told about the visit's recording.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecordingNotice {
    /// No policy records this visit.
    None,
    /// The policy records this visit once the patient consents.
    ConsentRequired,
    /// Recorded without a consent question (the policy does not require one).
    WillRecord,
    Recording,
    Paused,
    /// The patient declined; the visit goes on unrecorded.
    Declined,
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum PresenceRequest {
    Ready,
    Away,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        v: u8,
        role: String,
        conversations: Vec<ConversationView>,
        presence: Option<Presence>,
        /// For those who work the queues: how long wrap-up lasts and the dispositions to pick from.
        #[serde(skip_serializing_if = "Option::is_none")]
        wrap_up: Option<WrapUpSpec>,
        /// For those who work the queues: the queues a chat may be transferred to.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        queues: Vec<String>,
    },
    /// A wrap-up was stored.
    WrapUpSaved {
        conversation_id: ConversationId,
    },
    Conversation {
        conversation: ConversationView,
    },
    Ack {
        conversation_id: ConversationId,
        idempotency_key: String,
        seq: i64,
        at: String,
        duplicate: bool,
    },
    Message {
        conversation_id: ConversationId,
        seq: i64,
        sender_role: String,
        body: Pii<String>,
        at: String,
    },
    /// The answer to `preview`: PHI, to the nurse's own socket only (never on the bus).
    Preview {
        conversation_id: ConversationId,
        /// The patient's name and birth date as the portal's ID token gave them (verified by its signature).
        name: Option<Pii<String>>,
        birthdate: Option<Pii<String>>,
        reason: Option<Pii<String>>,
        /// The patient's first message, cut to a preview.
        first_message: Option<Pii<String>>,
        emergency: bool,
    },
    /// End of a `sync` page; `more` asks the client to sync again from `last_seq`.
    Synced {
        conversation_id: ConversationId,
        last_seq: i64,
        more: bool,
    },
    Waiting {
        conversation_id: ConversationId,
        position: usize,
        eta_seconds: Option<u64>,
    },
    Reassurance {
        conversation_id: ConversationId,
        text: String,
    },
    MaxWait {
        conversation_id: ConversationId,
        text: String,
    },
    /// The patient wrote of emergency symptoms or of suicide or self-harm: the notice in the language they
    /// wrote in (the widget asks where they are, so staff can send help).
    Emergency {
        conversation_id: ConversationId,
        kind: crate::triage::AlarmKind,
        language: String,
        text: String,
    },
    IdleWarning {
        conversation_id: ConversationId,
        closes_in_seconds: u64,
    },
    Offer {
        conversation_id: ConversationId,
        reference: String,
        queue: String,
        expires_in_seconds: u64,
        waited_seconds: u64,
        emergency: bool,
        /// A warm transfer: the name of the nurse who asks her to take her chat.
        #[serde(skip_serializing_if = "Option::is_none")]
        from_nurse: Option<String>,
    },
    OfferEnded {
        conversation_id: ConversationId,
        reason: OfferEnd,
    },
    Assigned {
        conversation_id: ConversationId,
    },
    Ended {
        conversation_id: ConversationId,
        reason: String,
    },
    Presence {
        state: Presence,
    },
    Error {
        code: String,
        message: String,
    },
    Pong,
    /// The nurse asked for video: the patient is prompted (the nurse waits). `recording` says whether the
    /// visit will be recorded and whether the patient must consent first.
    VideoProposed {
        conversation_id: ConversationId,
        visit_id: String,
        recording: RecordingNotice,
        /// With `consent_required`: the consent question, generated from the recording policy (who may view the
        /// recording, how long it is kept).
        #[serde(skip_serializing_if = "Option::is_none")]
        consent_text: Option<String>,
        /// With `consent_required`: the same question in the widget's other languages, by language tag (`es`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        consent_translations: BTreeMap<String, String>,
    },
    /// The patient agreed: join with an offer, using these ICE servers.
    VideoStarted {
        conversation_id: ConversationId,
        visit_id: String,
        ice_servers: Vec<IceServer>,
        ice_transport_policy: String,
        recording: RecordingNotice,
        /// The visit is audio only: join without sending video (see `video_mode`).
        audio_only: bool,
        /// The recording policy records the nurse's screen too: her workspace asks her to share it.
        record_screen: bool,
        /// How many times the visit moved to another server (a drain or a failover). A client whose connection
        /// was made at a lower epoch closes it and joins again with a new one; consent and the recording carry over.
        epoch: u32,
    },
    /// The visit's recording was paused or resumed (shown to both).
    RecordingState {
        visit_id: String,
        state: RecordingNotice,
    },
    /// What a pre-call test connects with: the ICE servers and transport policy a visit would use, and how many
    /// seconds the test connection may stay open.
    PrecallReady {
        ice_servers: Vec<IceServer>,
        ice_transport_policy: String,
        seconds: u64,
    },
    /// The SFU's answer to a `precall_offer`.
    PrecallAnswer {
        sdp: String,
    },
    /// An ICE candidate of the SFU's side of the pre-call test connection.
    PrecallCandidate {
        candidate: IceCandidate,
    },
    /// The SFU's answer to a `video_offer`.
    VideoSdp {
        visit_id: String,
        sdp: String,
    },
    /// The SFU offers a change of this participant's connection (the other side's screen shared, or no longer):
    /// answer with `video_server_answer`; a client with an offer of its own out rolls it back first.
    VideoServerOffer {
        visit_id: String,
        sdp: String,
    },
    /// An ICE candidate of the SFU's side of this participant's connection.
    VideoCandidate {
        visit_id: String,
        candidate: IceCandidate,
    },
    /// The SFU asks this side to send a new offer on its connection (someone who can receive video only as
    /// H.264 joined; the answer asks for H.264).
    VideoRenegotiate {
        visit_id: String,
    },
    /// One side's link is too slow for video: it gets audio only from the others until it recovers (`false`).
    /// Sent to both.
    VideoLink {
        visit_id: String,
        side: Side,
        audio_only: bool,
    },
    /// Connection state of one side, sent to both (the workspace shows it).
    VideoPeer {
        visit_id: String,
        side: Side,
        state: ConnectionState,
    },
    /// One side's microphone and camera, to both (also re-sent to a reconnecting socket).
    VideoMedia {
        visit_id: String,
        side: Side,
        microphone: bool,
        camera: bool,
    },
    /// The visit became audio only or went back to video; `by` is the side that switched it.
    VideoMode {
        visit_id: String,
        audio_only: bool,
        by: Side,
        reason: AudioOnlyReason,
    },
    /// To the patient: the one-time link to give a family member or caregiver. `link` is a path on this
    /// server whose fragment carries the token (a fragment never reaches a server, so no access log holds it).
    GuestLink {
        visit_id: String,
        link: String,
        expires_at_ms: i64,
    },
    /// To everyone in a visit: its guests, waiting in the lobby or admitted (an empty list when none is left).
    VideoParty {
        visit_id: String,
        guests: Vec<GuestView>,
    },
    /// To one participant: whose camera and microphone the tracks of `stream_id` on its connection carry now
    /// (`who` absent: nobody's, they left). The first audio and video pair is `sfu-<visit>`, each added one
    /// `sfu-<visit>-<4 hex>`.
    VideoTile {
        visit_id: String,
        stream_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        who: Option<TileWho>,
    },
    /// To a guest: they wait in the visit's lobby until the nurse lets them in.
    GuestLobby {
        visit_id: String,
    },
    /// To the nurse: who she may ask into the visit.
    ConsultStaff {
        visit_id: String,
        staff: Vec<Consultant>,
    },
    /// To an interpreter or physician: the visit's nurse (`from`, her display name) asks them in as `role`.
    ConsultAsked {
        visit_id: String,
        from: Option<String>,
        role: crate::role::Role,
    },
    /// To the patient and guests: the visit's nurse handed it on with the chat; `nurse` (a display name) takes
    /// over and joins shortly, or (absent) the next nurse to accept the chat from the queue will.
    VideoHandover {
        visit_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        nurse: Option<String>,
    },
    /// To the nurse: the staff member she asked declined.
    ConsultDeclined {
        visit_id: String,
        name: crate::pii::Pii<String>,
    },
    VideoEnded {
        conversation_id: ConversationId,
        visit_id: String,
        reason: EndReason,
        /// The visit's epoch when it ended (a client connected at a later epoch ignores it).
        epoch: u32,
    },
    /// To the nurse: where the patient of an assigned chat is (their connection dropped, came back, or stayed
    /// away past `routing.patient_grace_seconds`).
    PatientPresence {
        conversation_id: ConversationId,
        state: crate::waiting_room::PatientState,
    },
    /// To the patient: their nurse stayed away, so the chat is back in the queue, first in line.
    Requeued {
        conversation_id: ConversationId,
        text: String,
        /// Why: the nurse stayed away (`nurse_away`), or transferred the chat (`transferred`).
        reason: RequeueReason,
    },
    /// The nurses who could take a chat now (ready, with its queue's skills), by name.
    Colleagues {
        conversation_id: ConversationId,
        nurses: Vec<Colleague>,
    },
    /// A warm transfer asked: the colleague is offered the chat, which stays with the asking nurse meanwhile.
    TransferAsked {
        conversation_id: ConversationId,
        colleague: Option<String>,
    },
    /// A warm transfer the colleague did not take (declined, let expire, went away, or the chat ended): the chat
    /// stays with the nurse who asked.
    TransferEnded {
        conversation_id: ConversationId,
        colleague: Option<String>,
        reason: OfferEnd,
    },
    /// A frame another node built, relayed over the cluster's bus as it was serialised there (never a chat
    /// message: those travel as a pointer to their row and are decrypted by the node that delivers them).
    #[serde(untagged)]
    Relayed(serde_json::Value),
}

impl ServerFrame {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
