#!/usr/bin/env bash
# Builds the image (deploy/Dockerfile) without a registry and runs it as deploy/kubernetes/statefulset.yaml does:
# image name, user, read-only root, capabilities, volumes, environment, probes, preStop command and grace period
# are read from the manifest and its ConfigMap. Checks the probes, a staff sign-in, the preStop drain and the
# drain on SIGTERM.   scripts/container.sh [BROKER_BINARY]   (default $EXAMROOM_BIN, else the debug build)
# Podman runs as root with its own storage in a cache outside the clone (EXAMROOM_CONTAINER_CACHE, default
# ~/.cache/examroom-container), which keeps the debootstrap'd base image. Containers see only a network namespace
# made here (never podman's bridge, which changes the host's NAT and forwarding); all is removed on exit.
set -euo pipefail

log() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
  printf '\nFAILED: %s\n' "$*" >&2
  if [ -n "${CTR:-}" ] && podman container exists "$CTR" 2>/dev/null; then
    echo "--- last log lines of $CTR:" >&2
    podman logs "$CTR" 2>&1 | tail -n 40 >&2 || true
  fi
  exit 1
}

BIN=$(realpath -m "${1:-${EXAMROOM_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/examroom-target}/debug/examroom}}")
CACHE="${EXAMROOM_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/examroom-container}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# Network namespaces, rootful podman and debootstrap need root: run again under sudo, paths resolved here.
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "run as root or install sudo"
  exec sudo env EXAMROOM_BIN="$BIN" EXAMROOM_CONTAINER_CACHE="$CACHE" "$ROOT/scripts/container.sh"
fi
[ -x "$BIN" ] || fail "no broker binary at $BIN: build it (cargo build) or pass its path"
STARTED=$SECONDS

need_apt=()
for pair in podman:podman buildah:buildah runc:runc debootstrap:debootstrap newuidmap:uidmap ip:iproute2 curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
# Debian's own python3 with its YAML module reads the manifests (not a python3 that PATH may put first).
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need_apt+=(python3 python3-yaml)
# `examroom drain` (the preStop command) works on PostgreSQL only: one runs in the pod's namespace.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
PGBIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

# Podman's configuration, all of it ours: storage in the cache, runtime state under /run. runc, because crun
# fails on the cgroup v1/hybrid hosts this runs on; explicit ulimits, because podman's defaults need
# CAP_SYS_RESOURCE; no network unless a namespace is named; logs and events in files (no journald needed).
RUNDIR=/run/examroom-container
mkdir -p "$CACHE" "$RUNDIR"
export CONTAINERS_CONF="$CACHE/containers.conf" CONTAINERS_STORAGE_CONF="$CACHE/storage.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
  "$CACHE/storage" "$RUNDIR/storage" >"$CONTAINERS_STORAGE_CONF"
cat >"$CONTAINERS_CONF" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUNDIR/libpod"
EOF

