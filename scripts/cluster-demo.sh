#!/usr/bin/env bash
# cluster-demo.sh: a livechat cluster on one machine. Starts a NATS
# JetStream cluster of three servers (or one) and three livechatd nodes
# (or N) on loopback, prints how to connect to each node, and stops
# everything on Ctrl-C. docs/CLUSTER.md, "Three nodes on one machine".
#
# Usage: scripts/cluster-demo.sh [options]
#   --livechat-nodes N  livechatd nodes (default 3)
#   --nats-nodes 1|3    NATS servers (default 3); JetStream replicas follow
#                       (3 on three servers, 1 on one)
#   --lease-ttl DUR     cluster.lease_ttl: a dead node's users QUIT within
#                       about this (whole seconds, default 5s)
#   --dir DIR           state and logs (default: a new /tmp/livechat-cluster.*,
#                       kept afterwards). Running again on the same DIR keeps
#                       the NATS stores: accounts, rooms and history survive.
#   --free-ports        any free loopback ports instead of the fixed ones
#                       below (a busy machine, tests)
#   --background        start everything, write DIR/cluster.env, and return
#                       (the processes keep running; stop them with --stop)
#   --stop              stop what a --background run started in --dir DIR
#   --livechatd FILE    use this livechatd instead of building ./cmd/livechatd
#   --nats-server FILE  use this nats-server (default: built from the version
#                       in go.mod through the Go module proxy, else Debian's
#                       /usr/bin/nats-server)
#   --nats-host ADDR    the local address NATS listens on (clients, routes,
#                       monitoring) and the nodes connect to (default
#                       127.0.0.1; scripts/partition-test.sh gives another,
#                       one a network namespace can reach)
#
# Fixed ports, node K = 1, 2, 3...: IRC 6666+K, chat page 8079+K, metrics
# 9666+K; NATS server K: clients 4221+K, routes 6221+K, monitoring 8221+K.
#
# Each process has a directory DIR/node-K or DIR/nats-K with its log, its
# pid file and run.sh, the exact command that starts it again: kill a node
# (kill -9 $(cat DIR/node-2/pid)) and bring it back (DIR/node-2/run.sh &)
# to watch the others cope. DIR/cluster.env lists every address and pid in
# shell syntax. Only processes started here are ever signalled: by the pid
# their run.sh wrote, after checking it still runs this DIR's binary.
# LIVECHAT_* variables in the environment (of this script, or of a run.sh)
# reach the nodes: LIVECHAT_LOG_LEVEL=debug scripts/cluster-demo.sh.
# Exit status: 0, or 1 with the reason when something does not come up.
set -euo pipefail
cd "$(dirname "$0")/.."

lc_nodes=3
nats_nodes=3
lease_ttl=5s
dir=""
free_ports=0
background=0
stop_only=0
livechatd=""
nats_server=""
nh=127.0.0.1
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "cluster-demo: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case $1 in
    --livechat-nodes) lc_nodes=${2:?}; shift 2 ;;
    --nats-nodes) nats_nodes=${2:?}; shift 2 ;;
    --lease-ttl) lease_ttl=${2:?}; shift 2 ;;
    --dir) dir=${2:?}; shift 2 ;;
    --free-ports) free_ports=1; shift ;;
    --background) background=1; shift ;;
    --stop) stop_only=1; shift ;;
    --livechatd) livechatd=${2:?}; shift 2 ;;
    --nats-server) nats_server=${2:?}; shift 2 ;;
    --nats-host) nh=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo >&2; die "unknown option $1" ;;
  esac
done
case $lc_nodes in ''|*[!0-9]*|0) die "--livechat-nodes wants a number from 1 (got $lc_nodes)" ;; esac
case $nats_nodes in 1|3) ;; *) die "--nats-nodes is 1 or 3 (got $nats_nodes)" ;; esac
case $lease_ttl in *[0-9]s) ;; *) die "--lease-ttl is whole seconds such as 5s (got $lease_ttl)" ;; esac

# ---- stopping -------------------------------------------------------------

