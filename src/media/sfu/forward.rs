//! The forwarding loop of one incoming track: each RTP packet is rewritten onto the matching outgoing track of
//! every other participant (a shared screen onto their screen tracks), copied to the room's recorder, and a
//! viewer's keyframe request arriving on it is relayed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::keyframes::{request_keyframe, wants_keyframe};
use super::offers::{Offers, Target};
use super::{MIME_VP8, Outgoing, Peer, Rooms};
use crate::media::{MediaEvent, MediaTap, RtpView, TrackSource};
use crate::telemetry::MediaMetrics;

/// Copies one incoming track's packets to the matching outgoing track of every other peer in the room, and to
/// the room's recorder; a screen capture goes to the recorder only.
pub(super) async fn forward(
    track: Arc<dyn TrackRemote>,
    from: Arc<Peer>,
    source: TrackSource,
    state: Weak<Mutex<Rooms>>,
    metrics: MediaMetrics,
) {
    let kind = match source {
        TrackSource::Microphone => RtpCodecKind::Audio,
        TrackSource::Camera | TrackSource::Screen => RtpCodecKind::Video,
    };
    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            // The core routes a compound RTCP packet by the SSRC its *first* report names, so a viewer's
            // PLI/FIR can arrive on any of its tracks, sending or receiving: wherever it lands, it asks
            // for the others' video keyframe.
            TrackRemoteEvent::OnRtcpPacket(packets) => {
                if wants_keyframe(&packets) {
                    request_keyframe(&state, &from.room, &from.id, &[TrackSource::Camera], &metrics).await;
                }
                continue;
            }
            _ => continue,
        };
        let Some(state) = state.upgrade() else {
            break;
        };
        // The codec by payload type: a publisher may change codec on the same stream (asked to send H.264).
        let Some(mime) = from.codec_of(kind, packet.header.payload_type) else {
            continue;
        };
        // Viewers with no track free for this sender: they are offered more (one request at a time each).
        let mut more: Vec<Arc<Peer>> = Vec::new();
        // Viewers whose track was bound to this sender now (told after the rooms lock is let go).
        let mut told: Vec<(Arc<Peer>, String)> = Vec::new();
        let (targets, tap): (Vec<Arc<Outgoing>>, Option<Arc<dyn MediaTap>>) = {
            let rooms = state.lock().expect("rooms lock");
            // It left (a packet already read when it did): nothing more of it, or it would be bound again.
            if !rooms.peers.get(&from.id).is_some_and(|p| Arc::ptr_eq(p, &from)) {
                break;
            }
            let screen_shared = from.screen_shared.load(Ordering::Relaxed);
            let targets = rooms
                .rooms
                .get(&from.room)
                .filter(|_| source != TrackSource::Screen || screen_shared)
                .map(|peers| {
                    peers
                        .iter()
                        .filter(|p| p.id != from.id)
                        // A viewer on audio only (its link too slow) is sent no video.
                        .filter(|p| {
                            kind != RtpCodecKind::Video || !p.link.lock().expect("link lock").audio_only
                        })
                        .filter_map(|p| match source {
                            TrackSource::Screen => p
                                .screen_out
                                .lock()
                                .expect("peer lock")
                                .as_ref()
                                .map(|(o, _)| o.clone()),
                            _ => match p.target_for(&from.id, source, kind) {
                                Target::Track(out) => Some(out),
                                Target::Bound(out) => {
                                    told.push((p.clone(), out.stream.clone()));
                                    Some(out)
                                }
                                Target::Wanted => {
                                    more.push(p.clone());
                                    None
                                }
                                Target::Busy => None,
                            },
                        })
                        .collect()
                })
                .unwrap_or_default();
            (targets, rooms.taps.get(&from.room).cloned())
        };
        for (viewer, stream) in told {
            // Still theirs (a leave in between named nobody for it; a late name must not undo that).
            let still = viewer
                .bound
                .lock()
                .expect("peer lock")
                .get(&(from.id.clone(), source))
                .is_some_and(|o| o.stream == stream);
            if !still {
                continue;
            }
            (viewer.events)(MediaEvent::Tile {
                stream,
                from: Some(from.id.clone()),
            });
        }
        for viewer in more {
            let offers = Offers {
                state: Arc::downgrade(&state),
                metrics: metrics.clone(),
            };
            tokio::spawn(async move { offers.add_tracks(&viewer).await });
        }
        // The recorder writes Opus and VP8: an H.264 publisher's video is forwarded, not recorded.
        let recordable = kind == RtpCodecKind::Audio || mime.eq_ignore_ascii_case(MIME_VP8);
        if let Some(tap) = tap.filter(|_| recordable) {
            let view = RtpView {
                sequence_number: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                payload: &packet.payload,
            };
            if tap.rtp(&from.id, source, &view) {
                let ssrc = packet.header.ssrc;
                let pli: Vec<Box<dyn rtcp::Packet>> = vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                })];
                if track.write_rtcp(pli).await.is_ok() {
                    metrics.keyframe_requests.inc();
                }
            }
        }
        for out in targets {
            let Some(pt) = out
                .payload_types
                .lock()
                .expect("payload types lock")
                .get(&mime)
                .copied()
            else {
                continue;
            };
            let mut p = packet.clone();
            let (seq, ts) = out.rewriter.lock().expect("rewriter lock").rewrite(
                packet.header.ssrc,
                packet.header.sequence_number,
                packet.header.timestamp,
                std::time::Instant::now(),
            );
            p.header.sequence_number = seq;
            p.header.timestamp = ts;
            p.header.ssrc = out.ssrc;
            p.header.payload_type = pt;
            // Extension ids were negotiated on the sender's leg, not the viewer's (the padding goes too: the
            // TWCC sender adds its extension after this, and a stale padding length corrupts the header).
            p.header.extension = false;
            p.header.extensions.clear();
            p.header.extensions_padding = 0;
            let bytes = p.payload.len() as u64;
            if out.track.write_rtp(p).await.is_ok() {
                metrics.forwarded_packets.inc();
                metrics.forwarded_bytes.inc_by(bytes);
            }
        }
    }
}
