//! Short runs of the load tools so they cannot rot: the chat load tool (tools/chat_load.rs) with a few sockets
//! and messages, nothing lost or duplicated; the media load tool (tools/media_load.rs) with two visits for
//! three seconds in a loopback-only network namespace, media forwarded both ways; the room benchmark
//! (tools/room_bench.rs) with three participants for two seconds. The real numbers come from
//! `scripts/bench-chat.sh` and `scripts/bench-media.sh`.

use std::process::Command;

use crate::common::{in_fresh_netns, stdout_of_success};

#[test]
fn chat_load_tool_smoke_run() {
    let text = stdout_of_success(Command::new(env!("CARGO_BIN_EXE_examroom-chat-load")).args([
        "--broker",
        env!("CARGO_BIN_EXE_examroom"),
        "--patients",
        "20",
        "--messages",
        "2",
        "--interval-ms",
        "200",
    ]));
    check_row(&text, "1");
}

/// The report's row: nodes, 20 patients, 40 messages sent, none lost or duplicated.
fn check_row(text: &str, nodes: &str) {
    let row = text.lines().last().unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!((cells[1], cells[2]), (nodes, "20"), "{row}");
    assert_eq!(cells[4], "40", "every message sent: {row}");
    assert_eq!((cells[8], cells[9]), ("0", "0"), "none lost or duplicated: {row}");
}

#[tokio::test]
async fn chat_load_tool_smoke_run_on_three_nodes() {
    let Some(database) = crate::storage::postgres_database().await else {
        return;
    };
    let text = tokio::task::spawn_blocking(move || {
        stdout_of_success(Command::new(env!("CARGO_BIN_EXE_examroom-chat-load")).args([
            "--broker",
            env!("CARGO_BIN_EXE_examroom"),
            "--patients",
            "20",
            "--messages",
            "2",
            "--interval-ms",
            "200",
            "--nodes",
            "3",
            "--database",
            &database,
        ]))
    })
    .await
    .unwrap();
    check_row(&text, "3");
}

#[test]
fn seal_benchmark_smoke_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_examroom-seal-bench"))
        .arg("4")
        .env("VISIT_SECONDS", "20")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("| 4 MiB |") && l.contains("MB/s")),
        "{text}"
    );
    // The recorder path keeps all the media, in order and with packets reordered (none lost to a reordering).
    for label in ["| in order |", "| one video packet in 40 reordered |"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} in {text}"));
        assert!(row.contains("| 100.0 % |"), "{row}");
    }
}

#[test]
fn room_benchmark_smoke_run() {
    if !crate::common::netns_available() {
        return;
    }
    let text = stdout_of_success(in_fresh_netns(env!("CARGO_BIN_EXE_examroom-room-bench")).args([
        "--participants",
        "3",
        "--seconds",
        "2",
    ]));
    let row = text.lines().last().unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        (cells[1], cells[2]),
        ("3", "12"),
        "three participants, twelve streams: {row}"
    );
    let delivered: f64 = cells[4].trim_end_matches(" %").parse().unwrap();
    assert!(delivered > 90.0, "what was sent was forwarded: {row}");
}

#[test]
fn media_load_tool_smoke_run() {
    if !crate::common::netns_available() {
        return;
    }
    // The tool itself runs in the namespace (and starts the broker there), as scripts/bench-media.sh does.
    let text = stdout_of_success(
        in_fresh_netns(env!("CARGO_BIN_EXE_examroom-media-load"))
            .args(["--broker", env!("CARGO_BIN_EXE_examroom")])
            .args(["--visits", "2", "--seconds", "3", "--record", "off"]),
    );
    let row = text.lines().last().unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!((cells[1], cells[3]), ("examroom", "2"), "{row}");
    let packets: Vec<u64> = cells[5].split(" / ").map(|n| n.parse().unwrap()).collect();
    // Two visits send ~370 packets a second each way; three seconds of that, with room for a slow CI host.
    assert!(packets[0] > 300 && packets[1] > 300, "forwarded both ways: {row}");
    let loss: f64 = cells[6].parse().unwrap();
    assert!(loss < 5.0, "loss below 5%: {row}");
}
