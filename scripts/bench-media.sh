#!/usr/bin/env bash
# Media forwarding benchmark (not a test): examroom's SFU with recording off and on, and Janus VideoRoom, under
# the same load from tools/media_load.rs, on this machine in one run. Installs Janus (Debian package `janus`)
# if missing, builds in release mode, then re-runs itself in a fresh network namespace with nothing routed
# out of it, writes a minimal Janus configuration (VideoRoom plugin and HTTP transport only, HTTP bound to
# 127.0.0.1, no admin API) and writes a Markdown report (default target/bench-media.md).
#
# Janus never gathers ICE candidates on a loopback interface (src/ice.c skips IFF_LOOPBACK), so the namespace
# also gets a veth pair whose one end holds 10.99.0.1/32; Janus's ICE is restricted to it and the load
# generator's peers bind it for the Janus runs. The kernel still delivers that traffic over lo (`ip route get
# 10.99.0.1` says `local ... dev lo`), the same path examroom's 127.0.0.1 traffic takes.
#
#   VISITS="5 50" SECONDS_PER_RUN=20 scripts/bench-media.sh [report.md]
#
# The server under test (broker or Janus) is pinned to CPU 0 and the load generator to the other CPUs, so
# the server's figures are per core and the generator does not steal its CPU (PIN=0 turns that off).
set -euo pipefail
cd "$(dirname "$0")/.."
visits=${VISITS:-"5 50"}
seconds=${SECONDS_PER_RUN:-20}
pin=${PIN:-1}
report=${1:-target/bench-media.md}

