use super::*;

fn person(sub: &str, role: Role) -> Principal {
    Principal {
        subject: SubjectId::new(sub),
        roles: vec![role],
        skills: vec![],
        scopes: vec![],
        session: None,
        display_name: None,
        birthdate: None,
    }
}

fn policy() -> AccessPolicy {
    AccessPolicy::parse(DEFAULT_ACCESS_POLICY, "default").unwrap()
}

#[test]
fn shipped_policy_is_valid() {
    policy();
}

#[test]
fn deny_by_default_with_a_reason() {
    let d = policy()
        .decide(
            &person("n1", Role::Nurse),
            "audit.read",
            &Resource::new(ResourceKind::AuditLog, None),
        )
        .unwrap_err();
    assert!(d.reason.contains("nurse"), "{}", d.reason);
}

#[test]
fn it_helpdesk_gets_no_patient_data_for_any_action() {
    let p = policy();
    let helpdesk = person("h1", Role::ItHelpdesk);
    for kind in [
        ResourceKind::Conversation,
        ResourceKind::Visit,
        ResourceKind::Recording,
    ] {
        let r = Resource::new(kind, Some("x".into()))
            .owned_by(SubjectId::new("h1"))
            .assigned_to(vec![SubjectId::new("h1")]);
        for action in ACTIONS {
            assert!(p.decide(&helpdesk, action, &r).is_err(), "{action} on {kind:?}");
        }
    }
    assert!(
        p.decide(
            &helpdesk,
            "system.status.read",
            &Resource::new(ResourceKind::System, None)
        )
        .is_ok()
    );
}

#[test]
fn a_policy_granting_helpdesk_patient_data_is_refused() {
    let text = r#"[[rules]]
        id = "bad"
        roles = ["it_helpdesk"]
        actions = ["recording.view"]
        resources = ["recording"]"#;
    let problems = AccessPolicy::parse(text, "test").err().unwrap();
    assert!(problems[0].message.contains("it_helpdesk"));
}

#[test]
fn unknown_actions_are_refused() {
    let text = r#"[[rules]]
        id = "typo"
        roles = ["nurse"]
        actions = ["conversation.raed"]
        resources = ["conversation"]"#;
    assert!(AccessPolicy::parse(text, "test").is_err());
}

#[test]
fn conditions_owner_and_assigned() {
    let p = policy();
    let conv = Resource::new(ResourceKind::Conversation, Some("c1".into()))
        .owned_by(SubjectId::new("pat"))
        .assigned_to(vec![SubjectId::new("n1")]);
    assert!(
        p.decide(&person("pat", Role::Patient), "conversation.read", &conv)
            .is_ok()
    );
    assert!(
        p.decide(&person("other", Role::Patient), "conversation.read", &conv)
            .is_err()
    );
    assert!(
        p.decide(&person("n1", Role::Nurse), "conversation.read", &conv)
            .is_ok()
    );
    assert!(
        p.decide(&person("n2", Role::Nurse), "conversation.read", &conv)
            .is_err()
    );
}

#[test]
fn a_preview_is_for_the_nurse_offered_the_chat_or_assigned_to_it_only() {
    let p = policy();
    let waiting = |offered: Option<&str>| {
        Resource::new(ResourceKind::Conversation, Some("c1".into()))
            .owned_by(SubjectId::new("pat"))
            .offered_to(offered.map(SubjectId::new))
    };
    let nurse = |n: &str| person(n, Role::Nurse);
    assert!(
        p.decide(&nurse("n1"), "conversation.preview", &waiting(Some("n1")))
            .is_ok()
    );
    assert!(
        p.decide(&nurse("n2"), "conversation.preview", &waiting(Some("n1")))
            .is_err()
    );
    assert!(
        p.decide(&nurse("n1"), "conversation.preview", &waiting(None))
            .is_err()
    );
    // Being offered a chat is not reading it.
    assert!(
        p.decide(&nurse("n1"), "conversation.read", &waiting(Some("n1")))
            .is_err()
    );
    assert!(
        p.decide(
            &person("pat", Role::Patient),
            "conversation.preview",
            &waiting(Some("n1"))
        )
        .is_err()
    );
    let assigned = waiting(None).assigned_to(vec![SubjectId::new("n1")]);
    assert!(p.decide(&nurse("n1"), "conversation.preview", &assigned).is_ok());
    assert!(
        p.decide(
            &person("sup", Role::Supervisor),
            "conversation.preview",
            &assigned
        )
        .is_err()
    );
}

