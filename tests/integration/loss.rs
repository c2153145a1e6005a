//! A video visit over a lossy link, in Chromium: the patient's browser in a namespace joined to the broker's by
//! a veth that drops 5% of packets each way (nftables `numgen` on both ends' ingress), the nurse's browser beside
//! the broker. Losses are repaired through the SFU in both directions: the patient's browser asks for what it
//! missed of the nurse's video (NACK) and the SFU resends it from its own buffer (it does not ask the nurse);
//! the SFU asks for what it missed of the patient's video and the patient's browser resends it; both pictures
//! keep moving (5% of a frame's packets lost unrepaired would stall the picture on every other frame until a
//! keyframe) and the audio keeps playing.
//! `tests/browser/link-flow.mjs` reads the counters from `getStats()`; the same script runs the bad-link
//! benchmark, where the effect is measured rather than asserted.

use std::time::Duration;

use crate::common::support_dir;
use crate::netns::{Netns, Script};

const BROKER: &str = "10.40.0.2";
const PATIENT: &str = "10.40.0.3";
const SECONDS: &str = "12";

fn measured(sync: &std::path::Path, role: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(sync.join(format!("{role}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn losses_on_the_patients_link_are_repaired_through_the_sfu() {
    if !crate::netns::browser_prerequisites(&[]) {
        return;
    }
    let (broker_ns, patient_ns) = Netns::pair(["lb", "lp"], [BROKER, PATIENT]);
    for ns in [&broker_ns, &patient_ns] {
        // Only the veth is lossy: the nurse's browser reaches the broker over loopback.
        ns.nft(
            r#"
table netdev loss {
  chain in { type filter hook ingress device "eth0" priority 0; policy accept; numgen random mod 100 < 5 counter drop; }
}
"#,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sync = dir.path().join("sync");
    std::fs::create_dir_all(&sync).unwrap();
    let bind = format!("[\"{BROKER}\"]");
    let mut env = crate::chat::FAST_ROUTING.to_vec();
    env.extend([
        ("EXAMROOM_MEDIA__BIND_IPS", bind.as_str()),
        ("EXAMROOM_MEDIA__UDP_PORT_MIN", "40000"),
        ("EXAMROOM_MEDIA__UDP_PORT_MAX", "40049"),
        // UDP only, so every packet crosses the lossy rule (TCP would retransmit by itself).
        ("EXAMROOM_MEDIA__ICE_TCP", "false"),
    ]);
    let broker = broker_ns.dev_broker(&data, &env, BROKER, BROKER);
    let script = |ns: &Netns, role: &str| {
        let log = std::fs::File::create(sync.join(format!("{role}.log"))).unwrap();
        ns.command("node")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/link-flow.mjs"))
            .arg(&broker.url)
            .arg(data.join("dev-idp/credentials.json"))
            .arg(&sync)
            .arg(role)
            .arg(SECONDS)
            .env("TEST_OIDC_PROVIDER_DIR", support_dir())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map(Script)
            .unwrap()
    };
    let mut patient = script(&patient_ns, "patient");
    let mut nurse = script(&broker_ns, "nurse");
    let logs = || {
        let read = |r: &str| std::fs::read_to_string(sync.join(format!("{r}.log"))).unwrap_or_default();
        format!(
            "patient:\n{}\nnurse:\n{}\nbroker:\n{}",
            read("patient"),
            read("nurse"),
            broker.stderr.lines().join("\n")
        )
    };
    crate::netns::wait_both(&mut patient, &mut nurse, Duration::from_secs(240), &logs);
    let (patient, nurse) = (measured(&sync, "patient"), measured(&sync, "nurse"));
    println!("measured: patient {patient}\nmeasured: nurse {nurse}");
    let number = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(0.0);
    let mut failed = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failed.push(what);
        }
    };
    check(
        number(&patient, "nacksSent") > 0.0,
        format!("the patient asked the SFU for lost video: {patient}"),
    );
    check(
        number(&patient, "repairsSent") > 0.0,
        format!("the SFU asked the patient for lost video and the patient resent it: {patient}"),
    );
    // Unrepaired, 5% loss stalls the picture on nearly every frame; repaired, it moves at over 10 fps. Freezes
    // still happen on this link (the README's bad-link table: the nurse's view froze a third of the time in the
    // release run, more under a loaded test run: 9.5 s of 12 once in a full run on two cores), so the bound on
    // them only catches a picture that hardly moves: frozen for nearly the whole measurement.
    for (role, m) in [("patient", &patient), ("nurse", &nurse)] {
        check(
            number(m, "fps") > 10.0 && number(m, "freezeSeconds") < 11.0,
            format!("{role}: the picture keeps moving: {m}"),
        );
        check(
            number(m, "concealedPct") < 50.0,
            format!("{role}: the audio keeps playing: {m}"),
        );
    }
    assert!(failed.is_empty(), "{}\n{}", failed.join("\n"), logs());
    broker.assert_no_panic();
}
