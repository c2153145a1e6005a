//! Keyframe requests in the SFU: the interceptor that lets viewers' PLI/FIR through the chain's terminus, and
//! relaying a request to the senders of the video a viewer receives — when a viewer asks, when it connects,
//! and when a recording resumes. Never on a timer.

use std::sync::{Arc, Mutex, Weak};

use rtc::interceptor::{Attribute, Interceptor, Packet as InterceptorPacket, StreamInfo, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;

use super::{Outgoing, Rooms};
use crate::media::{ParticipantId, TrackSource};
use crate::telemetry::MediaMetrics;

/// After every built-in interceptor, so it sees inbound RTCP just before the chain's terminus.
pub const KEYFRAME_REQUEST_SLOT: usize = 20_000;

/// Inbound RTCP stops at the end of the interceptor chain unless an interceptor marks it for the
/// application. This one marks PLI and FIR (and only those: receiver reports are the chain's own business),
/// so the SFU can relay a viewer's keyframe request to the sender.
#[derive(Default)]
pub struct KeyframeRequests {
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let InterceptorPacket::Rtcp(packets) = &msg.message.packet
            && wants_keyframe(packets)
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Reads RTCP a viewer sends on one outgoing track and relays keyframe requests to the senders of what it
/// carries (`carries`: cameras, or a shared screen).
pub(super) async fn relay_feedback(
    out: Arc<Outgoing>,
    viewer: ParticipantId,
    room: String,
    state: Weak<Mutex<Rooms>>,
    metrics: MediaMetrics,
    carries: TrackSource,
) {
    while let Some(event) = out.track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if wants_keyframe(&packets) {
            request_keyframe(&state, &room, &viewer, &[carries], &metrics).await;
        }
    }
}

pub fn wants_keyframe(packets: &[Box<dyn rtcp::Packet>]) -> bool {
    packets.iter().any(|p| {
        p.as_any().downcast_ref::<PictureLossIndication>().is_some()
            || p.as_any().downcast_ref::<FullIntraRequest>().is_some()
    })
}

/// Sends a PLI to every other participant's incoming tracks of these sources: the viewer (or the recorder)
/// needs a keyframe.
pub(super) async fn request_keyframe(
    state: &Weak<Mutex<Rooms>>,
    room: &str,
    viewer: &ParticipantId,
    wanted: &[TrackSource],
    metrics: &MediaMetrics,
) {
    let Some(state) = state.upgrade() else {
        return;
    };
    let sources: Vec<(Arc<dyn TrackRemote>, u32)> = {
        let rooms = state.lock().expect("rooms lock");
        rooms
            .rooms
            .get(room)
            .map(|peers| {
                peers
                    .iter()
                    .filter(|p| &p.id != viewer)
                    .flat_map(|p| {
                        let incoming = p.incoming.lock().expect("peer lock");
                        wanted
                            .iter()
                            .filter_map(|s| incoming.get(s).map(|i| (i.track.clone(), i.ssrc)))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    tracing::debug!(senders = sources.len(), "keyframe requested");
    for (track, media_ssrc) in sources {
        let pli: Vec<Box<dyn rtcp::Packet>> = vec![Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        })];
        if track.write_rtcp(pli).await.is_ok() {
            metrics.keyframe_requests.inc();
        }
    }
}
