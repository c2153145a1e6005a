//! A short run of the chat load tool (tools/chat_load.rs) so it cannot rot: a few sockets, a few messages,
//! nothing lost or duplicated. The real numbers come from `scripts/bench-chat.sh`.

use std::process::Command;

#[test]
fn chat_load_tool_smoke_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_examroom-chat-load"))
        .args([
            "--broker",
            env!("CARGO_BIN_EXE_examroom"),
            "--patients",
            "20",
            "--messages",
            "2",
            "--interval-ms",
            "200",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text.lines().last().unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[1], "20", "{row}");
    assert_eq!(cells[3], "40", "every message sent: {row}");
    assert_eq!((cells[7], cells[8]), ("0", "0"), "none lost or duplicated: {row}");
}

#[test]
fn seal_benchmark_smoke_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_examroom-seal-bench"))
        .arg("4")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text.lines().last().unwrap();
    assert!(row.starts_with("| 4 MiB |") && row.contains("MB/s"), "{row}");
}