NS="examroom-ct-$$"          # the "node": a network namespace of our own (hostNetwork pods share the node's)
CTR=""                       # the container being checked (fail shows its log)
WORK=$(mktemp -d /tmp/examroom-container.XXXXXX)
PGDATA="$WORK/pg"
cleanup() {
  for c in "$NS-prestop" "$NS-sigterm"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  if [ -f "$PGDATA/postmaster.pid" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
  # --one-file-system: a failed debootstrap may leave /proc or /sys mounted in its root.
  [ -z "${ROOTFS:-}" ] || rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "base image localhost/debian-base (cached in $CACHE)"
if podman image exists localhost/debian-base; then ok "cached"; else
  # Debian bookworm, minimal, with CA certificates (so the image build needs no network), from Debian's mirror.
  ROOTFS=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  # The host's Debian release: the binary copied in needs its glibc (or a newer one).
  release=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  debootstrap --variant=minbase --include=ca-certificates "$release" "$ROOTFS" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$CACHE/debootstrap.log" 2>&1 ||
    fail "debootstrap failed (see $CACHE/debootstrap.log)"
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" --numeric-owner -c . | podman import --quiet - localhost/debian-base >/dev/null
  rm -rf --one-file-system "$ROOTFS"
  ok "made with debootstrap, ready after $((SECONDS - STARTED)) s"
fi

# The manifest, turned into what podman needs. Volumes become directories under $WORK/volumes: the ConfigMap's
# examroom.toml, the Secret's key files (generated; mode 0600 for the pod's user, as the init container leaves
# them; database-url names the PostgreSQL below) and an empty data volume owned by fsGroup.
HOST_IP=10.254.18.2          # status.hostIP: an address of the namespace, on its loopback device
POD_NAME=examroom-0
export WORK HOST_IP POD_NAME DB_URL="postgres://postgres@127.0.0.1:5432/postgres"
manifest=$(/usr/bin/python3 - <<'PY'
import os, secrets, shlex, yaml
work, host_ip, pod = os.environ["WORK"], os.environ["HOST_IP"], os.environ["POD_NAME"]
sts = yaml.safe_load(open("deploy/kubernetes/statefulset.yaml"))
cm = yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))
spec = sts["spec"]["template"]["spec"]
ctr = spec["containers"][0]
sec, psec = ctr["securityContext"], spec["securityContext"]
uid, gid = psec["runAsUser"], psec.get("fsGroup", psec["runAsGroup"])
ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
flags = ["--user", f"{uid}:{psec['runAsGroup']}"]
if sec.get("readOnlyRootFilesystem"):
    flags += ["--read-only", "--read-only-tmpfs=false"]   # as Kubernetes: no tmpfs added on /tmp or /run
if sec.get("allowPrivilegeEscalation") is False:
    flags += ["--security-opt", "no-new-privileges"]
flags += [f"--cap-drop={c}" for c in sec["capabilities"]["drop"]]
for e in ctr["env"]:
    if "value" in e:
        flags += ["--env", e["name"] + "=" + e["value"].replace("$(POD_NAME)", pod).replace("$(HOST_IP)", host_ip)]
toml = cm["data"]["examroom.toml"]
for m in ctr["volumeMounts"]:
    d = f"{work}/volumes/{m['name']}"
    os.makedirs(d, mode=0o700)
    if m["name"] == "config":
        open(f"{d}/examroom.toml", "w").write(toml)
        os.chmod(d, 0o755)
    elif m["name"] == "keys":
        for name in sorted({w.split()[0].strip('",]') for w in toml.split("/keys/")[1:]}):
            data = {"database-url": os.environ["DB_URL"].encode(),
                    # PKCS#8 DER of an Ed25519 key: a fixed prefix and 32 random bytes
                    "audit-signing.pk8": bytes.fromhex("302e020100300506032b657004220420")
                                         + secrets.token_bytes(32)}.get(name, secrets.token_hex(32).encode())
            with open(f"{d}/{name}", "wb") as f: f.write(data)
            os.chmod(f"{d}/{name}", 0o600); os.chown(f"{d}/{name}", uid, gid)
    os.chown(d, uid, gid)
    flags += ["-v", f"{d}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
def probe(kind):  # kubelet's httpGet of a host-network pod: the node's address, the port named
    get = ctr[kind]["httpGet"]
    return f"http://{host_ip}:{ports.get(get['port'], get['port'])}{get['path']}"
q = shlex.quote
print(f"IMAGE={q(ctr['image'])} GRACE={spec['terminationGracePeriodSeconds']} HTTP_PORT={ports['http']}")
print(f"READY_URL={q(probe('readinessProbe'))} LIVE_URL={q(probe('livenessProbe'))}")
print("POD_FLAGS=(" + " ".join(map(q, flags)) + ")")
print("PRESTOP=(" + " ".join(map(q, ctr["lifecycle"]["preStop"]["exec"]["command"])) + ")")
PY
) || fail "reading deploy/kubernetes"
eval "$manifest"
IMAGE="localhost/${IMAGE#localhost/}"
BASE="http://$HOST_IP:$HTTP_PORT"

log "image $IMAGE from deploy/Dockerfile (binary $BIN)"
# A context of its own: the binary only (the Dockerfile's build stage takes prebuilt/examroom as it is).
mkdir -p "$WORK/context/prebuilt" && cp "$BIN" "$WORK/context/prebuilt/examroom"
t=$SECONDS
podman build --quiet --pull=never --network none -f deploy/Dockerfile -t "$IMAGE" \
  --build-arg BUILD_IMAGE=localhost/debian-base --build-arg RUNTIME_IMAGE=localhost/debian-base \
  "$WORK/context" >/dev/null || fail "podman build"
podman image prune -f >/dev/null   # earlier builds' untagged images; the base stays
ok "built in $((SECONDS - t)) s, $(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) "
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = "10001:10001" ] || fail "image user is not 10001"

