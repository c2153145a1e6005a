#!/usr/bin/env bash
# Chat load benchmark: builds the broker in release mode and runs tools/chat_load.rs at 1,000 and 10,000
# patient sockets, writing a Markdown report (default target/bench-chat.md). Not part of the test suite; CI
# runs a smoke version (tests/integration/load_smoke.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release --features load-tools --bin examroom --bin examroom-chat-load
bin="${CARGO_TARGET_DIR:-target}/release"
report=${1:-target/bench-chat.md}
{
  echo "Chat load, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores, $(uname -m)"
  echo
  "$bin/examroom-chat-load" --broker "$bin/examroom" --patients 1000 --nurses 2 --messages 3 --interval-ms 1000
  "$bin/examroom-chat-load" --broker "$bin/examroom" --patients 10000 --nurses 2 --messages 3 --interval-ms 1000 --no-header
} | tee "$report"
