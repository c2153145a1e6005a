//! The visit rules, two-party and with guests, without a server.

use super::guests::{GuestError, GuestState, new_guest_subject, token_hash};
use super::*;

fn ids() -> (SubjectId, SubjectId, SubjectId) {
    (
        SubjectId::new("pat"),
        SubjectId::new("nurse"),
        SubjectId::new("other-nurse"),
    )
}

static C1: std::sync::LazyLock<ConversationId> = std::sync::LazyLock::new(|| ConversationId::new("c1"));

fn facts<'a>(patient: &'a SubjectId, nurse: Option<&'a SubjectId>, wrap: bool) -> ConversationFacts<'a> {
    ConversationFacts {
        id: &C1,
        queue: "triage",
        patient,
        assigned_nurse: nurse,
        nurse_in_wrap_up: wrap,
    }
}

/// A started visit of `n` with `p`, both in its media room.
fn in_call(v: &mut Visits, p: &SubjectId, n: &SubjectId) -> VisitId {
    let id = v.elevate(&facts(p, Some(n), false), n, 0).unwrap().id.clone();
    v.answer(&id, p, true, 0).unwrap();
    v.joined(&id, Side::Patient);
    v.joined(&id, Side::Nurse);
    id
}

#[test]
fn only_the_assigned_nurse_outside_wrap_up_elevates() {
    let (p, n, o) = ids();
    let mut v = Visits::default();
    assert_eq!(
        v.elevate(&facts(&p, Some(&n), false), &o, 0).unwrap_err(),
        VisitError::NotAssignedNurse
    );
    assert_eq!(
        v.elevate(&facts(&p, None, false), &n, 0).unwrap_err(),
        VisitError::NotAssignedNurse
    );
    assert_eq!(
        v.elevate(&facts(&p, Some(&n), true), &n, 0).unwrap_err(),
        VisitError::WrapUp
    );
    let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    // Idempotent.
    assert_eq!(v.elevate(&facts(&p, Some(&n), false), &n, 5).unwrap().id, id);
    assert_eq!(v.len(), 1);
}

#[test]
fn nobody_joins_before_the_patient_accepts() {
    let (p, n, o) = ids();
    let mut v = Visits::default();
    let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    assert_eq!(v.may_join(&id, &n).unwrap_err(), VisitError::NotActive);
    assert_eq!(v.answer(&id, &n, true, 1).unwrap_err(), VisitError::NotPatient);
    assert_eq!(
        v.answer(&id, &o, true, 1).unwrap_err(),
        VisitError::NotParticipant
    );
    v.answer(&id, &p, true, 1).unwrap();
    assert_eq!(
        v.answer(&id, &p, true, 1).unwrap_err(),
        VisitError::AlreadyAnswered
    );
    assert_eq!(v.may_join(&id, &n).unwrap().1, Seat::Nurse);
    assert_eq!(v.may_join(&id, &p).unwrap().1, Seat::Patient);
    assert_eq!(v.may_join(&id, &o).unwrap_err(), VisitError::NotParticipant);
    let forged = VisitId::random();
    assert_eq!(v.may_join(&forged, &p).unwrap_err(), VisitError::UnknownVisit);
}

#[test]
fn declining_ends_the_visit_and_a_new_request_is_possible() {
    let (p, n, _) = ids();
    let mut v = Visits::default();
    let first = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    v.answer(&first, &p, false, 1).unwrap();
    assert!(v.is_empty());
    let second = v.elevate(&facts(&p, Some(&n), false), &n, 2).unwrap().id.clone();
    assert_ne!(first, second);
}

#[test]
fn an_unanswered_request_waits_for_the_prompt_not_the_empty_grace() {
    let (p, n, _) = ids();
    let mut v = Visits::default();
    let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    // Past the empty-visit grace (30 s), still within the prompt (120 s): a patient looking for the
    // camera permission keeps the question.
    assert!(v.sweep(60_000, 30_000, 120_000, 90_000).is_empty());
    let swept = v.sweep(120_000, 30_000, 120_000, 90_000);
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].1, EndReason::NoAnswer);
    assert!(v.get(&id).is_none());
}

