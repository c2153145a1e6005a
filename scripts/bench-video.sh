#!/usr/bin/env bash
# Video join-time benchmark (not a test): builds the broker in release mode and, inside a fresh network
# namespace that has only loopback, runs benches/video/join.mjs against it directly and through a real coturn
# (relay-only ICE over UDP and over TCP), and once with the visit recorded (the recorder's CPU cost). Writes a
# Markdown report (default target/bench-video.md).
# Needs what scripts/test.sh installs (chromium, coturn, the npm packages in tests/support).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-20}
report=${1:-target/bench-video.md}
if [ -z "${BENCH_VIDEO_IN_NETNS:-}" ]; then
  cargo build --release --bin examroom
  mkdir -p "$(dirname "$report")"
  BENCH_VIDEO_IN_NETNS=1 exec unshare --net -- "$0" "$report"
fi
ip link set lo up
bin="${CARGO_TARGET_DIR:-target}/release/examroom"
export TEST_OIDC_PROVIDER_DIR="$PWD/tests/support"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

run() { # label transport(empty for direct)
  local label=$1 transport=$2 data="$work/$1" env=()
  if [ -n "$transport" ]; then
    head -c 24 /dev/urandom | base64 > "$work/turn-secret"
    turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port=3478 --min-port=49160 \
      --max-port=49400 --use-auth-secret --static-auth-secret="$(cat "$work/turn-secret")" --realm=bench \
      --allow-loopback-peers --no-tls --no-dtls --no-cli --log-file="$work/turn.log" --userdb="$work/turndb" >/dev/null 2>&1 &
    local turn=$!; pids+=("$turn")
    env=(EXAMROOM_MEDIA__TURN_URLS="[\"turn:127.0.0.1:3478?transport=$transport\"]"
         EXAMROOM_MEDIA__TURN_SECRET_FILE="$work/turn-secret" EXAMROOM_MEDIA__FORCE_RELAY=true)
    sleep 1
  fi
  env "${env[@]}" EXAMROOM_LOGGING__LEVEL=warn EXAMROOM_ROUTING__OFFER_TIMEOUT_SECONDS=60 \
    "$bin" dev --listen 127.0.0.1:0 --data-dir "$data" > "$work/$label.out" 2>&1 &
  local broker=$!; pids+=("$broker")
  for _ in $(seq 100); do grep -q "running at" "$work/$label.out" && break; sleep 0.1; done
  local url
  if ! url=$(grep -o "running at [^ ]*" "$work/$label.out" | cut -d' ' -f3 | sed 's#/$##'); then
    cat "$work/$label.out" >&2
    exit 1
  fi
  node benches/video/join.mjs "$url" "$data/dev-idp/credentials.json" "$broker" "$runs" "$label"
  kill "$broker"; wait "$broker" 2>/dev/null || true
  if [ -n "$transport" ]; then kill "$turn"; wait "$turn" 2>/dev/null || true; fi
}

{
  echo "Video join, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores, $(uname -m), $runs joins each"
  echo
  echo "| path | joins | join p50 | join p95 | candidates | broker CPU (1 visit) | CPU per forwarded stream |"
  echo "|---|---|---|---|---|---|---|"
  run loopback ""
  run loopback-recorded ""
  run turn-udp udp
  run turn-tcp tcp
} | tee "$report"
