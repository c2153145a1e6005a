use super::*;

pub(super) fn conv(n: u32) -> ConversationId {
    ConversationId::new(format!("c{n}"))
}
pub(super) fn nurse(n: &str) -> SubjectId {
    SubjectId::new(n)
}

pub(super) fn room() -> WaitingRoom {
    WaitingRoom::new(
        vec![
            QueueSpec {
                name: "triage".into(),
                skills: vec![],
                priority: 0,
                reassurance: vec![
                    Reassurance {
                        after_seconds: 30,
                        every_seconds: None,
                        text: "Thanks for waiting".into(),
                    },
                    Reassurance {
                        after_seconds: 90,
                        every_seconds: Some(60),
                        text: "Still here".into(),
                    },
                ],
                max_wait_seconds: Some(600),
            },
            QueueSpec {
                name: "spanish".into(),
                skills: vec!["es".into()],
                priority: 0,
                reassurance: vec![],
                max_wait_seconds: None,
            },
        ],
        RoutingSpec {
            offer_timeout_ms: 20_000,
            wrap_up_ms: 60_000,
            max_chats_per_nurse: 2,
            default_handle_ms: 300_000,
            patient_grace_ms: 60_000,
            stranded_grace_ms: 120_000,
        },
    )
}

fn offers(effects: &[Effect]) -> Vec<(SubjectId, ConversationId)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Offer {
                nurse, conversation, ..
            } => Some((nurse.clone(), conversation.clone())),
            _ => None,
        })
        .collect()
}

fn positions(effects: &[Effect]) -> Vec<(ConversationId, usize, Option<u64>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Position {
                conversation,
                position,
                eta_seconds,
            } => Some((conversation.clone(), *position, *eta_seconds)),
            _ => None,
        })
        .collect()
}

#[test]
fn offers_longest_waiting_first_then_priority_wins() {
    let mut r = room();
    r.enqueue(conv(1), "triage", 0, 1_000, 1_000).unwrap();
    r.enqueue(conv(2), "triage", 0, 2_000, 2_000).unwrap();
    r.enqueue(conv(3), "triage", 0, 3_000, 3_000).unwrap();
    r.boost(&conv(3), 3_500);
    let e = r.set_available(&nurse("n1"), &[], true, 4_000);
    assert_eq!(offers(&e), vec![(nurse("n1"), conv(3))], "the emergency first");
    let e = r.accept(&nurse("n1"), &conv(3), 4_100).unwrap();
    assert_eq!(
        offers(&e),
        vec![(nurse("n1"), conv(1))],
        "then the longest waiting"
    );
}

#[test]
fn skills_route_to_matching_nurses_only() {
    let mut r = room();
    r.set_available(&nurse("n1"), &[], true, 0);
    let e = r.enqueue(conv(1), "spanish", 0, 10, 10).unwrap();
    assert!(offers(&e).is_empty(), "n1 lacks the skill");
    let e = r.set_available(&nurse("n2"), &["es".into()], true, 20);
    assert_eq!(offers(&e), vec![(nurse("n2"), conv(1))]);
}

#[test]
fn positions_and_eta_update_as_the_queue_moves() {
    let mut r = room();
    let e = r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    assert_eq!(
        positions(&e),
        vec![(conv(1), 1, None)],
        "nobody staffs the queue yet"
    );
    r.enqueue(conv(2), "triage", 0, 1, 1).unwrap();
    r.enqueue(conv(3), "triage", 0, 2, 2).unwrap();
    // A nurse who is busy with two chats staffs the queue without being offered anything.
    r.restore_assignment(&nurse("n1"), conv(8));
    r.restore_assignment(&nurse("n1"), conv(9));
    let e = r.set_available(&nurse("n1"), &[], true, 3);
    assert!(offers(&e).is_empty());
    assert_eq!(
        positions(&e),
        vec![
            (conv(1), 1, Some(0)),
            (conv(2), 2, Some(300)),
            (conv(3), 3, Some(600))
        ]
    );
    // Handle times shorten the estimate; the first patient leaving moves everybody up.
    r.finish(&nurse("n1"), &conv(8), "triage", 120_000, 10).unwrap();
    let e = r.cancel(&conv(1), 11);
    assert!(positions(&e).contains(&(conv(2), 1, Some(0))));
}