#[test]
fn recordings_need_the_grant_and_a_viewer_role_of_their_policy() {
    let p = policy();
    let compliance = person("c1", Role::ComplianceOfficer);
    let supervisor = person("s1", Role::Supervisor);
    let recording =
        |roles: Vec<Role>| Resource::new(ResourceKind::Recording, Some("r1".into())).viewable_by(roles);
    let proof = p
        .authorize(
            &compliance,
            "recording.view",
            &recording(vec![Role::ComplianceOfficer]),
            7,
        )
        .unwrap();
    assert_eq!((proof.rule(), *proof.resource()), ("compliance-recordings", 7));
    assert_eq!(proof.subject().as_str(), "c1");
    // The grant alone is not enough when the recording's policy names other viewers.
    let d = p
        .decide(&compliance, "recording.view", &recording(vec![Role::Supervisor]))
        .unwrap_err();
    assert!(d.reason.contains("recording policy"), "{}", d.reason);
    // A viewer role of the recording's policy is not enough without a rule's grant.
    assert!(
        p.decide(&supervisor, "recording.view", &recording(vec![Role::Supervisor]))
            .is_err()
    );
    // No policy covers it any more: nobody.
    assert!(
        p.decide(&compliance, "recording.view", &recording(vec![]))
            .is_err()
    );
}

#[test]
fn visits_belong_to_their_patient_and_assigned_nurse() {
    let p = policy();
    let visit = Resource::new(ResourceKind::Visit, Some("v1".into()))
        .owned_by(SubjectId::new("pat"))
        .assigned_to(vec![SubjectId::new("n1")]);
    for action in ["visit.answer", "visit.join", "visit.end"] {
        assert!(
            p.permits(&person("pat", Role::Patient), action, &visit),
            "{action}"
        );
        assert!(
            !p.permits(&person("pat2", Role::Patient), action, &visit),
            "{action}"
        );
    }
    for action in ["visit.join", "visit.end", "visit.recording_state.set"] {
        assert!(p.permits(&person("n1", Role::Nurse), action, &visit), "{action}");
        assert!(!p.permits(&person("n2", Role::Nurse), action, &visit), "{action}");
    }
    // The nurse never answers the camera prompt in the patient's place.
    assert!(!p.permits(&person("n1", Role::Nurse), "visit.answer", &visit));
    let conversation = Resource::new(ResourceKind::Conversation, Some("c1".into()))
        .owned_by(SubjectId::new("pat"))
        .assigned_to(vec![SubjectId::new("n1")]);
    assert!(p.permits(&person("n1", Role::Nurse), "visit.create", &conversation));
    assert!(!p.permits(&person("n2", Role::Nurse), "visit.create", &conversation));
    assert!(!p.permits(&person("pat", Role::Patient), "visit.create", &conversation));
}

#[test]
fn service_rules_need_their_scopes() {
    let p = policy();
    let visit = Resource::new(ResourceKind::Visit, Some("v1".into()));
    let mut emr = person("emr", Role::Service);
    assert!(p.decide(&emr, "visit.recording_state.set", &visit).is_err());
    emr.scopes = vec!["recording:pause-others".into()];
    assert_eq!(
        p.decide(&emr, "visit.recording_state.set", &visit)
            .unwrap()
            .rule(),
        "emr-pause-others"
    );
}

#[test]
fn a_supervisor_reads_a_live_chat_but_not_an_ended_one_and_never_writes() {
    let p = policy();
    let sup = person("s1", Role::Supervisor);
    let chat = |live| {
        Resource::new(ResourceKind::Conversation, Some("c1".into()))
            .owned_by(SubjectId::new("pat"))
            .live(live)
    };
    assert!(p.decide(&sup, "conversation.read", &chat(true)).is_ok());
    assert!(p.decide(&sup, "conversation.read", &chat(false)).is_err());
    for action in [
        "conversation.write",
        "conversation.preview",
        "conversation.wrap_up",
    ] {
        assert!(p.decide(&sup, action, &chat(true)).is_err(), "{action}");
    }
    // Live is the supervisor's condition alone: a nurse not on the chat, or the helpdesk, reads nothing.
    assert!(
        p.decide(&person("n9", Role::Nurse), "conversation.read", &chat(true))
            .is_err()
    );
    assert!(
        p.decide(&person("h1", Role::ItHelpdesk), "conversation.read", &chat(true))
            .is_err()
    );
}
