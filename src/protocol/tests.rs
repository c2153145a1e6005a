//! Parsing and printing of frames: strict, precise codes, nothing echoed, PHI never printed.

use super::*;

fn code(text: &str) -> &'static str {
    ClientFrame::parse(text).unwrap_err().code
}

#[test]
fn well_formed_frames_parse() {
    let f = ClientFrame::parse(
        r#"{"v":1,"type":"send","conversation_id":"c","idempotency_key":"k","body":"hi"}"#,
    );
    assert!(matches!(f, Ok(ClientFrame::Send { .. })));
    assert_eq!(
        ClientFrame::parse(r#"{"type":"presence","v":1,"state":"ready"}"#).unwrap(),
        ClientFrame::Presence {
            v: 1,
            state: PresenceRequest::Ready
        }
    );
}

#[test]
fn strict_parsing_names_the_problem() {
    assert_eq!(code("{not json"), "malformed_json");
    assert_eq!(code(r#"{"v":1,"type":"ping","extra":1}"#), "unknown_field");
    assert_eq!(code(r#"{"v":1,"type":"teleport"}"#), "unknown_type");
    assert_eq!(
        code(r#"{"v":1,"type":"sync","conversation_id":"a","conversation_id":"b","after_seq":0}"#),
        "duplicate_key"
    );
    assert_eq!(code(r#"{"v":2,"type":"ping"}"#), "unsupported_version");
    assert_eq!(
        code(r#"{"v":1,"type":"start","queue":"q","idempotency_key":""}"#),
        "invalid_idempotency_key"
    );
    assert_eq!(
        code(r#"{"v":1,"type":"presence","state":"busy"}"#),
        "invalid_frame"
    );
}

#[test]
fn errors_do_not_echo_values() {
    let e = ClientFrame::parse(r#"{"v":1,"type":"ping","my ssn is 123-45-6789":1}"#).unwrap_err();
    assert_eq!(e.code, "unknown_field");
    assert!(!e.message.contains("6789"), "{}", e.message);
    let e = ClientFrame::parse(r#"{"v":1,"type":"sync","conversation_id":"c","after_seq":"123-45-6789"}"#)
        .unwrap_err();
    assert!(!e.message.contains("6789"), "{}", e.message);
}

#[test]
fn message_text_and_tokens_never_print_and_keep_their_wire_form() {
    let f = ClientFrame::parse(
        r#"{"v":1,"type":"send","conversation_id":"c","idempotency_key":"k","body":"my chest hurts"}"#,
    )
    .unwrap();
    assert!(!format!("{f:?}").contains("chest"), "{f:?}");
    let auth = ClientFrame::parse(r#"{"v":1,"type":"auth","token":"secret-token"}"#).unwrap();
    assert!(!format!("{auth:?}").contains("secret-token"));
    let out = ServerFrame::Message {
        conversation_id: ConversationId::new("c"),
        seq: 1,
        sender_role: "patient".into(),
        body: Pii::new("my chest hurts".into()),
        at: "t".into(),
    };
    assert!(!format!("{out:?}").contains("chest"));
    assert!(
        serde_json::to_string(&out)
            .unwrap()
            .contains(r#""body":"my chest hurts""#)
    );
}