#[test]
fn declined_and_expired_offers_go_back_in_place() {
    let mut r = room();
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.enqueue(conv(2), "triage", 0, 5, 5).unwrap();
    r.set_available(&nurse("n1"), &[], true, 10);
    let e = r.decline(&nurse("n1"), &conv(1), 20).unwrap();
    assert!(e.contains(&Effect::OfferEnded {
        nurse: nurse("n1"),
        conversation: conv(1),
        reason: OfferEnd::Declined
    }));
    assert_eq!(
        offers(&e),
        vec![(nurse("n1"), conv(2))],
        "n1 is skipped for c1 for a while"
    );
    // The offer of c2 times out; c1's skip has lapsed by then, so c1 (still first in line) is offered.
    let e = r.tick(20 + 20_000);
    assert!(e.contains(&Effect::OfferEnded {
        nurse: nurse("n1"),
        conversation: conv(2),
        reason: OfferEnd::Expired
    }));
    assert_eq!(offers(&e), vec![(nurse("n1"), conv(1))]);
    assert_eq!(
        r.accept(&nurse("n1"), &conv(2), 20_050),
        Err(RoutingError::NoSuchOffer)
    );
}

#[test]
fn wrap_up_blocks_offers_until_it_ends() {
    let mut r = room();
    r.set_available(&nurse("n1"), &[], true, 0);
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.accept(&nurse("n1"), &conv(1), 1).unwrap();
    let e = r.finish(&nurse("n1"), &conv(1), "triage", 1_000, 1_000).unwrap();
    assert!(e.contains(&Effect::NurseState {
        nurse: nurse("n1"),
        state: Presence::WrapUp
    }));
    let e = r.enqueue(conv(2), "triage", 0, 2_000, 2_000).unwrap();
    assert!(offers(&e).is_empty(), "no offers during wrap-up");
    let e = r.tick(61_000);
    assert_eq!(offers(&e), vec![(nurse("n1"), conv(2))]);
}

#[test]
fn chat_limit_makes_a_nurse_busy() {
    let mut r = room();
    r.set_available(&nurse("n1"), &[], true, 0);
    for i in 1..=3 {
        r.enqueue(conv(i), "triage", 0, i as i64, i as i64).unwrap();
    }
    r.accept(&nurse("n1"), &conv(1), 10).unwrap();
    let e = r.accept(&nurse("n1"), &conv(2), 11).unwrap();
    assert!(e.contains(&Effect::NurseState {
        nurse: nurse("n1"),
        state: Presence::Busy
    }));
    assert!(offers(&e).is_empty());
}

#[test]
fn reassurance_follows_its_schedule_and_max_wait_is_reported_once() {
    let mut r = room();
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    let texts = |e: &[Effect]| e.iter().filter(|x| matches!(x, Effect::Reassure { .. })).count();
    assert_eq!(texts(&r.tick(29_000)), 0);
    assert_eq!(texts(&r.tick(30_000)), 1);
    assert_eq!(texts(&r.tick(89_000)), 0);
    assert_eq!(texts(&r.tick(90_000)), 1);
    assert_eq!(texts(&r.tick(150_000)), 1, "then every 60 s");
    let e = r.tick(600_000);
    assert!(e.contains(&Effect::MaxWaitReached {
        conversation: conv(1)
    }));
    assert!(!r.tick(601_000).contains(&Effect::MaxWaitReached {
        conversation: conv(1)
    }));
}

