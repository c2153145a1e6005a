#!/usr/bin/env bash
# Every benchmark, one after another (never in parallel: each measures CPU on this machine), into one Markdown
# report (default target/bench-report.md): chat load at 1,000 and 10,000 sockets, media forwarding beside
# Janus with recording off and on, video join time in Chromium (direct and through coturn), recording
# encryption, and video over bad links (bench-network.sh, as root). Needs what scripts/test.sh installs
# (PostgreSQL is not used; Chromium, coturn and the npm packages are); bench-media.sh installs Janus itself.
# Not part of the test suite: CI runs smoke versions of the load tools (tests/integration/load_smoke.rs).
#
#   CARGO_TARGET_DIR=… scripts/bench.sh [report.md]
#   VISITS="5 50 100" SECONDS_PER_RUN=20 RUNS=20 MIB=256 override the sizes of the parts.
set -euo pipefail
cd "$(dirname "$0")/.."
report=${1:-target/bench-report.md}
parts=$(mktemp -d)
trap 'rm -rf "$parts"' EXIT
mkdir -p "$(dirname "$report")"

./scripts/bench-chat.sh "$parts/chat.md"
./scripts/bench-media.sh "$parts/media.md"
./scripts/bench-video.sh "$parts/video.md"
./scripts/bench-recording.sh "$parts/recording.md"
if [ "$(id -u)" = 0 ]; then
  ./scripts/bench-network.sh "$parts/network.md"
else
  echo "Not run: the bad-link benchmark needs root (network namespaces)." > "$parts/network.md"
fi

{
  echo "# examroom benchmarks"
  echo
  echo "Command: \`scripts/bench.sh\`; commit $(git rev-parse --short HEAD); $(date -u +%Y-%m-%dT%H:%MZ);"
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -m)."
  for part in chat media video recording network; do
    echo
    echo "## $part"
    echo
    # Each part is a document of its own: its headings go one level under this section.
    sed "s/^# /### /" "$parts/$part.md"
  done
} > "$report"
echo "report: $report"
