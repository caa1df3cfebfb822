#!/usr/bin/env bash
# soak.sh: build livechatd and livechat-bench, start the daemon on free
# loopback ports with a soak-friendly config, run `livechat-bench soak`
# against it, and tear everything down.
#
# Usage: scripts/soak.sh [DURATION] [CLIENTS] [-- EXTRA_SOAK_FLAGS...]
#   DURATION  how long clients churn (default 1h)
#   CLIENTS   clients at once (default 5000)
#   e.g. scripts/soak.sh 2m 500
#        scripts/soak.sh 10m 1000 -- -rooms 50 -think 1s
#
# The daemon keeps accounts in memory, exempts loopback from the per-address
# connection limits (the tool also spreads its connections over
# 127.0.0.2..17 so no source runs out of ports), keeps flood control at its
# defaults (the clients pace themselves), drops empty rooms after 10s so
# their history is released before the end-of-run check, and serves
# /debug/pprof so the tool can force a GC before comparing the heap with
# its baseline. The daemon's log is kept in the work dir (printed at the
# end). Exit status: the tool's (1 on any violation).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-1h}
clients=${2:-5000}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
extra=("$@")

work=$(mktemp -d /tmp/livechat-soak.XXXXXX)
echo "soak: work dir $work"
go build -o "$work/livechatd" ./cmd/livechatd
go build -o "$work/livechat-bench" ./cmd/livechat-bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)

cat >"$work/livechatd.yaml" <<YAML
listen:
  tcp: 127.0.0.1:$port
metrics:
  listen: 127.0.0.1:$mport
  pprof: true
log:
  level: warn
data_dir: $work/data
limits:
  max_clients: $(( clients * 2 + 100 ))
  exempt: ["127.0.0.0/8"]
rooms:
  idle_ttl: 10s
accounts:
  store: memory
YAML

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$work/livechatd" --config "$work/livechatd.yaml" >"$work/livechatd.log" 2>&1 &
daemon=$!
cleanup() {
  if kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon"
    wait "$daemon" || true
  fi
}
trap cleanup EXIT

for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || { echo "soak: livechatd exited:"; cat "$work/livechatd.log"; exit 1; }
  sleep 0.1
done

set +e
"$work/livechat-bench" soak -addr "127.0.0.1:$port" -metrics "http://127.0.0.1:$mport/metrics" \
  -clients "$clients" -duration "$duration" -pid "$daemon" "${extra[@]}"
rc=$?
set -e
echo "soak: exit $rc; daemon log $work/livechatd.log ($(wc -l <"$work/livechatd.log") lines)"
exit $rc