#[test]
fn going_away_withdraws_the_offer() {
    let mut r = room();
    r.set_available(&nurse("n1"), &[], true, 0);
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    let e = r.set_available(&nurse("n1"), &[], false, 5);
    assert!(e.contains(&Effect::OfferEnded {
        nurse: nurse("n1"),
        conversation: conv(1),
        reason: OfferEnd::NurseUnavailable
    }));
    assert_eq!(r.presence(&nurse("n1"), 5), Presence::Away);
}

#[test]
fn a_conversation_cancelled_after_its_accept_frees_the_nurse() {
    let mut r = room();
    r.set_available(&nurse("n1"), &[], true, 0);
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.accept(&nurse("n1"), &conv(1), 10).unwrap();
    assert!(r.is_assigned(&conv(1)));
    r.cancel(&conv(1), 20);
    assert!(!r.is_assigned(&conv(1)));
    assert_eq!(r.presence(&nurse("n1"), 20), Presence::Ready);
}

#[test]
fn a_patient_who_left_keeps_their_place_is_not_offered_and_is_abandoned_after_the_grace() {
    let mut r = room();
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.enqueue(conv(2), "triage", 0, 1_000, 1_000).unwrap();
    r.set_available(&nurse("n1"), &[], true, 2_000);
    // conv 1 was offered; its patient's connection drops: the offer is withdrawn and goes to conv 2.
    let effects = r.patient_left(&conv(1), 3_000);
    assert!(effects.contains(&Effect::OfferEnded {
        nurse: nurse("n1"),
        conversation: conv(1),
        reason: OfferEnd::PatientLeft
    }));
    assert_eq!(offers(&effects), vec![(nurse("n1"), conv(2))]);
    // Back within the grace: still first in line (position 1), offered when the nurse is free again.
    r.decline(&nurse("n1"), &conv(2), 4_000).unwrap();
    let effects = r.patient_back(&conv(1), 5_000);
    assert_eq!(offers(&effects), vec![(nurse("n1"), conv(1))]);
    // Gone again, past the grace: out of the queue, counted as abandoned by its wait.
    r.patient_left(&conv(1), 6_000);
    assert!(
        !r.tick(65_000)
            .iter()
            .any(|e| matches!(e, Effect::Abandoned { .. }))
    );
    let effects = r.tick(66_000);
    assert!(effects.contains(&Effect::Abandoned {
        conversation: conv(1),
        waited_ms: 66_000
    }));
    assert!(!r.waiting_ids().contains(&conv(1)));
    assert_eq!(r.stats(66_000)[1].abandoned.from_1_to_5_minutes, 1);
}