if [ -z "${BENCH_MEDIA_IN_NETNS:-}" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
  fi
  need_apt=()
  [ -x /usr/bin/janus ] || need_apt+=(janus)
  command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
  command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
  if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  fi
  cargo build --release --features load-tools --bin examroom --bin examroom-media-load
  mkdir -p "$(dirname "$report")"
  command=${BENCH_MEDIA_COMMAND:-"VISITS=\"$visits\" SECONDS_PER_RUN=$seconds PIN=$pin $0 $*"}
  BENCH_MEDIA_IN_NETNS=1 BENCH_MEDIA_COMMAND="$command" exec unshare --net -- "$0" "$report"
fi
ip link set lo up
ip link add bench0 type veth peer name bench1
ip addr add 10.99.0.1/32 dev bench0
ip link set bench1 up
ip link set bench0 up
bin="${CARGO_TARGET_DIR:-target}/release"
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
janus_pid=""
cleanup() {
  if [ -n "$janus_pid" ]; then kill "$janus_pid" 2>/dev/null || true; wait "$janus_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

server_cpus=() gen=() server_pin=()
if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  server_cpus=(--server-cpus 0)
  server_pin=(taskset -c 0)
  gen=(taskset -c "1-$(($(nproc) - 1))")
fi

# Janus: the package's plugin and transport libraries, but only VideoRoom and HTTP linked into the folders
# it scans, so nothing else loads; no admin API; ICE only on bench0; logs to a file.
libdir=$(dirname "$(dpkg -L janus | grep '/plugins/libjanus_videoroom.so' | head -n 1)")/..
mkdir -p "$work/janus/plugins" "$work/janus/transports" "$work/janus/none"
ln -s "$(ls "$libdir"/plugins/libjanus_videoroom.so* | head -n 1)" "$work/janus/plugins/libjanus_videoroom.so"
ln -s "$(ls "$libdir"/transports/libjanus_http.so* | head -n 1)" "$work/janus/transports/libjanus_http.so"
janus_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/janus/janus.jcfg" <<EOF
general: {
	configs_folder = "$work/janus"
	plugins_folder = "$work/janus/plugins"
	transports_folder = "$work/janus/transports"
	events_folder = "$work/janus/none"
	loggers_folder = "$work/janus/none"
	debug_level = 3
	log_to_stdout = false
	log_to_file = "$work/janus/janus.log"
}
media: {
	rtp_port_range = "20000-29999"
}
nat: {
	nice_debug = false
	ice_enforce_list = "bench0"
}
events: {
	broadcast = false
}
EOF
cat > "$work/janus/janus.transport.http.jcfg" <<EOF
general: {
	base_path = "/janus"
	http = true
	port = $janus_port
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
EOF
printf 'general: {\n}\n' > "$work/janus/janus.plugin.videoroom.jcfg"

load() { "${gen[@]}" "$bin/examroom-media-load" --seconds "$seconds" "$@"; }

rows=$work/rows.md
header=()
for n in $visits; do
  load --broker "$bin/examroom" "${server_cpus[@]}" --visits "$n" --record off "${header[@]}" | tee -a "$rows"
  header=(--no-header)
  load --broker "$bin/examroom" "${server_cpus[@]}" --visits "$n" --record on --no-header | tee -a "$rows"
  "${server_pin[@]}" janus -C "$work/janus/janus.jcfg" -F "$work/janus" >/dev/null 2>&1 &
  janus_pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$janus_port/janus/info" && break
    sleep 0.1
  done
  load --target janus --janus-url "http://127.0.0.1:$janus_port/janus" --janus-pid "$janus_pid" \
    --peer-ip 10.99.0.1 --visits "$n" --no-header | tee -a "$rows"
  kill "$janus_pid"; wait "$janus_pid" 2>/dev/null || true; janus_pid=""
done

# Ratios examroom/Janus at each visit count: CPU per forwarded Mbit, loss and p99 server-added latency.
ratios() {
  awk -F'|' '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    NR > 2 {
      # "N", or "N of M" when some visits could not be set up: keyed by the M asked for.
      target = trim($2); rec = trim($3); nv = split(trim($4), v, " "); n = v[nv] + 0
      split(trim($8), lat, " / ")
      key = (target == "examroom" ? "examroom record " rec : "janus") SUBSEP n
      cpu[key] = trim($12); loss[key] = trim($7); p99[key] = lat[2]
      if (!(n in seen)) { seen[n] = 1; order[++count] = n }
    }
    function ratio(a, b) { return (b + 0 == 0) ? "n/a" : sprintf("%.2f", a / b) }
    END {
      print ""
      print "| visits | examroom/Janus | CPU s per Mbit | loss | server-added p99 |"
      print "|---|---|---|---|---|"
      for (i = 1; i <= count; i++) {
        n = order[i]; j = "janus" SUBSEP n
        if (!(j in cpu)) continue
        for (r = 0; r < 2; r++) {
          e = "examroom record " (r ? "on" : "off") SUBSEP n
          if (!(e in cpu)) continue
          printf "| %d | recording %s | %s | %s | %s |\n", n, (r ? "on" : "off"),
            ratio(cpu[e], cpu[j]), ratio(loss[e], loss[j]), ratio(p99[e], p99[j])
        }
      }
    }' "$rows"
}

{
  echo "# Media forwarding: examroom's SFU beside Janus VideoRoom"
  echo
  echo "- command: \`$BENCH_MEDIA_COMMAND\`"
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -m), Linux $(uname -r)"
  echo "- Janus $(dpkg-query -W -f='${Version}' janus), VideoRoom plugin over its HTTP API"
  if [ ${#server_pin[@]} -gt 0 ]; then
    echo "- the server (broker or Janus) pinned to CPU 0, the load generator to the others"
  fi
  echo "- each visit: patient and nurse peers each sending VP8 (30 frames/s, 135 packets/s, ~1.5 Mbit/s) and Opus (50 packets/s); ${seconds} s window after 3 s of warm-up; a network namespace with nothing routed out (examroom on 127.0.0.1, Janus on a veth address: both delivered over lo)"
  echo "- server-added latency = one-way latency through the server minus that of two peers connected directly in the same run, per percentile"
  echo
  cat "$rows"
  ratios
} > "$report"
cat "$report"
