//! The chat in real headless Chromium (Debian's, driven by playwright-core): see `tests/browser/chat-flow.mjs`.
//! Screenshots are kept in `target/test-artifacts/browser` (or `$TEST_ARTIFACTS`).

use std::path::PathBuf;
use std::process::Command;

use crate::chat::{FAST_ROUTING, start_dev};
use crate::common::support_dir;

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
    let artifacts = std::env::var("TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts"))
        .join("browser");
    let out = Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/chat-flow.mjs"))
        .arg(&broker.url)
        .arg(data.join("dev-idp/credentials.json"))
        .arg(&artifacts)
        .env("TEST_OIDC_PROVIDER_DIR", support_dir())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "browser flow failed:\n{log}\nbroker:\n{}",
        broker.stderr.lines().join("\n")
    );
    assert!(log.contains("browser chat flow passed"), "{log}");
    for shot in ["01-patient-waiting", "02-patient-chatting", "03-nurse-workspace"] {
        assert!(
            artifacts.join(format!("{shot}.png")).exists(),
            "{shot} screenshot kept"
        );
    }
    broker.assert_no_panic();
}
