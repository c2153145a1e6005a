//! The chat in real headless Chromium (Debian's, driven by playwright-core): see `tests/browser/chat-flow.mjs`.
//! Screenshots are kept in `target/test-artifacts/browser` (or `$TEST_ARTIFACTS`).

use std::process::Command;

use crate::chat::{FAST_ROUTING, start_dev};

fn chromium_available() -> bool {
    let present = std::path::Path::new("/usr/bin/chromium").exists();
    if !present {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "/usr/bin/chromium is required"
        );
        eprintln!("/usr/bin/chromium missing: skipping (scripts/test.sh installs it)");
    }
    present
}

#[test]
fn patient_and_nurse_chat_in_chromium() {
    if !chromium_available() {
        return;
    }
    let (_dir, data, broker) = start_dev(FAST_ROUTING);
    let artifacts = crate::video::artifacts();
    crate::common::run_browser_script(
        Command::new("node"),
        "chat-flow.mjs",
        &broker,
        &data,
        &[],
        "browser chat flow passed",
    );
    for shot in ["01-patient-waiting", "02-patient-chatting", "03-nurse-workspace"] {
        assert!(
            artifacts.join(format!("{shot}.png")).exists(),
            "{shot} screenshot kept"
        );
    }
    broker.assert_no_panic();
}

#[test]
fn a_closed_tab_is_never_offered_and_a_closed_workspace_returns_its_chat_in_chromium() {
    if !chromium_available() {
        return;
    }
    let env: Vec<(&str, &str)> = FAST_ROUTING
        .iter()
        .copied()
        .chain([
            ("EXAMROOM_ROUTING__PATIENT_GRACE_SECONDS", "3"),
            ("EXAMROOM_ROUTING__STRANDED_GRACE_SECONDS", "3"),
        ])
        .collect();
    let (_dir, data, broker) = start_dev(&env);
    crate::common::run_browser_script(
        Command::new("node"),
        "presence-flow.mjs",
        &broker,
        &data,
        &[],
        "browser presence flow passed",
    );
    let artifacts = crate::video::artifacts();
    for shot in ["26-patient-requeued", "27-next-nurse-has-transcript"] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot} kept");
    }
    broker.assert_no_panic();
}

#[test]
fn each_role_has_its_page_and_the_supervisor_board_is_live_in_chromium() {
    if !chromium_available() {
        return;
    }
    // An offer that stays open while the board refreshes (every 5 s).
    let env: Vec<(&str, &str)> = FAST_ROUTING
        .iter()
        .copied()
        .chain([("EXAMROOM_ROUTING__OFFER_TIMEOUT_SECONDS", "60")])
        .collect();
    let (_dir, data, broker) = start_dev(&env);
    crate::common::run_browser_script(
        Command::new("node"),
        "roles-flow.mjs",
        &broker,
        &data,
        &[],
        "browser roles flow passed",
    );
    let artifacts = crate::video::artifacts();
    for shot in [
        "31-supervisor-board",
        "31b-supervisor-reads-a-chat",
        "32-helpdesk-status",
        "33-helpdesk-workspace",
    ] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot} kept");
    }
    broker.assert_no_panic();
}

#[test]
fn a_spanish_patient_gets_the_spanish_widget_queue_nurse_consent_and_video_in_chromium() {
    if !chromium_available() {
        return;
    }
    // Media on loopback: the flow holds a video visit.
    let (_dir, data, broker) = start_dev(&[("EXAMROOM_MEDIA__BIND_IPS", "[\"127.0.0.1\"]")]);
    crate::common::run_browser_script(
        Command::new("node"),
        "spanish-flow.mjs",
        &broker,
        &data,
        &[],
        "browser spanish flow passed",
    );
    for shot in [
        "06-patient-spanish",
        "06b-patient-spanish-consent",
        "06c-patient-spanish-call",
        "06d-patient-spanish-ended",
    ] {
        let kept = crate::video::artifacts().join(format!("{shot}.png"));
        assert!(kept.exists(), "{shot} kept");
    }
    // The consent given is kept with the language of the question it answered.
    let accepted: Vec<(String,)> = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::chat::query_db(
            &data,
            "SELECT reason FROM audit_events WHERE action = 'video.accept' ORDER BY seq",
        ));
    assert_eq!(
        accepted,
        [("consent:given wording:es".to_string(),)],
        "{accepted:?}"
    );
    broker.assert_no_panic();
}

#[test]
fn a_chat_is_handed_to_a_colleague_then_to_a_queue_in_chromium() {
    if !chromium_available() {
        return;
    }
    let (_dir, data, broker) = start_dev(&[]);
    crate::common::run_browser_script(
        Command::new("node"),
        "transfer-flow.mjs",
        &broker,
        &data,
        &[],
        "browser transfer flow passed",
    );
    for shot in [
        "50-nurse-transfer-choice",
        "50b-colleague-asked",
        "51-nurse-transferred",
        "52-patient-transferred",
        "53-colleague-has-the-chat",
    ] {
        let kept = crate::video::artifacts().join(format!("{shot}.png"));
        assert!(kept.exists(), "{shot} kept");
    }
    broker.assert_no_panic();
}
