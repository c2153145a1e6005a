#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need (Debian packages, npm
# packages), starts a throw-away PostgreSQL cluster on loopback, then runs formatting, lint, unit and
# integration tests. Every server it starts is stopped by the PID or data directory it created.
# With arguments (`./scripts/test.sh nat video`), the same environment runs only the tests whose names match
# them (passed to the test harness), without the format, lint and README steps.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n== %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/turnserver ] || need_apt+=(coturn)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# moto runs in a virtualenv: Debian's python3 needs python3-venv for that.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The NAT test routes between network namespaces with nftables.
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# The cluster tests put three brokers behind HAProxy.
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# TURN over TLS: Chromium trusts the test CA through an NSS database made with certutil.
command -v certutil >/dev/null 2>&1 || need_apt+=(libnss3-tools)
# The recording's seek test decodes every video track from several points with ffmpeg.
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# S3-compatible servers for the object-store tests, cached beside the build (outside the clone when
# CARGO_TARGET_DIR points there): moto[server] in a virtualenv, s3s-fs built by cargo install.
TOOLS="${TEST_TOOLS_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/test-tools}"
mkdir -p "$TOOLS"
if [ ! -x "$TOOLS/moto/bin/moto_server" ]; then
  log "installing moto[server] (pip, into $TOOLS/moto)"
  python3 -m venv "$TOOLS/moto"
  "$TOOLS/moto/bin/pip" install -q 'moto[server]==5.*'
fi
if [ ! -x "$TOOLS/s3s/bin/s3s-fs" ]; then
  log "installing s3s-fs 0.14.1 (cargo install, into $TOOLS/s3s)"
  cargo install s3s-fs@0.14.1 --features binary --locked --root "$TOOLS/s3s"
fi
# schemathesis checks the OpenAPI document against a live broker (tests/integration/api_conformance.rs). Pinned
# with the hypothesis it was checked with (newer hypothesis releases break schemathesis 3's generators).
if [ ! -x "$TOOLS/schemathesis-3.39.16/bin/schemathesis" ]; then
  log "installing schemathesis 3.39.16 (pip, into $TOOLS/schemathesis-3.39.16)"
  python3 -m venv "$TOOLS/schemathesis-3.39.16"
  "$TOOLS/schemathesis-3.39.16/bin/pip" install -q 'schemathesis==3.39.16' 'hypothesis==6.124.9'
fi
export TEST_SCHEMATHESIS="$TOOLS/schemathesis-3.39.16/bin/schemathesis"
export TEST_MOTO_SERVER="$TOOLS/moto/bin/moto_server"
export TEST_S3S_FS="$TOOLS/s3s/bin/s3s-fs"
export TEST_REQUIRE_S3=1

log "installing npm packages (oidc-provider, playwright-core, axe-core; no browser download)"
(cd tests/support && npm ci --no-audit --no-fund --loglevel=error)

# Throw-away PostgreSQL cluster on loopback (scripts/postgres.sh), stopped by its data directory on exit.
source scripts/postgres.sh
trap stop_postgres EXIT
log "starting PostgreSQL"
# Two tests at a time, each with up to three brokers (and the cluster tests' helpers) of up to ten
# connections: above the default 100 when a test's brokers overlap with the previous test's shutting down.
PG_EXTRA_OPTIONS="${PG_EXTRA_OPTIONS:-} -c max_connections=200" start_postgres
export TEST_POSTGRES_URL="$POSTGRES_URL"
# The same cluster over its Unix socket, which a broker inside a network namespace reaches too.
export TEST_POSTGRES_SOCKET_DIR="$PGDATA"
export TEST_REQUIRE_POSTGRES=1
export TEST_REQUIRE_BROWSER=1
export TEST_ARTIFACTS="$ROOT/target/test-artifacts"
export TEST_OIDC_PROVIDER_DIR="$ROOT/tests/support"

export CARGO_TERM_COLOR=never
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# What the PostgreSQL run covers: every test whose broker keeps state, except the media path under a shaped
# network (drops, loss, firewall: what they measure never reaches the database) and the restore drill (a
# SQLite backup); the others test configuration, the command line, the sources, or run on both already.
PG_SUITE="chat:: video:: video_signaling:: recording_peers:: reports:: retention:: retention_phi:: siem:: sessions:: limits:: \
break_glass:: authorization:: cross_site:: media_peers:: crash:: phi_scan:: browser:: external_oidc:: nat:: s3:: keys:: \
emergency:: preview:: wrap_up:: supervision:: transfer:: presence:: audit_export:: browser_offers:: visit_controls::"
# The upgrade test runs the previous release beside this tree: built once into the cache (minutes the first time).
log "the previous release's broker (deploy/previous-release)"
TEST_PREVIOUS_RELEASE_BIN="$(./scripts/previous-release.sh)"
export TEST_PREVIOUS_RELEASE_BIN TEST_REQUIRE_PREVIOUS_RELEASE=1
if [ "${TEST_DATABASE:-}" = postgres ] && [ $# -gt 0 ]; then
  log "cargo test on PostgreSQL (only: $*)"
  cargo test --locked --all-features --test integration -- --test-threads=2 "$@"
  exit 0
fi
if [ $# -gt 0 ]; then
  log "cargo test (only: $*)"
  cargo test --locked --all-targets --all-features -- --test-threads=2 "$@"
  exit 0
fi
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --all-targets --all-features --locked -- -D warnings
log "alert rules and dashboard (promtool check and test; the dashboard is JSON)"
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' deploy/grafana/examroom.json
log "Kubernetes manifests (kubernetes-validate --strict)"
if [ ! -x "$TOOLS/kubernetes-validate/bin/kubernetes-validate" ]; then
  python3 -m venv "$TOOLS/kubernetes-validate"
  "$TOOLS/kubernetes-validate/bin/pip" install -q kubernetes-validate
fi
(cd deploy/kubernetes && "$TOOLS/kubernetes-validate/bin/kubernetes-validate" --strict \
  $(ls *.yaml | grep -v '^kustomization.yaml$'))
log "cargo test"
cargo test --locked --all-targets --all-features -- --test-threads=2
log "the container image, run as the StatefulSet runs it (scripts/container.sh)"
./scripts/container.sh "${CARGO_TARGET_DIR:-$ROOT/target}/debug/examroom"
log "the integration suite again, every broker on PostgreSQL"
TEST_DATABASE=postgres cargo test --locked --all-features --test integration -- --test-threads=2 $PG_SUITE
# After the tests, so nothing waits on the build lock (it rebuilds the crate without the load-tools feature).
log "the README's first command, as written"
./scripts/check-readme.sh
log "all tests passed"
