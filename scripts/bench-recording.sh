#!/usr/bin/env bash
# Recording encryption benchmark (not a test): sealed-format throughput beside raw AES-256-GCM on this machine,
# release build, one core. Writes a Markdown report (default target/bench-recording.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features load-tools --bin examroom-seal-bench
report=${1:-target/bench-recording.md}
mkdir -p "$(dirname "$report")"
{
  echo "Recording encryption, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores, $(uname -m)"
  echo
  "${CARGO_TARGET_DIR:-target}/release/examroom-seal-bench" "${MIB:-256}"
} | tee "$report"
