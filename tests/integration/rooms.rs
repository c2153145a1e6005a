//! More than two in a room, on the SFU alone with in-process peers: each participant's own offer carries one
//! audio and one video section for the others, so from the third participant on the SFU offers each connection
//! one more pair per other participant itself (`video_server_offer`), and every participant receives every
//! other's audio and video, each sender on a track of its own, its microphone and camera on the two halves of
//! one stream (one tile), which the SFU names to each viewer (`MediaEvent::Tile`). When one leaves, its tracks
//! go to whoever comes next.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use examroom::media::{MediaEngine, MediaEvent, Offer, ParticipantId};
use tokio::sync::mpsc;

use crate::browser_offers::{candidate, init, sfu};
use crate::peer::ClientPeer;

struct Member {
    id: ParticipantId,
    peer: ClientPeer,
    heard: mpsc::UnboundedReceiver<MediaEvent>,
    /// Whose media each stream on its connection carries, as the SFU said (`None`: nobody's now).
    tiles: HashMap<String, Option<ParticipantId>>,
}

impl Member {
    /// The streams the SFU named for `sender`.
    fn streams_of(&self, sender: &ParticipantId) -> Vec<&String> {
        self.tiles
            .iter()
            .filter(|(_, from)| from.as_ref() == Some(sender))
            .map(|(stream, _)| stream)
            .collect()
    }
}

async fn join(sfu: &Arc<examroom::media::sfu::WebRtcSfu>, tag: &str) -> Member {
    let id = ParticipantId::random();
    let (tx, heard) = mpsc::unbounded_channel();
    let mut peer = ClientPeer::new(tag, "").await;
    let answer = sfu
        .join(
            "room",
            &id,
            Offer::sdp(&peer.offer().await),
            Arc::new(move |e| {
                let _ = tx.send(e);
            }),
        )
        .await
        .unwrap();
    peer.answered(&answer).await;
    Member {
        id,
        peer,
        heard,
        tiles: HashMap::new(),
    }
}

/// Runs the room until every member receives video from `senders` others (20 packets each since the call),
/// answering the SFU's offers and trickling candidates; returns how many offers of the SFU's each member answered.
async fn until_everyone_sees(
    sfu: &Arc<examroom::media::sfu::WebRtcSfu>,
    room: &mut [Member],
    senders: usize,
) -> Vec<usize> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seq = 0u16;
    let mut offers = vec![0; room.len()];
    let start: Vec<HashMap<[u8; 2], u64>> = room
        .iter()
        .map(|m| m.peer.counters.video_from.lock().unwrap().clone())
        .collect();
    loop {
        for (i, m) in room.iter_mut().enumerate() {
            while let Ok(event) = m.heard.try_recv() {
                match event {
                    MediaEvent::LocalCandidate(c) => m.peer.add_candidate(init(c)).await,
                    MediaEvent::ServerOffer(sdp) => {
                        let answer = m.peer.answer_server(&sdp).await;
                        sfu.server_answer(&m.id, &answer).await.unwrap();
                        offers[i] += 1;
                    }
                    MediaEvent::Tile { stream, from } => {
                        m.tiles.insert(stream, from);
                    }
                    _ => {}
                }
            }
            while let Ok(c) = m.peer.candidates.try_recv() {
                let _ = sfu.add_candidate(&m.id, candidate(c)).await;
            }
        }
        seq = seq.wrapping_add(1);
        for m in room.iter().filter(|m| m.peer.connected()) {
            m.peer.send(seq).await;
        }
        // Packets received since this round began, by sender.
        let seen: Vec<usize> = room
            .iter()
            .zip(&start)
            .map(|(m, before)| {
                let now = m.peer.counters.video_from.lock().unwrap().clone();
                now.iter()
                    .filter(|(tag, n)| **n >= before.get(*tag).copied().unwrap_or(0) + 20)
                    .count()
            })
            .collect();
        if seen.iter().all(|n| *n >= senders) {
            assert!(
                seen.iter().all(|n| *n == senders),
                "only the room's senders: {seen:?}"
            );
            return offers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "senders seen by each: {seen:?} (want {senders}), SFU offers answered: {offers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_participants_each_receive_every_other_through_the_sfus_own_offers() {
    let sfu = Arc::new(sfu());
    let mut room = Vec::new();
    for tag in ["P1", "P2"] {
        room.push(join(&sfu, tag).await);
    }
    // Two: the sections of their own offers are enough; the SFU offers nothing.
    let offers = until_everyone_sees(&sfu, &mut room, 1).await;
    assert_eq!(offers, [0, 0], "no offer of the SFU's for two");
    for tag in ["P3", "P4", "P5", "P6"] {
        room.push(join(&sfu, tag).await);
    }
    let offers = until_everyone_sees(&sfu, &mut room, 5).await;
    assert!(
        offers.iter().all(|n| *n >= 1),
        "each was offered more tracks: {offers:?}"
    );
    for m in &room {
        assert!(
            m.peer.count(|c| &c.audio_received) > 0,
            "audio reached every member"
        );
        // Each sender on a track of its own: one SSRC per sender, none shared.
        let ssrcs = m.peer.counters.video_ssrcs.lock().unwrap().clone();
        assert!(ssrcs.values().all(|s| s.len() == 1), "{ssrcs:?}");
        let all: std::collections::HashSet<u32> = ssrcs.values().flatten().copied().collect();
        assert_eq!(all.len(), ssrcs.len(), "{ssrcs:?}");
    }
    // Each viewer was told one stream per other sender, its microphone and camera together.
    for m in &room {
        for other in room.iter().filter(|o| o.id != m.id) {
            assert_eq!(m.streams_of(&other.id).len(), 1, "{:?}", m.tiles);
        }
    }

    // One leaves and another comes: the newcomer takes the tracks the leaver had on everyone's connection.
    let gone = room.remove(2);
    let freed: Vec<String> = room.iter().map(|m| m.streams_of(&gone.id)[0].clone()).collect();
    sfu.leave(&gone.id).await;
    room.push(join(&sfu, "P7").await);
    let offers = until_everyone_sees(&sfu, &mut room, 5).await;
    assert_eq!(
        &offers[..5],
        [0, 0, 0, 0, 0],
        "the others had a track free: no offer"
    );
    assert!(offers[5] >= 1, "the newcomer was offered more: {offers:?}");
    let newcomer = room[5].id.clone();
    for (m, stream) in room.iter().zip(&freed) {
        assert_eq!(
            m.tiles[stream].as_ref(),
            Some(&newcomer),
            "the leaver's stream names the newcomer now"
        );
        assert!(m.streams_of(&gone.id).is_empty());
    }
    sfu.close_room("room").await;
}
