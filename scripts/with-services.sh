#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster and an S3-compatible server (moto) on
# 127.0.0.1, exporting CODEKEEP_TEST_POSTGRES, CODEKEEP_TEST_S3_ENDPOINT and
# CODEKEEP_TEST_S3_BUCKET. Both servers are stopped when the command ends, also on failure.
set -euo pipefail
venv=${VENV:-$(pwd)/.venv}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/codekeep-services.XXXXXX)
chmod 755 "$work"
moto_pid=""
as_pg() {
  # initdb and postgres refuse to run as root: use the postgres system user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] && chown postgres "$work"
pg_port=$(free_port)
as_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $pg_port -h 127.0.0.1 -k $work -c fsync=off" start >/dev/null \
  || { cat "$work/pg.log"; exit 1; }

s3_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$s3_port/" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS -X PUT "http://127.0.0.1:$s3_port/codekeep-test" >/dev/null || { cat "$work/moto.log"; exit 1; }

export CODEKEEP_TEST_POSTGRES="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
export CODEKEEP_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export CODEKEEP_TEST_S3_BUCKET=codekeep-test
export CODEKEEP_REQUIRE_SERVERS=1
echo "services: postgres on 127.0.0.1:$pg_port, s3 (moto) on 127.0.0.1:$s3_port"
"$@"
