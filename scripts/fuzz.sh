#!/usr/bin/env bash
# Runs every fuzz target for longer than the suite does (one second each there):
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 300
# Targets: tests/fuzz/main.rs (chat frames, SDP and candidates, RTP into the recorder, RTCP, the sealed format)
# and the JWT header and claims targets in src/auth/jwt.rs (`fuzz_*`). Each replays its corpus and crash files
# under tests/fuzz/__fuzz__/<target>/ first. A failure prints the input and a BOLERO_RANDOM_SEED: save the input
# as tests/fuzz/__fuzz__/<target>/crashes/<name> so every later run (CI included) replays it, then fix the bug.
# Not run by CI (.ci/run runs the short version through scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/examroom-target}"
export BOLERO_RANDOM_TEST_TIME_MS=$((seconds * 1000))
cargo test --all-features --test fuzz -- --test-threads=1 --nocapture
cargo test --all-features --lib fuzz_ -- --test-threads=1 --nocapture
