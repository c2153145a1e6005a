#!/usr/bin/env bash
# The README's first set-up command, run exactly as written, as a newcomer would: read from the first fenced
# block of README.md, run in the checkout with its own listen address and data directory (through the
# documented environment variables, so the command itself is not edited), and accepted once `/healthz`
# answers and the demo accounts are printed. Stopped by the PID it started. A failure names the README line.
set -euo pipefail
cd "$(dirname "$0")/.."

# The first line of the first ```sh block, without its trailing comment.
line_no=$(awk '/^```sh/ { inblock = 1; next } inblock && NF { print NR; exit }' README.md)
[ -n "$line_no" ] || { echo "README.md: no \`\`\`sh block with a set-up command" >&2; exit 1; }
line=$(sed -n "${line_no}p" README.md)
command=$(printf '%s' "$line" | sed 's/[[:space:]]*#.*$//')
fail() {
  echo "README.md line $line_no: \`$command\` $1" >&2
  [ -f "$out" ] && { echo "--- what it printed:" >&2; tail -n 40 "$out" >&2; }
  exit 1
}

work=$(mktemp -d /tmp/examroom-readme.XXXXXX)
out="$work/output"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# `cargo run` replaces itself with the broker (exec), so this PID is the broker's once it starts.
EXAMROOM_SERVER__LISTEN=127.0.0.1:0 EXAMROOM_SERVER__DATA_DIR="$work/data" \
  bash -c "exec $command" >"$out" 2>&1 &
pid=$!

url=""
for _ in $(seq 1 1800); do # a cold build may come first: up to 15 minutes
  if ! kill -0 "$pid" 2>/dev/null; then fail "exited before it was running"; fi
  url=$(sed -n 's/^examroom dev is running at \(http[^ ]*\)\/$/\1/p' "$out" | head -n 1)
  if [ -n "$url" ] && grep -q '^demo accounts' "$out" && grep -q '^Stop with Ctrl-C' "$out"; then break; fi
  url=""
  sleep 0.5
done
[ -n "$url" ] || fail "printed no \"running at\" line and demo accounts within 15 minutes"
for account in patient nurse supervisor compliance; do
  grep -Eq "^  $account +$account / [^ ]+" "$out" || fail "printed no demo account \"$account\""
done
status=$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz" || true)
[ "$status" = 200 ] || fail "answers /healthz with \"$status\", not 200"
portal=$(curl -s -o /dev/null -w '%{http_code}' "$url/portal/" || true)
[ "$portal" = 200 ] || fail "answers /portal/ with \"$portal\", not 200"
echo "README.md line $line_no: \`$command\` runs: $url/healthz answers 200 and the demo accounts are printed"
