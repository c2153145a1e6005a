#!/usr/bin/env bash
# Bad-link benchmark (not a test): a video visit in Chromium with the patient on an impaired link, measured in
# the browsers' getStats(): frame rate, freezes, audio concealment and round trip on each side, and what the
# nurse's browser sends (the SFU caps it by the patient's estimated downlink, REMB). The patient's browser runs
# in its own network namespace joined to the broker's by a veth; the nurse's beside the broker. Conditions
# (this kernel has no netem): 300 kbit/s each way (tc tbf on both ends of the veth), 5% loss each way
# (nftables numgen on both ends' ingress), +200 ms round trip (benches/network/relay.mjs: the SFU announces the
# relay's address and it holds the patient's media 100 ms each way), and all three.
# Usage: scripts/bench-network.sh [REPORT] (default target/bench-network.md); SECONDS_PER_RUN (default 30);
# BENCH_BROKER_BIN: a broker binary to use instead of building the release one.
# Needs root (namespaces) and what scripts/test.sh installs (chromium, nftables, the npm packages in tests/support).
set -euo pipefail
cd "$(dirname "$0")/.."
report=${1:-target/bench-network.md}
seconds=${SECONDS_PER_RUN:-30}
[ "$(id -u)" = 0 ] || { echo "bench-network.sh needs root (network namespaces, tc, nftables)" >&2; exit 2; }
bin=${BENCH_BROKER_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --bin examroom
  bin="${CARGO_TARGET_DIR:-target}/release/examroom"
fi
mkdir -p "$(dirname "$report")"
export TEST_OIDC_PROVIDER_DIR="$PWD/tests/support"
work=$(mktemp -d)
tag=$$
nsb="er-bnb-$tag" nsp="er-bnp-$tag"
pids=()
teardown() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  ip netns del "$nsb" 2>/dev/null || true
  ip netns del "$nsp" 2>/dev/null || true
}
trap 'teardown; rm -rf "$work"' EXIT
touch "$work/rows"

run() { # label rate(kbit or "") loss(% or "") delay(ms each way)
  local label=$1 rate=$2 loss=$3 delay=$4 dir="$work/$1"
  # ONLY: a pattern of the conditions to run (all by default).
  [[ "$label" == ${ONLY:-*} ]] || return 0
  mkdir -p "$dir/sync"
  ip netns add "$nsb"; ip netns add "$nsp"
  ip -n "$nsb" link add eth0 type veth peer name eth0 netns "$nsp"
  ip -n "$nsb" addr add 10.50.0.2/24 dev eth0; ip -n "$nsb" addr add 10.50.0.4/24 dev eth0
  ip -n "$nsp" addr add 10.50.0.3/24 dev eth0
  for ns in "$nsb" "$nsp"; do
    ip -n "$ns" link set eth0 up; ip -n "$ns" link set lo up
    if [ -n "$rate" ]; then
      ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "${rate}kbit" burst 4kb latency 200ms
    fi
    if [ -n "$loss" ]; then
      ip netns exec "$ns" nft -f - <<NFT
table netdev loss {
  chain in { type filter hook ingress device "eth0" priority 0; policy accept; numgen random mod 100 < $loss drop; }
}
NFT
    fi
  done
  # The patient reaches the SFU only through the relay (10.50.0.4): its direct address is dropped.
  ip netns exec "$nsp" nft -f - <<NFT
table inet direct {
  chain out { type filter hook output priority 0; policy accept; ip daddr 10.50.0.2 udp dport 40000-40049 drop; }
}
NFT
  ip netns exec "$nsb" node benches/network/relay.mjs 10.50.0.4 10.50.0.2 40000 40049 "$delay" 10.50.0.3 \
    > "$dir/relay.log" 2>&1 &
  pids+=($!)
  ip netns exec "$nsb" env EXAMROOM_LOGGING__LEVEL=warn EXAMROOM_ROUTING__OFFER_TIMEOUT_SECONDS=60 \
    EXAMROOM_MEDIA__BIND_IPS='["10.50.0.2"]' EXAMROOM_MEDIA__ANNOUNCED_IPS='["10.50.0.4"]' \
    EXAMROOM_MEDIA__UDP_PORT_MIN=40000 EXAMROOM_MEDIA__UDP_PORT_MAX=40049 EXAMROOM_MEDIA__ICE_TCP=false \
    ${BENCH_BROKER_ENV:-} "$bin" dev --listen 10.50.0.2:8080 --public-url http://10.50.0.2:8080 --data-dir "$dir/data" \
    > "$dir/broker.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q "running at" "$dir/broker.out" && break; sleep 0.1; done
  if ! grep -q "running at" "$dir/broker.out"; then
    echo "the broker did not start ($label):"; cat "$dir/broker.out"
    echo "| $label | broker did not start | | | | | | | | |" >> "$work/rows"
    teardown
    return 0
  fi
  local url=http://10.50.0.2:8080 creds="$dir/data/dev-idp/credentials.json"
  sleep 1 # a browser started while the new link settles sees ERR_NETWORK_CHANGED
  ip netns exec "$nsp" node tests/browser/link-flow.mjs "$url" "$creds" "$dir/sync" patient "$seconds" > "$dir/patient.log" 2>&1 &
  local patient=$!
  ip netns exec "$nsb" node tests/browser/link-flow.mjs "$url" "$creds" "$dir/sync" nurse "$seconds" > "$dir/nurse.log" 2>&1 &
  local nurse=$!
  pids+=("$patient" "$nurse")
  wait "$patient" || { echo "patient side failed ($label):"; cat "$dir/patient.log"; }
  wait "$nurse" || { echo "nurse side failed ($label):"; cat "$dir/nurse.log"; }
  node -e '
    const [label, dir] = process.argv.slice(1);
    const fs = require("fs");
    const read = (r) => { try { return JSON.parse(fs.readFileSync(`${dir}/sync/${r}.json`, "utf8")); } catch { return null; } };
    const p = read("patient"), n = read("nurse");
    const side = (s) => s ? `${s.fps.toFixed(1)} | ${s.freezes} / ${s.freezeSeconds.toFixed(1)} s | ${s.concealedPct.toFixed(1)}%` : "failed | | ";
    const rtt = p && p.rttMs != null ? p.rttMs.toFixed(0) : "";
    console.log(`| ${label} | ${side(p)} | ${side(n)} | ${rtt} | ${n ? n.sendKbps.toFixed(0) : ""} | ${p ? p.sendKbps.toFixed(0) : ""} |`);
  ' "$label" "$dir" >> "$work/rows"
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS"; cp -r "$dir" "$KEEP_LOGS/"; fi
  teardown
}

run "clean link" "" "" 0
run "300 kbit/s" 300 "" 0
run "5% loss" "" 5 0
run "+200 ms RTT" "" "" 100
run "all three" 300 5 100

{
  echo "Bad-link benchmark ($(date -u +%Y-%m-%d), $(basename "$(dirname "$bin")") build, ${seconds} s per run after media flowed and 8 s of warm-up; patient's link impaired, nurse's clean)"
  echo
  echo "| patient's link | patient sees: fps | freezes / frozen | audio concealed | nurse sees: fps | freezes / frozen | audio concealed | patient RTT (ms) | nurse sends video (kbit/s) | patient sends video (kbit/s) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  cat "$work/rows"
} | tee "$report"