# ours PIDFILE: the pid in PIDFILE if that process still runs a binary of
# DIR (so a recycled pid is never signalled), else nothing.
ours() {
  local pid exe
  [ -f "$1" ] || return 0
  pid=$(cat "$1" 2>/dev/null) || return 0
  case $pid in ''|*[!0-9]*) return 0 ;; esac
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 0
  case $exe in "$dir"/bin/*|"$livechatd"|"$nats_server") echo "$pid" ;; esac
}

# running PID: the process exists and is no zombie (one whose parent, such
# as a test that ran run.sh itself, has not collected it yet).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# stop_group NAME...: SIGTERM to each process, then up to 15 s for all of
# them to exit, then SIGKILL for any left.
stop_group() {
  local name pid pids=()
  for name in "$@"; do
    pid=$(ours "$dir/$name/pid")
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for _ in $(seq 150); do
    local alive=0
    for pid in "${pids[@]}"; do running "$pid" && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    running "$pid" && { echo "cluster-demo: pid $pid ignored SIGTERM for 15s; SIGKILL" >&2; kill -KILL "$pid" 2>/dev/null; }
  done
  return 0
}

# stop_all: livechat nodes first (their users are told, their nicks and
# rooms released while NATS is still there), then NATS.
stop_all() {
  local names=() n
  for n in "$dir"/node-*/; do [ -d "$n" ] && names+=("$(basename "$n")"); done
  [ ${#names[@]} -gt 0 ] && stop_group "${names[@]}"
  names=()
  for n in "$dir"/nats-*/; do [ -d "$n" ] && names+=("$(basename "$n")"); done
  [ ${#names[@]} -gt 0 ] && stop_group "${names[@]}"
  return 0
}

if [ $stop_only = 1 ]; then
  [ -n "$dir" ] || die "--stop needs --dir DIR"
  dir=$(cd "$dir" && pwd) || die "no directory $dir"
  [ -f "$dir/cluster.env" ] && . "$dir/cluster.env" && livechatd=${LIVECHATD:-} nats_server=${NATS_SERVER:-}
  stop_all
  echo "cluster-demo: stopped the processes of $dir"
  exit 0
fi

# ---- ports ----------------------------------------------------------------

# in_use HOST PORT: something accepts connections on HOST:PORT.
in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

taken=" "
# Free ports come from below the kernel's ephemeral range, so that no
# outgoing connection (the NATS routes' own) takes one between the pick
# and the bind.
read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph_lo=32768
free_lo=10000 free_hi=$(( eph_lo > 20000 ? eph_lo : 65535 ))
[ "$free_hi" = 65535 ] && free_lo=61000
# port HOST FIXED: sets $p to FIXED, or with --free-ports to a random
# port free on HOST and not yet handed out. (Not in a $(...) subshell: it
# keeps $taken.)
port() {
  local host=$1
  p=$2
  if [ $free_ports = 1 ]; then
    for _ in $(seq 200); do
      p=$(( free_lo + RANDOM % (free_hi - free_lo) ))
      case $taken in *" $p "*) continue ;; esac
      in_use "$host" "$p" || break
    done
  elif in_use "$host" "$p"; then
    die "port $p is in use (another demo still running?); stop it or use --free-ports"
  fi
  taken="$taken$p "
}

# http_status HOST PORT PATH: the HTTP status of GET http://HOST:PORT/PATH,
# with bash alone (no curl needed).
http_status() {
  local code=""
  exec 3<>"/dev/tcp/$1/$2" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3
  read -r -t 5 _ code _ <&3 || true
  exec 3<&- 3>&-
  echo "$code"
}

# ---- binaries -------------------------------------------------------------

if [ -z "$dir" ]; then
  dir=$(mktemp -d /tmp/livechat-cluster.XXXXXX)
else
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
fi
mkdir -p "$dir/bin"

if [ -z "$livechatd" ]; then
  echo "cluster-demo: building livechatd"
  go build -o "$dir/bin/livechatd" ./cmd/livechatd || die "go build ./cmd/livechatd failed"
  livechatd=$dir/bin/livechatd
fi
if [ -z "$nats_server" ]; then
  # The version go.mod requires (the one the tests embed), built from the
  # module cache or the Go module proxy.
  echo "cluster-demo: building nats-server $(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2 2>/dev/null)"
  if go build -o "$dir/bin/nats-server" github.com/nats-io/nats-server/v2 2>"$dir/bin/nats-build.log"; then
    nats_server=$dir/bin/nats-server
  elif [ -x /usr/bin/nats-server ]; then
    echo "cluster-demo: could not build it ($dir/bin/nats-build.log); using Debian's /usr/bin/nats-server"
    nats_server=/usr/bin/nats-server
  else
    cat "$dir/bin/nats-build.log" >&2
    die "no nats-server: building it failed and /usr/bin/nats-server is absent (apt-get install nats-server, or --nats-server FILE)"
  fi
fi
livechatd=$(readlink -f "$livechatd")
nats_server=$(readlink -f "$nats_server")
[ -x "$livechatd" ] || die "$livechatd is not an executable"
[ -x "$nats_server" ] || die "$nats_server is not an executable"
for n in "$dir"/node-* "$dir"/nats-*; do
  [ -d "$n" ] || continue
  pid=$(ours "$n/pid")
  [ -z "$pid" ] || die "$n still runs (pid $pid); stop it first: $0 --stop --dir $dir"
done
# JetStream remembers its peers: stores made by three servers do not come
# up under one, nor the reverse.
if [ -f "$dir/nats-nodes" ] && [ "$(cat "$dir/nats-nodes")" != "$nats_nodes" ]; then
  die "$dir holds the stores of $(cat "$dir/nats-nodes") NATS server(s); use --nats-nodes $(cat "$dir/nats-nodes") or another --dir"
fi
echo "$nats_nodes" >"$dir/nats-nodes"
# A cluster name of this DIR's own: two demos on one machine can never
# join each other's NATS cluster, even through a mix-up of ports.
[ -s "$dir/nats-cluster-name" ] || echo "livechat-demo-$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')" >"$dir/nats-cluster-name"

# ---- starting -------------------------------------------------------------

keep=0 # set once a --background start is complete
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ $keep = 0 ]; then
    echo
    echo "cluster-demo: stopping (livechat nodes, then NATS)"
    stop_all
    echo "cluster-demo: stopped; state and logs stay in $dir"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

detach=()
command -v setsid >/dev/null && detach=(setsid) # Ctrl-C reaches only this script, which stops the nodes in order

# launch NAME: runs DIR/NAME/run.sh in the background and waits for the
# pid it writes.
launch() {
  rm -f "$dir/$1/pid"
  "${detach[@]}" "$dir/$1/run.sh" </dev/null >/dev/null 2>&1 &
  for _ in $(seq 100); do
    [ -s "$dir/$1/pid" ] && return 0
    sleep 0.05
  done
  die "$1 did not start (see $dir/$1/run.sh)"
}

# listens_on PID PORT: PID listens on 127.0.0.1:PORT (a port picked as
# free may have been taken by another program before ours bound it: its
# answers must not pass for ours). Assumed when ss is missing.
listens_on() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "( sport = :$2 )" 2>/dev/null | grep -q "pid=$1,"
}

