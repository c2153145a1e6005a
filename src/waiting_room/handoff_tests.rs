use super::tests::{conv, nurse, room};
use super::*;

fn handoffs(effects: &[Effect]) -> Vec<HandoffEffect> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Handoff(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

/// Nora holds c1 (triage); Nico is ready and speaks Spanish.
fn nora_has_a_chat() -> WaitingRoom {
    let mut r = room();
    r.set_available(&nurse("nora"), &[], true, 0);
    r.enqueue(conv(1), "triage", 0, 0, 0).unwrap();
    r.accept(&nurse("nora"), &conv(1), 1).unwrap();
    r.set_available(&nurse("nico"), &["es".into()], true, 2);
    r
}

#[test]
fn the_colleague_takes_the_chat_and_the_first_nurse_goes_to_wrap_up() {
    let mut r = nora_has_a_chat();
    let e = r
        .hand_off(&nurse("nora"), &nurse("nico"), &conv(1), "triage", 10)
        .unwrap();
    assert!(matches!(
        &handoffs(&e)[..],
        [HandoffEffect::Offered { to, expires_at: 20_010, .. }] if to == &nurse("nico")
    ));
    // Meanwhile Nora keeps the chat and Nico is offered nothing else.
    assert!(r.is_assigned(&conv(1)));
    let e = r.enqueue(conv(2), "triage", 0, 11, 11).unwrap();
    let offered: Vec<SubjectId> = e
        .iter()
        .filter_map(|x| match x {
            Effect::Offer { nurse, .. } => Some(nurse.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(offered, [nurse("nora")], "Nico's one offer is the transfer");
    let e = r.accept(&nurse("nico"), &conv(1), 15).unwrap();
    assert!(matches!(
        &handoffs(&e)[..],
        [HandoffEffect::Done { from, to, .. }] if from == &nurse("nora") && to == &nurse("nico")
    ));
    assert_eq!(r.presence(&nurse("nora"), 16), Presence::WrapUp);
    // Nico now holds it: ending it is hers, not Nora's.
    assert_eq!(
        r.finish(&nurse("nora"), &conv(1), "triage", 1, 17),
        Err(RoutingError::NotAssigned)
    );
    assert!(r.finish(&nurse("nico"), &conv(1), "triage", 1, 18).is_ok());
}

#[test]
fn declined_expired_or_ended_the_first_nurse_keeps_it_and_is_told() {
    let mut r = nora_has_a_chat();
    r.hand_off(&nurse("nora"), &nurse("nico"), &conv(1), "triage", 10)
        .unwrap();
    let e = r.decline(&nurse("nico"), &conv(1), 11).unwrap();
    assert!(matches!(
        &handoffs(&e)[..],
        [HandoffEffect::Ended {
            reason: OfferEnd::Declined,
            ..
        }]
    ));
    assert!(r.is_assigned(&conv(1)));
    assert_eq!(
        r.accept(&nurse("nico"), &conv(1), 12),
        Err(RoutingError::NoSuchOffer)
    );

    r.hand_off(&nurse("nora"), &nurse("nico"), &conv(1), "triage", 20)
        .unwrap();
    let e = r.tick(20 + 20_000);
    assert!(matches!(
        &handoffs(&e)[..],
        [HandoffEffect::Ended {
            reason: OfferEnd::Expired,
            ..
        }]
    ));

    r.hand_off(&nurse("nora"), &nurse("nico"), &conv(1), "triage", 30_000)
        .unwrap();
    let e = r.finish(&nurse("nora"), &conv(1), "triage", 1, 30_001).unwrap();
    assert!(matches!(
        &handoffs(&e)[..],
        [HandoffEffect::Ended {
            reason: OfferEnd::Cancelled,
            ..
        }]
    ));
    // Nico's offer of it ended too.
    assert!(e.iter().any(|x| matches!(x, Effect::OfferEnded { nurse: n, reason: OfferEnd::Cancelled, .. } if n == &nurse("nico"))));
}

#[test]
fn only_the_chat_s_nurse_asks_and_only_a_ready_colleague_with_the_skills_is_asked() {
    let mut r = nora_has_a_chat();
    assert_eq!(
        r.hand_off(&nurse("nico"), &nurse("nora"), &conv(1), "triage", 10),
        Err(RoutingError::NotAssigned)
    );
    assert_eq!(
        r.hand_off(&nurse("nora"), &nurse("nora"), &conv(1), "triage", 10),
        Err(RoutingError::ColleagueUnavailable)
    );
    // Without Spanish, Nora's colleague cannot take a Spanish chat.
    r.set_available(&nurse("ana"), &[], true, 10);
    assert_eq!(
        r.hand_off(&nurse("nora"), &nurse("ana"), &conv(1), "spanish", 11),
        Err(RoutingError::ColleagueUnavailable)
    );
    // Away, or already asked: no.
    r.set_available(&nurse("nico"), &["es".into()], false, 12);
    assert_eq!(
        r.hand_off(&nurse("nora"), &nurse("nico"), &conv(1), "triage", 13),
        Err(RoutingError::ColleagueUnavailable)
    );
    r.hand_off(&nurse("nora"), &nurse("ana"), &conv(1), "triage", 14)
        .unwrap();
    r.set_available(&nurse("nico"), &["es".into()], true, 15);
    assert_eq!(
        r.hand_off(&nurse("nora"), &nurse("nico"), &conv(1), "triage", 16),
        Err(RoutingError::ColleagueUnavailable)
    );
    // The colleague going away ends the request; Nora is told.
    let e = r.set_available(&nurse("ana"), &[], false, 17);
    assert!(matches!(
        &handoffs(&e)[..],
        [HandoffEffect::Ended {
            reason: OfferEnd::NurseUnavailable,
            ..
        }]
    ));
}
