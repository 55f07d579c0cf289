#!/usr/bin/env bash
# The cluster example on one host, without docker compose: ingest-1 (active), ingest-2 (hot
# standby), edge-1 and edge-2, each its own process, port and data directory under ./data.
# Needs NATS with JetStream on 127.0.0.1:4222, Redis on 6379 and PostgreSQL on 5432 (user
# postgres, database tickgate: created here if createdb is installed). Ctrl-C stops them all.
#
#   examples/cluster/run.sh            # builds target/release/tickgate if it is missing
#   TICKGATE_BIN=/path/to/tickgate examples/cluster/run.sh
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
bin=${TICKGATE_BIN:-$root/target/release/tickgate}
if [ ! -x "$bin" ]; then
    echo "building $bin (cargo build --release -p tickgate)"
    (cd "$root" && cargo build --release -p tickgate)
fi
# (Environment overrides apply to every node, e.g. TICKGATE_CLUSTER__POSTGRES_URL for another
# database, TICKGATE_CLUSTER__NATS_PREFIX for a second cluster on the same NATS.)
if [ -z "${TICKGATE_CLUSTER__POSTGRES_URL:-}" ] && command -v createdb >/dev/null; then
    createdb -h 127.0.0.1 -U postgres tickgate 2>/dev/null || true
fi
mkdir -p data logs

pids=()
stop() {
    trap - EXIT INT TERM
    echo "stopping ${pids[*]}"
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

start() {
    "$bin" serve --config "$1.toml" >"logs/$1.log" 2>&1 &
    pids+=($!)
    echo "$1: pid $!, log examples/cluster/logs/$1.log"
}

# Waits until GET $1/readyz answers 200 (30 s at most).
ready() {
    for _ in $(seq 300); do
        if curl -fs "$1/readyz" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "$1 is not ready; see logs/" >&2
    return 1
}

start ingest-1
ready http://127.0.0.1:8090   # ingest-1 holds the lease before the standby starts
start ingest-2
start edge-1
start edge-2
ready http://127.0.0.1:8091
ready http://127.0.0.1:8081
ready http://127.0.0.1:8082

# A market:read key for trying it out, made once in the shared PostgreSQL store.
if [ ! -s data/demo-token ]; then
    (umask 077 && "$bin" keys create --config edge-1.toml --name demo --scopes market:read --json \
        | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' > data/demo-token)
fi

cat <<MSG

cluster up: ingest-1 :8090 (active), ingest-2 :8091 (standby), edge-1 :8081, edge-2 :8082.
Follow a book through both edges (the client moves to the other edge if one dies):

  TICKGATE_API_KEY=\$(cat examples/cluster/data/demo-token) \\
    $bin tail --url http://127.0.0.1:8081,http://127.0.0.1:8082 book:sim:BTC-USDT

Then kill -9 edge-1 (pid ${pids[2]}) or the active ingest (pid ${pids[0]}) and watch it resume.
Ctrl-C here stops every node.
MSG
wait