# wait_http NAME HOST PORT PATH WHAT LOG: up to 60 s for NAME's process
# to answer 200 to GET PATH, failing with the end of its log if it dies or
# time runs out.
wait_http() {
  local name=$1 host=$2 port=$3 path=$4 what=$5 log=$6 code="" pid
  for _ in $(seq 600); do
    pid=$(ours "$dir/$name/pid")
    if [ -z "$pid" ]; then
      tail -n 20 "$dir/$name/$log" >&2 || true
      die "$name exited before $what (log: $dir/$name/$log)"
    fi
    code=$(http_status "$host" "$port" "$path" 2>/dev/null) || code=""
    [ "$code" = 200 ] && listens_on "$pid" "$port" && return 0
    sleep 0.1
  done
  tail -n 20 "$dir/$name/$log" >&2 || true
  die "$name: no $what within 60s (last answer: ${code:-none}; log: $dir/$name/$log)"
}

# NATS servers: JetStream on file storage, one cluster if there are three.
declare -a nats_client nats_route nats_mon
for k in $(seq "$nats_nodes"); do
  port "$nh" $((4221 + k)); nats_client[$k]=$p
  port "$nh" $((6221 + k)); nats_route[$k]=$p
  port "$nh" $((8221 + k)); nats_mon[$k]=$p
done
nats_urls=""
for k in $(seq "$nats_nodes"); do nats_urls="${nats_urls:+$nats_urls,}nats://$nh:${nats_client[$k]}"; done
replicas=$nats_nodes
for k in $(seq "$nats_nodes"); do
  d=$dir/nats-$k
  mkdir -p "$d/store"
  cluster=()
  if [ "$nats_nodes" -gt 1 ]; then
    routes=""
    for j in $(seq "$nats_nodes"); do
      [ "$j" = "$k" ] || routes="${routes:+$routes,}nats://$nh:${nats_route[$j]}"
    done
    cluster=(--cluster_name "$(cat "$dir/nats-cluster-name")" --cluster "nats://$nh:${nats_route[$k]}" --routes "$routes")
  fi
  {
    echo '#!/usr/bin/env bash'
    echo "# NATS server $k of the livechat demo; writes its pid, logs to nats.log."
    echo "echo \$\$ >$(printf %q "$d/pid")"
    printf 'exec %q' "$nats_server"
    printf ' %q' --server_name "nats-$k" -a "$nh" -p "${nats_client[$k]}" -m "${nats_mon[$k]}" \
      -js -sd "$d/store" "${cluster[@]}"
    printf ' >>%q 2>&1\n' "$d/nats.log"
  } >"$d/run.sh"
  chmod +x "$d/run.sh"
  echo "cluster-demo: starting NATS server $k of $nats_nodes (log $d/nats.log)"
  launch "nats-$k"
done
for k in $(seq "$nats_nodes"); do
  # /healthz is 200 once JetStream is up and, on a cluster, has a leader.
  wait_http "nats-$k" "$nh" "${nats_mon[$k]}" /healthz "JetStream ready" nats.log
