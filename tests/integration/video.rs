//! Video elevation in real headless Chromium with fake devices, inside a network namespace that has only `lo`
//! (`unshare --net`): see `tests/browser/video-flow.mjs`. Screenshots are kept with the chat ones.

use std::path::PathBuf;

use crate::chat::FAST_ROUTING;
use crate::common::{Broker, support_dir};

fn prerequisites() -> bool {
    let chromium = std::path::Path::new("/usr/bin/chromium").exists();
    let netns = std::process::Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !(chromium && netns) {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "chromium ({chromium}) and unshare --net ({netns}) are required"
        );
        eprintln!("chromium or network namespaces unavailable: skipping");
    }
    chromium && netns
}

pub fn artifacts() -> PathBuf {
    std::env::var("TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts"))
        .join("browser")
}

/// Runs the browser video flow against a broker started with `env`; `relay` demands TURN-relayed pairs.
pub fn run_video_flow(env: &[(&str, &str)], relay: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Broker::dev_isolated(&data, env);
    let out = broker
        .in_namespace("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/video-flow.mjs"))
        .arg(&broker.url)
        .arg(data.join("dev-idp/credentials.json"))
        .arg(artifacts())
        .args(relay.map(|_| "relay"))
        .env("TURN_TRANSPORT", relay.unwrap_or(""))
        .env("TEST_OIDC_PROVIDER_DIR", support_dir())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && log.contains("browser video flow passed"),
        "browser video flow failed:\n{log}\nbroker:\n{}",
        broker.stderr.lines().join("\n")
    );
    broker.assert_no_panic();
}

#[test]
fn nurse_elevates_chat_to_video_in_chromium() {
    if !prerequisites() {
        return;
    }
    let mut env = FAST_ROUTING.to_vec();
    env.push(("EXAMROOM_MEDIA__BIND_IPS", "[\"127.0.0.1\"]"));
    run_video_flow(&env, None);
    for shot in ["04-patient-device-check", "05-patient-video", "06-nurse-video"] {
        assert!(artifacts().join(format!("{shot}.png")).exists(), "{shot} kept");
    }
}
