//! Mute, camera off and audio only during a visit, for its participants (`visit.join`). The rules live in
//! [`crate::visit::controls`]; this tells both sides of each change, marks audio-only intervals in the
//! recording's manifest, and asks for keyframes when video comes back (viewers cannot decode without one).

use super::{VideoError, VideoService};
use crate::clock::now_ms;
use crate::policy::Authorized;
use crate::protocol::{AudioOnlyReason, MediaDevices, ServerFrame};
use crate::recording::session::RecordingSession;
use crate::visit::{Side, Visit, VisitId};

fn reason_text(reason: AudioOnlyReason) -> &'static str {
    match reason {
        AudioOnlyReason::Requested => "requested",
        AudioOnlyReason::CameraUnavailable => "camera_unavailable",
    }
}

impl VideoService {
    /// A participant mutes or unmutes, turns the camera off or on: the other side is told.
    pub async fn set_devices(
        &self,
        proof: &Authorized<VisitId>,
        devices: MediaDevices,
    ) -> Result<(), VideoError> {
        proof.require(&["visit.join"])?;
        let (id, who) = (proof.resource(), proof.subject());
        let guest = self.live().visits.get(id).and_then(|v| v.seat_of(who));
        if let Some(crate::visit::Seat::Guest(_)) = guest {
            // A guest's mute shows in their picture and sound alone: the protocol names the patient's and nurse's.
            return Ok(());
        }
        let changed = self.live().visits.set_devices(id, who, devices)?;
        if let Some(c) = changed {
            self.to_both(&c.visit, media_frame(&c.visit, c.side));
        }
        Ok(())
    }

    /// A participant switches the visit to audio only or back to video; returns whether it changed.
    pub async fn set_audio_only(
        &self,
        proof: &Authorized<VisitId>,
        on: bool,
        reason: AudioOnlyReason,
    ) -> Result<bool, VideoError> {
        proof.require(&["visit.join"])?;
        let id = proof.resource();
        let guest = self
            .live()
            .visits
            .get(id)
            .and_then(|v| v.seat_of(proof.subject()));
        if let Some(crate::visit::Seat::Guest(_)) = guest {
            // The patient and the nurse decide the visit's mode; a guest's page follows it (not an access attempt).
            return Ok(false);
        }
        let changed = self
            .live()
            .visits
            .set_audio_only(id, proof.subject(), on, reason)?;
        let Some(c) = changed else {
            return Ok(false);
        };
        self.mark_audio_only(&c.visit, c.side, on, reason).await;
        if !on {
            self.engine.request_keyframes(id.as_str()).await;
        }
        let frame = ServerFrame::VideoMode {
            visit_id: id.to_string(),
            audio_only: on,
            by: c.side,
            reason,
        };
        self.to_both(&c.visit, frame);
        Ok(true)
    }

    /// Marks the start or end of an audio-only interval in the visit's recording, if it is recorded.
    pub(super) async fn mark_audio_only(&self, v: &Visit, side: Side, on: bool, reason: AudioOnlyReason) {
        let session = self.live().sessions.get(&v.id).cloned();
        let by = crate::pii::pseudonym(v.subject_of(&side.into()).as_str());
        if let Some(s) = session
            && s.set_audio_only(on, reason_text(reason), &by, now_ms())
        {
            self.save_manifest(&s).await;
        }
    }

    /// The manifest as it stands, so a crash keeps what the timeline says so far.
    pub(super) async fn save_manifest(&self, session: &RecordingSession) {
        let Some(timeline) = session.timeline() else {
            return;
        };
        let manifest = serde_json::to_string(&timeline).unwrap_or_default();
        if let Err(e) = self
            .recording
            .db
            .update_recording_manifest(&session.id, &manifest)
            .await
        {
            tracing::error!(error = %e, "recording manifest could not be saved");
        }
    }
}

/// One side's microphone and camera.
fn media_frame(v: &Visit, side: Side) -> ServerFrame {
    let d = v.controls.devices(side);
    ServerFrame::VideoMedia {
        visit_id: v.id.to_string(),
        side,
        microphone: d.microphone,
        camera: d.camera,
    }
}

/// What a reconnecting socket must hear besides `video_started`: each side that muted or turned its camera off.
pub(super) fn control_frames(v: &Visit) -> Vec<ServerFrame> {
    [Side::Patient, Side::Nurse]
        .into_iter()
        .filter(|s| v.controls.devices(*s) != MediaDevices::default())
        .map(|s| media_frame(v, s))
        .collect()
}
