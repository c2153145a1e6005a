# A throw-away PostgreSQL cluster on loopback for the test suite and the benchmarks, sourced by them:
# `start_postgres` sets PGDATA (also its Unix socket's directory), PGPORT and POSTGRES_URL; `stop_postgres`
# stops it by its data directory and removes it. initdb refuses to run as root, so as root the cluster is
# owned by the postgres user.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_postgres() {
  PGDATA=$(mktemp -d /tmp/examroom-pg.XXXXXX)
  PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$PGDATA"; fi
  as_pg "$PGBIN/initdb" -D "$PGDATA" --auth=trust -U postgres >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/server.log" \
    -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c fsync=off ${PG_EXTRA_OPTIONS:-}" start >/dev/null
  POSTGRES_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
}
stop_postgres() {
  if [ -n "${PGDATA:-}" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PGDATA"
  fi
}