#[test]
fn a_participant_who_does_not_come_back_within_the_limit_ends_the_visit_back_to_chat() {
    let (p, n, _) = ids();
    let mut v = Visits::default();
    let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    v.answer(&id, &p, true, 0).unwrap();
    // Only the nurse in so far: the patient is still joining, not gone.
    v.joined(&id, Side::Nurse);
    assert!(v.sweep(200_000, 30_000, 120_000, 90_000).is_empty());
    v.joined(&id, Side::Patient);
    // A cut shorter than the limit: back in the same visit.
    v.left(&id, Side::Patient, 300_000);
    assert!(v.sweep(380_000, 30_000, 120_000, 90_000).is_empty());
    v.joined(&id, Side::Patient);
    assert!(
        v.sweep(500_000, 30_000, 120_000, 90_000).is_empty(),
        "the clock starts again"
    );
    // One that outlasts it ends the visit; the nurse is not left waiting in it.
    v.left(&id, Side::Patient, 600_000);
    let swept = v.sweep(690_000, 30_000, 120_000, 90_000);
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].1, EndReason::ConnectionLost);
}

#[test]
fn either_side_ends_and_empty_visits_are_swept_after_the_grace() {
    let (p, n, o) = ids();
    let mut v = Visits::default();
    let id = in_call(&mut v, &p, &n);
    assert!(
        v.sweep(100_000, 30_000, 120_000, 300_000).is_empty(),
        "occupied visits stay"
    );
    v.left(&id, Side::Patient, 100_000);
    assert!(
        v.sweep(200_000, 30_000, 120_000, 300_000).is_empty(),
        "the nurse is still there"
    );
    v.left(&id, Side::Nurse, 200_000);
    // A reload within the grace rejoins the same visit.
    assert!(v.sweep(210_000, 30_000, 120_000, 300_000).is_empty());
    v.joined(&id, Side::Patient);
    v.left(&id, Side::Patient, 220_000);
    let swept = v.sweep(250_000, 30_000, 120_000, 300_000);
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].1, EndReason::Abandoned);
    assert!(v.get(&id).is_none());

    let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    assert_eq!(v.end(&id, &o).unwrap_err(), VisitError::NotParticipant);
    assert_eq!(v.end(&id, &p).unwrap().1, EndReason::PatientEnded);
    assert!(v.of_conversation(&C1).is_none());
}

#[test]
fn visit_ids_are_opaque_and_parsed_strictly() {
    let id = VisitId::random();
    assert_eq!(VisitId::parse(id.as_str()), Some(id.clone()));
    assert_eq!(VisitId::parse("v../../etc"), None);
    assert_eq!(VisitId::parse(&format!("{}0", id.as_str())), None);
}

#[test]
fn the_patient_invites_the_nurse_admits_and_the_guest_joins_after_the_recording_question() {
    let (p, n, o) = ids();
    let mut v = Visits::default();
    let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    assert_eq!(
        v.invite(&id, &p, 1).unwrap_err(),
        VisitError::NotActive,
        "not before the patient accepts"
    );
    v.answer(&id, &p, true, 1).unwrap();
    assert_eq!(v.invite(&id, &n, 2).unwrap_err(), VisitError::NotPatient);
    let (token, _) = v.invite(&id, &p, 2).unwrap();
    let g = new_guest_subject();
    let visit = v.redeem(&token_hash(&token), "Ana", g.clone(), 3).unwrap();
    assert_eq!(visit.seat_of(&g), Some(Seat::Guest(g.clone())));
    assert!(
        visit.people().contains(&g),
        "a guest in the lobby is told about the visit"
    );
    assert_eq!(v.of_subject(&g).len(), 1);
    assert_eq!(
        v.may_join(&id, &g).unwrap_err(),
        VisitError::Guest(GuestError::NotAdmitted)
    );
    assert_eq!(
        v.admit(&id, &o, &g, Some(true), 4).unwrap_err(),
        VisitError::NotAssignedNurse
    );
    assert_eq!(
        v.admit(&id, &p, &g, Some(true), 4).unwrap_err(),
        VisitError::NotAssignedNurse
    );
    v.admit(&id, &n, &g, Some(true), 4).unwrap();
    assert_eq!(
        v.may_join(&id, &g).unwrap_err(),
        VisitError::NotActive,
        "the question comes first"
    );
    v.guest_answer(&id, &g, true, Some(false), 5).unwrap();
    assert_eq!(v.may_join(&id, &g).unwrap().1, Seat::Guest(g.clone()));
    // A guest does not end the visit for the others; leaving takes their place away.
    assert_eq!(v.end(&id, &g).unwrap_err(), VisitError::NotParticipant);
    v.guest_leaves(&id, &g, 6).unwrap();
    assert_eq!(
        v.get(&id).unwrap().party.get(&g).unwrap().state,
        GuestState::Removed
    );
    assert!(v.may_join(&id, &g).is_err());
    assert!(v.of_subject(&g).is_empty());
}

