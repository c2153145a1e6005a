//! A short run of the chat load tool (examples/chat_load.rs) so it cannot rot: a few sockets, a few messages,
//! nothing lost or duplicated. The real numbers come from `scripts/bench-chat.sh`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn chat_load_tool_smoke_run() {
    // Examples are built next to the test binaries by `cargo test --all-targets`.
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let tool: PathBuf = deps.parent().unwrap().join("examples/chat_load");
    if !tool.exists() {
        assert!(
            std::env::var("TEST_REQUIRE_POSTGRES").is_err(),
            "build with --all-targets"
        );
        eprintln!("examples not built: skipping");
        return;
    }
    let out = Command::new(tool)
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