done

# The cloak key must be the same on every node (a ban on a cloak holds on
# all of them); kept in DIR so cloaks stay the same across runs.
[ -s "$dir/cloak.secret" ] || od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$dir/cloak.secret"
declare -a lc_irc lc_ws lc_metrics
for k in $(seq "$lc_nodes"); do
  port 127.0.0.1 $((6666 + k)); lc_irc[$k]=$p
  port 127.0.0.1 $((8079 + k)); lc_ws[$k]=$p
  port 127.0.0.1 $((9666 + k)); lc_metrics[$k]=$p
done
for k in $(seq "$lc_nodes"); do
  d=$dir/node-$k
  mkdir -p "$d/data"
  {
    echo '#!/usr/bin/env bash'
    echo "# livechat node $k of the demo; writes its pid, logs (JSON) to livechatd.log."
    echo "echo \$\$ >$(printf %q "$d/pid")"
    printf 'exec env'
    printf ' %q' "LIVECHAT_CLUSTER_NATS_URLS=$nats_urls" "LIVECHAT_CLUSTER_NODE_NAME=node-$k" \
      "LIVECHAT_CLUSTER_LEASE_TTL=$lease_ttl" "LIVECHAT_CLUSTER_REPLICAS=$replicas" \
      "LIVECHAT_CLOAK_SECRET=$(cat "$dir/cloak.secret")" LIVECHAT_LOG_FORMAT=json \
      "$livechatd" --listen "127.0.0.1:${lc_irc[$k]}" --ws-listen "127.0.0.1:${lc_ws[$k]}" \
      --metrics-listen "127.0.0.1:${lc_metrics[$k]}" --data-dir "$d/data"
    printf ' >>%q 2>&1\n' "$d/livechatd.log"
  } >"$d/run.sh"
  chmod +x "$d/run.sh"
  # One after the other: the first creates the streams and buckets.
  echo "cluster-demo: starting livechat node-$k (log $d/livechatd.log)"
  launch "node-$k"
  wait_http "node-$k" 127.0.0.1 "${lc_metrics[$k]}" /readyz "/readyz 200 (joined the cluster)" livechatd.log
done

{
  echo "# The livechat demo cluster in $dir (scripts/cluster-demo.sh); shell syntax."
  printf 'LIVECHATD=%q\nNATS_SERVER=%q\nNATS_URLS="%s"\nNATS_NODES=%s\nLIVECHAT_NODES=%s\nLEASE_TTL=%s\nREPLICAS=%s\n' \
    "$livechatd" "$nats_server" "$nats_urls" "$nats_nodes" "$lc_nodes" "$lease_ttl" "$replicas"
  for k in $(seq "$nats_nodes"); do
    echo "NATS${k}_MONITOR=$nh:${nats_mon[$k]}"
    echo "NATS${k}_PID=$(cat "$dir/nats-$k/pid")"
  done
  for k in $(seq "$lc_nodes"); do
    echo "NODE${k}_IRC=127.0.0.1:${lc_irc[$k]}"
    echo "NODE${k}_WEB=127.0.0.1:${lc_ws[$k]}"
    echo "NODE${k}_METRICS=127.0.0.1:${lc_metrics[$k]}"
    echo "NODE${k}_PID=$(cat "$dir/node-$k/pid")"
  done
} >"$dir/cluster.env"

cat <<EOF

livechat cluster up: $nats_nodes NATS server(s) with JetStream (replicas $replicas), $lc_nodes livechatd node(s), lease_ttl $lease_ttl.
State and logs: $dir   (addresses and pids: $dir/cluster.env)

EOF
for k in $(seq "$lc_nodes"); do
  printf '  node-%s  terminal: nc 127.0.0.1 %s   IRC client: 127.0.0.1:%s   browser: http://127.0.0.1:%s/\n' \
    "$k" "${lc_irc[$k]}" "${lc_irc[$k]}" "${lc_ws[$k]}"
  printf '          metrics: http://127.0.0.1:%s/metrics   log: %s\n' "${lc_metrics[$k]}" "$dir/node-$k/livechatd.log"
done
cat <<EOF

Try: connect to node-1 and node-2 with different nicks, /join #demo on both, and talk.
Kill a node:    kill -9 \$(cat $dir/node-2/pid)   (its users QUIT "node lost" within about $lease_ttl)
Bring it back:  $dir/node-2/run.sh &
Rolling restart: kill \$(cat $dir/node-1/pid), then $dir/node-1/run.sh &, wait for
  http://127.0.0.1:${lc_metrics[1]}/readyz to answer 200, then the next node.
EOF

if [ $background = 1 ]; then
  keep=1
  echo "Stop everything: $0 --stop --dir $dir"
  exit 0
fi
echo "Ctrl-C stops everything."
while sleep 1; do :; done
