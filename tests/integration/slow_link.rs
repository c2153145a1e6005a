//! A patient whose downlink becomes too slow for video, in Chromium: the patient's browser in a namespace joined
//! to the broker's by a veth, the nurse's browser beside the broker. Once video flows both ways the broker's end
//! of the veth is shaped to 64 kbit/s (`tc tbf`: room for the nurse's voice, not her picture). The SFU's estimate
//! of the patient's downlink (TWCC) falls under the floor and the patient gets audio only: video is no longer
//! forwarded to her while audio is, and both sides are told (`video_link`). With the shaping lifted her
//! estimate recovers, video comes back (a keyframe asked of the nurse) and both sides are told again
//! (`slow-flow.mjs`). How long each step took is printed.

use std::time::{Duration, Instant};

use crate::common::support_dir;
use crate::netns::{Netns, Script, run};

const BROKER: &str = "10.50.0.2";
const PATIENT: &str = "10.50.0.3";

#[test]
fn a_patient_on_a_link_too_slow_for_video_gets_audio_only_then_video_again() {
    if !crate::netns::browser_prerequisites(&["/usr/sbin/tc"]) {
        return;
    }
    let (broker_ns, patient_ns) = Netns::pair(["sb", "sp"], [BROKER, PATIENT]);
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
        ("EXAMROOM_MEDIA__ICE_TCP", "false"),
    ]);
    let broker = broker_ns.dev_broker(&data, &env, BROKER, BROKER);
    let script = |ns: &Netns, role: &str| {
        let log = std::fs::File::create(sync.join(format!("{role}.log"))).unwrap();
        ns.command("node")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/slow-flow.mjs"))
            .arg(&broker.url)
            .arg(data.join("dev-idp/credentials.json"))
            .arg(&sync)
            .arg(crate::video::artifacts())
            .arg(role)
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
    let wait_for = |name: &str, limit: Duration, scripts: &mut [&mut Script]| {
        let start = Instant::now();
        while !sync.join(name).exists() {
            for s in scripts.iter_mut() {
                if let Some(status) = s.0.try_wait().unwrap() {
                    panic!("a script ended ({status}) before {name}:\n{}", logs());
                }
            }
            assert!(start.elapsed() < limit, "no {name} within {limit:?}:\n{}", logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(
        "patient-flowing",
        Duration::from_secs(180),
        &mut [&mut patient, &mut nurse],
    );
    // The broker's side of the veth sends to the patient: 64 kbit/s with a short queue.
    let tc = |args: &str| run(broker_ns.command("tc").args(args.split_whitespace()));
    tc("qdisc add dev eth0 root tbf rate 64kbit burst 4kb latency 300ms");
    std::fs::write(sync.join("shaped"), "").unwrap();
    wait_for(
        "audio-only",
        Duration::from_secs(150),
        &mut [&mut patient, &mut nurse],
    );
    tc("qdisc del dev eth0 root");
    std::fs::write(sync.join("lifted"), "").unwrap();
    crate::netns::wait_both(&mut patient, &mut nurse, Duration::from_secs(180), &logs);
    let patient_log = std::fs::read_to_string(sync.join("patient.log")).unwrap();
    for line in patient_log
        .lines()
        .filter(|l| l.starts_with("measured:") || l.starts_with("step:"))
    {
        println!("{line}");
    }
    broker.assert_no_panic();
}