log "network namespace $NS (loopback and $HOST_IP) with PostgreSQL on 127.0.0.1:5432"
ip netns add "$NS" && ip -n "$NS" link set lo up && ip -n "$NS" addr add "$HOST_IP/32" dev lo
mkdir -m 0700 "$PGDATA" && chown postgres "$PGDATA" && chmod 0755 "$WORK"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" --auth=trust -U postgres >/dev/null
ip netns exec "$NS" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/server.log" \
  -o "-p 5432 -k $PGDATA -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || fail "PostgreSQL"
ok "ready"

# A pod of the StatefulSet, running the demo (`dev`: the development OpenID provider and demo users, so a real
# sign-in is possible) instead of `serve`. dev takes the pod's environment like serve; the two extra variables
# point it at the database and cluster key the ConfigMap names, which the preStop command reads.
start_pod() {
  CTR="$NS-$1"
  podman run -d --name "$CTR" --network "ns:/run/netns/$NS" "${POD_FLAGS[@]}" \
    --env EXAMROOM_DATABASE__URL_FILE=/keys/database-url --env EXAMROOM_CLUSTER__KEY_FILE=/keys/cluster.key \
    "$IMAGE" dev --data-dir /var/lib/examroom --public-url "$BASE" >/dev/null || fail "podman run"
  local t=$SECONDS
  for url in "$READY_URL" "$LIVE_URL"; do
    until [ "$(http -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ]; do
      [ "$(podman inspect --format '{{.State.Running}}' "$CTR")" = true ] || fail "the broker exited"
      [ $((SECONDS - t)) -lt 60 ] || fail "$url not 200 after 60 s"
      sleep 0.5
    done
    ok "$url 200 after $((SECONDS - t)) s"
  done
}
# Fails unless the broker's log has each line given (read whole: `grep -q` on a pipe trips pipefail).
broker_logged() {
  podman logs "$CTR" >"$WORK/broker.log" 2>&1
  for line in "$@"; do grep -qF "$line" "$WORK/broker.log" || fail "no '$line' in the broker's log"; done
}
http() { ip netns exec "$NS" curl -sS --max-time 10 "$@"; }
# The container's exit status, once it has stopped within the pod's grace period.
exit_code() {
  timeout "$GRACE" podman wait "$CTR" >/dev/null || fail "$CTR still running after $GRACE s"
  podman inspect --format '{{.State.ExitCode}}' "$CTR"
}

log "pod 1: read-only, non-root, no capabilities, in $NS: probes"
start_pod prestop

# Seen from inside: the pod's user, no capabilities left, and the root file system mounted read-only.
inside=$(podman exec "$CTR" sh -c 'id -u; id -g; grep CapEff /proc/1/status | cut -f2
  awk "\$5 == \"/\" { print \$6 }" /proc/1/mountinfo | cut -d, -f1' | paste -sd' ')
[ "$inside" = "10001 10001 0000000000000000 ro" ] || fail "uid, gid, CapEff, root mount inside: $inside"
ok "inside: uid:gid 10001:10001, no capabilities, read-only root"

log "pod 1: staff sign-in (authorization code flow through the dev provider) as the demo nurse"
# The password is in the demo's credentials file on the data volume (src/dev_idp: generated per data directory).
nurse=$(/usr/bin/python3 -c '
import json, sys
u = next(u for u in json.load(open(sys.argv[1]))["users"] if u["username"] == "nurse")
print(u["password"], u["name"])' "$WORK/volumes/data/dev-idp/credentials.json") || fail "no demo credentials"
read -r NURSE_PW NURSE_NAME <<<"$nurse"
JAR="$WORK/cookies"
authorize=$(http -c "$JAR" -o /dev/null -w '%{redirect_url}' "$BASE/auth/login")
[[ $authorize == "$BASE/dev-idp/authorize?"* ]] || fail "/auth/login did not redirect to the provider: $authorize"
http "$authorize" | grep -q 'name="password"' || fail "no login form at $authorize"
# The form posts the request's parameters back (hidden fields) with the user name and password.
callback=$(http -o /dev/null -w '%{redirect_url}' --data "${authorize#*\?}" --data-urlencode username=nurse \
  --data-urlencode "password=$NURSE_PW" "$BASE/dev-idp/authorize")
[[ $callback == "$BASE/auth/callback?code="* ]] || fail "the provider refused the sign-in: $callback"
http -b "$JAR" -c "$JAR" -o /dev/null "$callback"
grep -q examroom "$JAR" || fail "no session cookie after $callback"
me=$(http -b "$JAR" "$BASE/api/v1/me")
/usr/bin/python3 -c 'import json, sys; m = json.loads(sys.argv[1]); sys.exit(not (m["roles"] == ["nurse"]
  and m["display_name"] == sys.argv[2]))' "$me" "$NURSE_NAME" || fail "/api/v1/me: $me"
ok "/api/v1/me: $me"

log "pod 1: the preStop command: ${PRESTOP[*]}"
t=$SECONDS rc=0
podman exec "$CTR" "${PRESTOP[@]}" >"$WORK/prestop.out" 2>&1 || rc=$?
sed 's/^/   | /' "$WORK/prestop.out"
exit_code >"$WORK/code"; code=$(cat "$WORK/code")
[ "$code" = 0 ] || fail "the broker exited with status $code after the preStop drain"
broker_logged "drain requested by \`examroom drain\`" 'drained: no live visits'
ok "the broker drained, left the cluster and exited 0 in $((SECONDS - t)) s (grace period $GRACE s)"
# The hook runs inside the container and dies with the broker: the broker lingers a moment after leaving the
# cluster when `examroom drain` asked (src/lib.rs), so the command sees it leave and returns 0, and kubelet
# records no FailedPreStopHook.
[ "$rc" = 0 ] || fail "the preStop command failed with status $rc"
grep -q "$POD_NAME: left the cluster" "$WORK/prestop.out" || fail "the preStop command did not see $POD_NAME leave"
ok "the preStop command returned 0 once $POD_NAME had left the cluster"

log "pod 2: the same volume and node restarted; podman stop (SIGTERM, grace period $GRACE s)"
start_pod sigterm
t=$SECONDS
podman stop --time "$GRACE" "$CTR" >/dev/null
exit_code >"$WORK/code"; code=$(cat "$WORK/code")
[ "$code" = 0 ] || fail "the broker exited with status $code on SIGTERM"
broker_logged 'stop requested: draining' 'drained: no live visits'
[ $((SECONDS - t)) -lt "$GRACE" ] || fail "SIGTERM took the whole grace period"
ok "drained and exited 0 in $((SECONDS - t)) s"

log "all container checks passed in $((SECONDS - STARTED)) s"
