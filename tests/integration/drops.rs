//! A 20 s network cut on either side of a video visit, in Chromium: the cut side's browser in a namespace joined
//! to the broker's by a veth, the other browser in the broker's namespace. nftables drop every packet of the cut
//! side's namespace for 20 s, then let them through: both sides see the cut side reconnecting, its video comes
//! back in the same visit by itself (no second consent, no new video request), the chat replays what the other
//! side wrote meanwhile, both see each other's video again, and the time until video flows again is measured on
//! both sides (`drop-flow.mjs`).

use std::time::{Duration, Instant};

use crate::common::{Broker, support_dir};
use crate::netns::{Netns, Script};

const BROKER: &str = "10.30.0.2";
const FAR: &str = "10.30.0.3";
const CUT_SECONDS: u64 = 20;

/// `drop-flow.mjs` for one role, its output in a file.
fn script(
    ns: &Netns,
    role: &str,
    cut: &str,
    broker: &Broker,
    data: &std::path::Path,
    sync: &std::path::Path,
) -> Script {
    let log = std::fs::File::create(sync.join(format!("{role}.log"))).unwrap();
    ns.command("node")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/drop-flow.mjs"))
        .arg(&broker.url)
        .arg(data.join("dev-idp/credentials.json"))
        .arg(crate::video::artifacts())
        .arg(role)
        .arg(sync)
        .arg(cut)
        .env("TEST_OIDC_PROVIDER_DIR", support_dir())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(Script)
        .unwrap()
}

fn wait_for(sync: &std::path::Path, name: &str, limit: Duration, logs: &dyn Fn() -> String) {
    let start = Instant::now();
    while !sync.join(name).exists() {
        assert!(start.elapsed() < limit, "no {name} within {limit:?}:\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_20_second_cut_on_the_patient_side_ends_in_the_same_visit_with_the_chat_replayed() {
    cut_one_side("patient", ["db", "dp"]);
}

#[test]
fn a_20_second_cut_on_the_nurse_side_ends_in_the_same_visit_with_the_chat_replayed() {
    cut_one_side("nurse", ["dn", "dm"]);
}

/// The visit with `cut` (patient or nurse) in the namespace that is cut off, the other beside the broker.
fn cut_one_side(cut: &str, names: [&str; 2]) {
    if !crate::netns::browser_prerequisites(&[]) {
        return;
    }
    let (broker_ns, far_ns) = Netns::pair(names, [BROKER, FAR]);
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
    ]);
    let broker = broker_ns.dev_broker(&data, &env, BROKER, BROKER);
    let (patient_ns, nurse_ns) = if cut == "patient" {
        (&far_ns, &broker_ns)
    } else {
        (&broker_ns, &far_ns)
    };
    let mut patient = script(patient_ns, "patient", cut, &broker, &data, &sync);
    let mut nurse = script(nurse_ns, "nurse", cut, &broker, &data, &sync);
    let logs = || {
        let read = |r: &str| std::fs::read_to_string(sync.join(format!("{r}.log"))).unwrap_or_default();
        format!(
            "patient:\n{}\nnurse:\n{}\nbroker:\n{}",
            read("patient"),
            read("nurse"),
            broker.stderr.lines().join("\n")
        )
    };
    wait_for(&sync, "patient-media", Duration::from_secs(120), &logs);
    wait_for(&sync, "nurse-media", Duration::from_secs(60), &logs);

    // The cut: nothing in or out of the cut side's namespace.
    far_ns.nft(
        r#"
table inet cut {
  chain input { type filter hook input priority filter; policy accept; iif "eth0" drop; }
  chain output { type filter hook output priority filter; policy accept; oif "eth0" drop; }
}
"#,
    );
    std::fs::write(sync.join("cut"), crate::common::epoch_ms().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(CUT_SECONDS));
    crate::netns::run(far_ns.command("nft").args(["delete", "table", "inet", "cut"]));
    std::fs::write(sync.join("restored"), crate::common::epoch_ms().to_string()).unwrap();

    crate::netns::wait_both(&mut patient, &mut nurse, Duration::from_secs(120), &logs);
    let log = logs();
    assert!(
        log.contains("browser drop flow: patient passed") && log.contains("browser drop flow: nurse passed"),
        "{log}"
    );
    for line in log.lines().filter(|l| l.starts_with("measured:")) {
        println!("{line}");
    }
    broker.assert_no_panic();
}
