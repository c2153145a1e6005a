#!/usr/bin/env bash
# Chat load benchmark: builds the broker in release mode and runs tools/chat_load.rs — one broker on SQLite at
# 1,000 and 10,000 patient sockets, then one broker and three brokers behind HAProxy on a throw-away
# PostgreSQL at the same offered load — writing a Markdown report (default target/bench-chat.md). Not part of
# the test suite; CI runs a smoke version (tests/integration/load_smoke.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release --features load-tools --bin examroom --bin examroom-chat-load
bin="${CARGO_TARGET_DIR:-target}/release"
report=${1:-target/bench-chat.md}
source scripts/postgres.sh
PG_EXTRA_OPTIONS="-c max_connections=200"
start_postgres
trap stop_postgres EXIT
fresh_db() {
  local name="bench_$RANDOM$RANDOM"
  psql "$POSTGRES_URL" -qc "CREATE DATABASE $name" >/dev/null
  echo "postgres://postgres@127.0.0.1:$PGPORT/$name"
}
load() { "$bin/examroom-chat-load" --broker "$bin/examroom" "$@"; }
{
  echo "Chat load, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores, $(uname -m)"
  echo
  load --patients 1000 --nurses 2 --messages 3 --interval-ms 1000
  load --patients 10000 --nurses 2 --messages 3 --interval-ms 1000 --no-header
  echo
  echo "One broker and three behind HAProxy on PostgreSQL, each patient one message every 5 s:"
  echo
  load --patients "${CLUSTER_PATIENTS:-3000}" --nurses 2 --messages 3 --interval-ms 5000 --database "$(fresh_db)"
  load --patients "${CLUSTER_PATIENTS:-3000}" --nurses 2 --messages 3 --interval-ms 5000 --no-header \
    --nodes 3 --database "$(fresh_db)"
} | tee "$report"