#[test]
fn the_nurse_sees_her_patient_reconnecting_back_or_gone() {
    let mut r = room();
    r.set_available(&nurse("n1"), &[], true, 0);
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.accept(&nurse("n1"), &conv(1), 10).unwrap();
    let presence = |effects: Vec<Effect>| -> Vec<PatientState> {
        effects
            .into_iter()
            .filter_map(|e| match e {
                Effect::PatientPresence { state, .. } => Some(state),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        presence(r.patient_left(&conv(1), 1_000)),
        vec![PatientState::Reconnecting]
    );
    assert_eq!(
        presence(r.patient_back(&conv(1), 2_000)),
        vec![PatientState::Online]
    );
    r.patient_left(&conv(1), 3_000);
    assert_eq!(presence(r.tick(62_000)), vec![]);
    assert_eq!(presence(r.tick(63_000)), vec![PatientState::Gone]);
    assert_eq!(presence(r.tick(64_000)), vec![], "told once");
}

#[test]
fn a_nurse_disconnected_past_the_grace_hands_her_chats_back_but_away_keeps_them() {
    let mut r = room();
    r.set_available(&nurse("n1"), &[], true, 0);
    r.nurse_connection(&nurse("n1"), "node-a:1", true, 0);
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.accept(&nurse("n1"), &conv(1), 10).unwrap();
    // "Away" stops new offers; she keeps her chats while she is connected.
    r.set_available(&nurse("n1"), &[], false, 500);
    assert!(
        !r.tick(500_000)
            .iter()
            .any(|e| matches!(e, Effect::Stranded { .. }))
    );
    // A reload: the new socket opens before the old one's close arrives; nothing is lost.
    r.nurse_connection(&nurse("n1"), "node-a:2", true, 600_000);
    r.nurse_connection(&nurse("n1"), "node-a:1", false, 600_001);
    assert!(
        !r.tick(900_000)
            .iter()
            .any(|e| matches!(e, Effect::Stranded { .. }))
    );
    // Her browser is gone: past the grace the chat goes back.
    r.nurse_connection(&nurse("n1"), "node-a:2", false, 1_000_000);
    assert!(
        !r.tick(1_119_000)
            .iter()
            .any(|e| matches!(e, Effect::Stranded { .. }))
    );
    let effects = r.tick(1_120_000);
    assert!(effects.contains(&Effect::Stranded {
        nurse: nurse("n1"),
        conversation: conv(1)
    }));
    assert!(!r.is_assigned(&conv(1)));
}

#[test]
fn connections_are_counted_so_a_late_close_changes_nothing() {
    let mut r = room();
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.patient_connection(&conv(1), "a:1", true, 0);
    // The reload's new socket is seen before the old one's close.
    r.patient_connection(&conv(1), "b:7", true, 1_000);
    r.patient_connection(&conv(1), "a:1", false, 1_001);
    let effects = r.set_available(&nurse("n1"), &[], true, 2_000);
    assert_eq!(
        offers(&effects),
        vec![(nurse("n1"), conv(1))],
        "still there: offered"
    );
    // A node that died takes its connections with it.
    let effects = r.forget_connections(|k| k.starts_with("b:"), 3_000);
    assert!(effects.contains(&Effect::OfferEnded {
        nurse: nurse("n1"),
        conversation: conv(1),
        reason: OfferEnd::PatientLeft
    }));
}

#[test]
fn far_back_in_a_moving_queue_positions_come_every_few_seconds() {
    let mut r = room();
    for i in 1..=6 {
        r.enqueue(conv(i), "triage", 0, i as i64, i as i64).unwrap();
    }
    // Two patients ahead leave within a second: the sixth hears once, the third (near the front) each time.
    let first = positions(&r.cancel(&conv(1), 6_000));
    assert!(
        first.contains(&(conv(6), 5, None)) && first.contains(&(conv(3), 2, None)),
        "{first:?}"
    );
    let second = positions(&r.cancel(&conv(2), 6_500));
    assert!(second.contains(&(conv(3), 1, None)), "{second:?}");
    assert!(!second.iter().any(|(c, ..)| *c == conv(6)), "held: {second:?}");
    // The held change goes out once the interval has passed.
    assert!(positions(&r.tick(10_000)).is_empty());
    assert!(positions(&r.tick(11_000)).contains(&(conv(6), 4, None)));
}

#[test]
fn ready_during_wrap_up_ends_it_early() {
    let mut r = room();
    r.restore_assignment(&nurse("n1"), conv(8));
    r.set_available(&nurse("n1"), &[], true, 0);
    r.finish(&nurse("n1"), &conv(8), "triage", 60_000, 10).unwrap();
    let e = r.enqueue(conv(1), "triage", 0, 20, 20).unwrap();
    assert!(offers(&e).is_empty(), "nothing is offered during wrap-up");
    let e = r.set_available(&nurse("n1"), &[], true, 30);
    assert!(e.contains(&Effect::NurseState {
        nurse: nurse("n1"),
        state: Presence::Ready
    }));
    assert_eq!(
        offers(&e),
        vec![(nurse("n1"), conv(1))],
        "ready now: the next patient is offered at once"
    );
}