#[test]
fn a_link_is_useless_once_its_visit_ended() {
    let (p, n, _) = ids();
    let mut v = Visits::default();
    let id = v.elevate(&facts(&p, Some(&n), false), &n, 0).unwrap().id.clone();
    v.answer(&id, &p, true, 1).unwrap();
    let (token, _) = v.invite(&id, &p, 2).unwrap();
    v.end(&id, &n).unwrap();
    assert_eq!(
        v.redeem(&token_hash(&token), "Ana", new_guest_subject(), 3)
            .unwrap_err(),
        VisitError::Guest(GuestError::LinkInvalid)
    );
}

#[test]
fn a_visit_handed_on_waits_for_the_next_nurse_and_the_first_may_not_join_it() {
    let (p, n, o) = ids();
    let mut v = Visits::default();
    let id = in_call(&mut v, &p, &n);
    // Warm: the colleague holds the place at once; the first nurse is out of it.
    v.left(&id, Side::Nurse, 1_000);
    assert_eq!(v.hand_to(&id, &o, false).unwrap().nurse, o);
    assert!(v.hand_to(&id, &o, false).is_none(), "once");
    assert_eq!(v.may_join(&id, &n).unwrap_err(), VisitError::NotParticipant);
    assert_eq!(v.may_join(&id, &o).unwrap().1, Seat::Nurse);
    // However long she takes to join, the patient alone is no lost connection.
    assert!(v.sweep(500_000, 30_000, 120_000, 90_000).is_empty());
    v.joined(&id, Side::Nurse);
    // Cold: back to a queue, nobody's place; the visit still waits.
    v.left(&id, Side::Nurse, 600_000);
    let queued = v.to_queue(&id).unwrap();
    assert!(queued.awaits_nurse());
    assert!(v.to_queue(&id).is_none(), "once");
    assert_eq!(v.may_join(&id, &o).unwrap_err(), VisitError::NotParticipant);
    assert!(v.sweep(900_000, 30_000, 120_000, 90_000).is_empty());
    // The nurse who takes it from the queue, the same one as before or not, holds it again.
    assert!(!v.hand_to(&id, &o, false).unwrap().awaits_nurse());
    assert_eq!(v.may_join(&id, &o).unwrap().1, Seat::Nurse);
    // Back to the same nurse between two looks: the assignment's time says it moved.
    assert!(!v.reassigned(&id, Some(10)), "a first look only remembers");
    assert!(!v.reassigned(&id, Some(10)));
    assert!(v.reassigned(&id, Some(20)));
    assert!(v.hand_to(&id, &o, false).is_none());
    assert!(v.hand_to(&id, &o, true).is_some());
    // Joined, the usual limit applies again.
    v.joined(&id, Side::Nurse);
    v.left(&id, Side::Nurse, 1_000_000);
    assert_eq!(
        v.sweep(1_100_000, 30_000, 120_000, 90_000)[0].1,
        EndReason::ConnectionLost
    );
}
