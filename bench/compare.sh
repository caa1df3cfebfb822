#!/usr/bin/env bash
# compare.sh: run the livechat-bench scenarios against livechatd, InspIRCd and
# ngIRCd on this machine (loopback only) and print medians and ratios.
#
# Usage: bench/compare.sh [options]
#   --livechatd PATH   livechatd binary (default: go build ./cmd/livechatd; if
#                      that fails, livechat is skipped with a warning)
#   --servers LIST     space/comma separated subset, in order, of:
#                      livechat inspircd ngircd   (default: all three; the first
#                      one with results is the baseline of the ratio columns)
#   --rounds N         rounds (default 3); in each round every scenario runs on
#                      every server in turn, each run on a fresh server process
#   --scenarios LIST   subset of: idle storm fanout200 fanout50x20 (default: all)
#   --out DIR          results directory (default /tmp/livechat-compare-<time>)
#   --quick            much smaller/shorter scenarios (a smoke run of the script)
#   -h, --help
# Environment: LIVECHAT_PORT (16667), LIVECHAT_METRICS_PORT (16668),
#   NGIRCD_PORT (6668), INSPIRCD_PORT (6669).
#
# Output: $OUT/results.jsonl (one line per run: the tool's JSON line plus
# "server", "round" and "script_server_cpu_seconds"), $OUT/summary.md (the
# markdown table, also printed), server logs and the tool's stderr in $OUT.
#
# The script installs the Debian packages it needs when they are missing
# (ngircd, inspircd, python3), starts every server itself in the foreground
# under a raised `ulimit -n`, and on exit stops only the processes it started.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

livechatd=""
servers="livechat inspircd ngircd"
rounds=3
scenarios="idle storm fanout200 fanout50x20"
out=""
quick=0

while [ $# -gt 0 ]; do
	case "$1" in
	--livechatd) livechatd=$2; shift 2 ;;
	--servers) servers=${2//,/ }; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--scenarios) scenarios=${2//,/ }; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

LIVECHAT_PORT=${LIVECHAT_PORT:-16667}
LIVECHAT_METRICS_PORT=${LIVECHAT_METRICS_PORT:-16668}
NGIRCD_PORT=${NGIRCD_PORT:-6668}
INSPIRCD_PORT=${INSPIRCD_PORT:-6669}

out=${out:-/tmp/livechat-compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/bin" "$out/logs" "$out/run"
results="$out/results.jsonl"
: >"$results"

log() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- processes we started, stopped on exit -------------------------------
started_pids=()
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	log "pid $pid did not stop on SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local pid
	for pid in "${started_pids[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- packages --------------------------------------------------------------
apt_updated=0
need_pkg() { # need_pkg COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "compare.sh: $1 is missing; install the Debian package $2 (as root)" >&2
		exit 1
	fi
	if [ $apt_updated = 0 ]; then
		log "apt-get update"
		apt-get update -qq >&2
		apt_updated=1
	fi
	log "installing $2"
	# policy-rc.d may refuse to start the packaged service; that is fine,
	# we start our own foreground instances.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}
need_pkg python3 python3
for s in $servers; do
	case $s in
	ngircd) need_pkg ngircd ngircd ;;
	inspircd) need_pkg inspircd inspircd ;;
	livechat) ;;
	*) echo "compare.sh: unknown server $s" >&2; exit 2 ;;
	esac
done
command -v go >/dev/null || { echo "compare.sh: go is needed to build livechat-bench" >&2; exit 1; }

# ---- binaries ----------------------------------------------------------------
log "building livechat-bench"
(cd "$repo" && go build -o "$out/bin/livechat-bench" ./cmd/livechat-bench)
bench="$out/bin/livechat-bench"

if [[ " $servers " == *" livechat "* ]]; then
	if [ -z "$livechatd" ]; then
		if (cd "$repo" && go build -o "$out/bin/livechatd" ./cmd/livechatd) 2>"$out/logs/livechatd-build.log"; then
			livechatd="$out/bin/livechatd"
		else
			log "WARNING: cannot build ./cmd/livechatd (see $out/logs/livechatd-build.log); skipping livechat"
			servers=$(echo " $servers " | sed 's/ livechat / /')
		fi
	elif [ ! -x "$livechatd" ]; then
		echo "compare.sh: --livechatd $livechatd is not an executable" >&2
		exit 2
	fi
fi
servers=$(echo $servers)
[ -n "$servers" ] || { echo "compare.sh: no server to run" >&2; exit 1; }

# ---- file descriptors --------------------------------------------------------
want_fds=65536
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $want_fds ]; then
	ulimit -Hn $want_fds 2>/dev/null || log "cannot raise the hard fd limit above $(ulimit -Hn) (no CAP_SYS_RESOURCE here)"
fi
ulimit -Sn "$(ulimit -Hn)"
log "ulimit -n is $(ulimit -n)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10300 ]; then
	log "WARNING: ulimit -n $(ulimit -n) is too low for the 10,000-connection idle scenario"
fi

# ---- servers -------------------------------------------------------------------
server_pid=""
server_addr=""
server_metrics=""

wait_port() { # wait_port PORT PID NAME: until something accepts on 127.0.0.1:PORT
	local i
	for i in $(seq 1 100); do
		kill -0 "$2" 2>/dev/null || { log "$3 exited during startup"; return 1; }
		if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	log "$3 does not listen on 127.0.0.1:$1 after 10 s"
	return 1
}

port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

start_server() { # start_server NAME ROUND
	local name=$1 round=$2 port logf="$out/logs/$1-round$2.log"
	server_metrics=""
	# Connections set up at once in the setup phases of idle and fanout (not
	# storm, whose -concurrency is part of the scenario). ngIRCd listens with
	# a backlog of 10 (hard-coded): more concurrent connects overflow its
	# accept queue, and the kernel's SYN-ACK retransmission backoff then
	# stalls connections for seconds. InspIRCd 3 completes registrations only
	# in its once-a-second background sweep, so it needs many in parallel.
	dial_conc=256
	case $name in
	ngircd)
		dial_conc=8
		port=$NGIRCD_PORT
		mkdir -p "$out/run/ngircd.conf.d"
		# an empty IncludeDir, so nothing from /etc/ngircd/ngircd.conf.d leaks in
		sed -e "s/^\(\s*Ports\s*=\s*\).*/\1$port/" \
			-e "/^\[Options\]/a\\	IncludeDir = $out/run/ngircd.conf.d" \
			"$here/ngircd.conf" >"$out/run/ngircd.conf"
		port_free "$port" || { log "port $port is busy"; return 1; }
		ngircd --nodaemon --config "$out/run/ngircd.conf" >"$logf" 2>&1 &
		;;
	inspircd)
		port=$INSPIRCD_PORT
		sed -e "s/port=\"6669\"/port=\"$port\"/" \
			-e "s#target=\"[^\"]*\"#target=\"$out/logs/inspircd-round$round.ircd.log\"#" \
			"$here/inspircd.conf" >"$out/run/inspircd.conf"
		port_free "$port" || { log "port $port is busy"; return 1; }
		inspircd --nofork --nopid --runasroot --config "$out/run/inspircd.conf" >"$logf" 2>&1 &
		;;
	livechat)
		port=$LIVECHAT_PORT
		port_free "$port" || { log "port $port is busy"; return 1; }
		port_free "$LIVECHAT_METRICS_PORT" || { log "port $LIVECHAT_METRICS_PORT is busy"; return 1; }
		# flood control, per-address and client caps lifted as for the other
		# servers (keys a given livechatd does not know are ignored);
		# everything else (sendq, history) stays at livechatd's defaults,
		# durable history included, in a data dir fresh for every run
		rm -rf "$out/run/livechat-data"
		LIVECHAT_ACCOUNTS_STORE=memory \
			LIVECHAT_DATA_DIR="$out/run/livechat-data" \
			LIVECHAT_LIMITS_MAX_CONNS_PER_IP=1000000 \
			LIVECHAT_LIMITS_CONN_RATE_PER_IP=1000000 \
			LIVECHAT_LIMITS_FLOOD_BURST=1000000 \
			LIVECHAT_LIMITS_FLOOD_RATE=1000000000 \
			LIVECHAT_LIMITS_MAX_CLIENTS=1000000 \
			LIVECHAT_LIMITS_MAX_ROOM_MEMBERS=1000000 \
			"$livechatd" --listen "127.0.0.1:$port" \
			--metrics-listen "127.0.0.1:$LIVECHAT_METRICS_PORT" >"$logf" 2>&1 &
		server_metrics="http://127.0.0.1:$LIVECHAT_METRICS_PORT/metrics"
		;;
	esac
	server_pid=$!
	started_pids+=("$server_pid")
	server_addr="127.0.0.1:$port"
	wait_port "$port" "$server_pid" "$name" || return 1
	log "$name round $round: pid $server_pid on $server_addr"
}

stop_server() {
	[ -n "$server_pid" ] && stop_pid "$server_pid"
	server_pid=""
}

# ---- scenarios -------------------------------------------------------------------
common=(-sources 16 -json-only)
dial_conc=256
if [ $quick = 1 ]; then
	idle_args=(idle -conns 500 -hold 1s -settle 500ms -timeout 60s)
	storm_args=(storm -conns 200 -concurrency 64 -timeout 60s)
	f200_args=(fanout -rooms 1 -members 200 -senders 1 -rate 0 -window 32 -warmup 1s -duration 3s -timeout 30s)
	f50_args=(fanout -rooms 10 -members 20 -senders 20 -rate 1 -warmup 1s -duration 5s -timeout 30s)
else
	idle_args=(idle -conns 10000 -hold 10s -settle 2s -timeout 180s)
	storm_args=(storm -conns 2000 -concurrency 64 -timeout 180s)
	f200_args=(fanout -rooms 1 -members 200 -senders 1 -rate 0 -window 32 -warmup 2s -duration 10s -timeout 60s)
	f50_args=(fanout -rooms 50 -members 20 -senders 20 -rate 1 -warmup 2s -duration 20s -timeout 60s)
fi

cpu_ticks() { # utime+stime of pid, in clock ticks
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

run_scenario() { # run_scenario SERVER ROUND LABEL ARGS...
	local server=$1 round=$2 label=$3
	shift 3
	local extra=(-pid "$server_pid" -dial-concurrency "$dial_conc")
	if [ "$1" = idle ] && [ -n "$server_metrics" ] && [ "${COMPARE_RSS_FROM:-proc}" = metrics ]; then
		extra=(-metrics "$server_metrics")
	fi
	kill -0 "$server_pid" 2>/dev/null || { log "$server is not running; skipping $label"; return 0; }
	log "$server round $round: $label"
	local t0 t1 line rc=0 errf="$out/logs/bench-$server-round$round-$label.err"
	t0=$(cpu_ticks "$server_pid")
	line=$("$bench" "$@" -addr "$server_addr" "${common[@]}" "${extra[@]}" 2>"$errf") || rc=$?
	t1=$(cpu_ticks "$server_pid")
	if [ -z "$line" ]; then
		log "$label on $server produced no JSON (exit $rc); see $errf"
		line='{"scenario":"'"$1"'","params":{},"results":{"error":"no output, exit '"$rc"'"}}'
	elif [ $rc != 0 ]; then
		log "$label on $server exited $rc; see $errf"
	fi
	python3 -c '
import json, sys
o = json.loads(sys.argv[1])
o = {"server": sys.argv[2], "round": int(sys.argv[3]), "label": sys.argv[4],
     "script_server_cpu_seconds": (int(sys.argv[6]) - int(sys.argv[5])) / 100.0, **o}
print(json.dumps(o, separators=(",", ":")))
' "$line" "$server" "$round" "$label" "$t0" "$t1" >>"$results"
}

# Every scenario runs on a fresh server process (a server's state after one
# scenario, e.g. ngIRCd's connection pool grown to 10,000 slots by idle,
# would otherwise slow the next one down), and the servers take turns
# scenario by scenario, so slow drifts in the machine's other load hit all
# of them alike.
for round in $(seq 1 "$rounds"); do
	for sc in $scenarios; do
		case $sc in
		idle) args=("${idle_args[@]}") ;;
		storm) args=("${storm_args[@]}") ;;
		fanout200) args=("${f200_args[@]}") ;;
		fanout50x20) args=("${f50_args[@]}") ;;
		*) log "unknown scenario $sc"; continue ;;
		esac
		for server in $servers; do
			if start_server "$server" "$round-$sc"; then
				run_scenario "$server" "$round" "$sc" "${args[@]}"
			fi
			stop_server
		done
	done
done

# ---- summary -----------------------------------------------------------------------
python3 - "$results" "$servers" >"$out/summary.md" <<'PY'
import json, statistics, sys

path, servers = sys.argv[1], sys.argv[2].split()
runs = [json.loads(l) for l in open(path) if l.strip()]

def res(r):
    return r.get("results", {})

def delivered(r):
    return res(r).get("delivered") or 0

def per_delivery_script(r):
    d = delivered(r)
    return r["script_server_cpu_seconds"] * 1e6 / d if d else None

def per_conn_script(r):
    c = res(r).get("completed") or 0
    return r["script_server_cpu_seconds"] * 1e6 / c if c else None

def lat(key, q):
    return lambda r: (res(r).get(key) or {}).get(q)

def field(k):
    return lambda r: res(r).get(k)

# (label, metric name, getter, unit, better): better is "hi" or "lo"
metrics = [
    ("fanout200", "deliveries/s", field("deliveries_per_sec"), "", "hi"),
    ("fanout200", "latency p50", lat("latency_us", "p50"), "ms", "lo"),
    ("fanout200", "latency p99", lat("latency_us", "p99"), "ms", "lo"),
    ("fanout200", "latency max", lat("latency_us", "max"), "ms", "lo"),
    ("fanout200", "server CPU/delivery, send phase", field("server_cpu_us_per_delivery"), "us", "lo"),
    ("fanout200", "server CPU/delivery, whole run", per_delivery_script, "us", "lo"),
    ("fanout200", "tool CPU/delivery", field("tool_cpu_us_per_delivery"), "us", "lo"),
    ("fanout200", "lost+order+routing", lambda r: sum(res(r).get(k) or 0 for k in ("lost", "order_violations", "routing_errors")), "", "lo"),
    ("fanout50x20", "deliveries/s", field("deliveries_per_sec"), "", "hi"),
    ("fanout50x20", "latency p50", lat("latency_us", "p50"), "ms", "lo"),
    ("fanout50x20", "latency p90", lat("latency_us", "p90"), "ms", "lo"),
    ("fanout50x20", "latency p99", lat("latency_us", "p99"), "ms", "lo"),
    ("fanout50x20", "latency p99.9", lat("latency_us", "p999"), "ms", "lo"),
    ("fanout50x20", "latency max", lat("latency_us", "max"), "ms", "lo"),
    ("fanout50x20", "server CPU/delivery, send phase", field("server_cpu_us_per_delivery"), "us", "lo"),
    ("fanout50x20", "server CPU/delivery, whole run", per_delivery_script, "us", "lo"),
    ("fanout50x20", "lost+order+routing", lambda r: sum(res(r).get(k) or 0 for k in ("lost", "order_violations", "routing_errors")), "", "lo"),
    ("idle", "RSS/conn", field("rss_per_conn_kib"), "KiB", "lo"),
    ("idle", "RSS/conn after hold", field("rss_end_per_conn_kib"), "KiB", "lo"),
    ("idle", "joined", field("joined"), "", "hi"),
    ("idle", "joins/s (setup)", field("joins_per_sec"), "", "hi"),
    ("storm", "completed/s", field("completed_per_sec"), "", "hi"),
    ("storm", "connect->366 p50", lat("connect_to_366_us", "p50"), "ms", "lo"),
    ("storm", "connect->366 p99", lat("connect_to_366_us", "p99"), "ms", "lo"),
    ("storm", "failed", field("failed"), "", "lo"),
    ("storm", "server CPU/conn", per_conn_script, "us", "lo"),
]

present = [s for s in servers if any(r["server"] == s for r in runs)]
base = present[0] if present else None

def median(label, server, get, unit):
    vals = []
    for r in runs:
        if r["server"] != server or r.get("label") != label:
            continue
        try:
            v = get(r)
        except Exception:
            v = None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.append(v / 1000.0 if unit == "ms" else v)
    return (statistics.median(vals), len(vals)) if vals else (None, 0)

def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"

others = [s for s in present if s != base]
head = ["scenario", "metric"] + [f"{s}" for s in present] + [f"{s}/{base}" for s in others]
print("Medians over rounds (n = rounds with a value). Ratio columns: server / " + str(base) + ".\n")
print("| " + " | ".join(head) + " |")
print("|" + "|".join(["---"] * len(head)) + "|")
for label, name, get, unit, better in metrics:
    if not any(r.get("label") == label for r in runs):
        continue
    meds = {s: median(label, s, get, unit) for s in present}
    row = [label, name + (f" ({unit})" if unit else "") + (" ↑" if better == "hi" else " ↓")]
    for s in present:
        v, n = meds[s]
        row.append(fmt(v) + (f" (n={n})" if n and n != max(m[1] for m in meds.values()) else ""))
    bv = meds[base][0] if base else None
    for s in others:
        v = meds[s][0]
        row.append(f"{v / bv:.2f}x" if v is not None and bv not in (None, 0) else "-")
    print("| " + " | ".join(row) + " |")

# Noise and failures
print()
print("CPU (cores) used meanwhile by other processes on the machine (other_cpu_util_cores; above ~0.2 the")
print("run was disturbed) and by softirq (loopback packet processing), per run, median (max):")
for s in present:
    def col(k):
        xs = [res(r).get(k) for r in runs if r["server"] == s]
        xs = [x for x in xs if isinstance(x, (int, float))]
        return f"{fmt(statistics.median(xs))} ({fmt(max(xs))})" if xs else "-"
    print(f"- {s}: other {col('other_cpu_util_cores')}, softirq {col('softirq_cpu_util_cores')}")
errs = [r for r in runs if res(r).get("error") or res(r).get("ok") is False]
if errs:
    print()
    print("Runs with errors or failed checks:")
    for r in errs:
        msg = res(r).get("error") or res(r).get("problem") or "ok=false"
        print(f"- {r['server']} round {r['round']} {r.get('label')}: {msg}")
PY
cat "$out/summary.md"
log "results: $results; summary: $out/summary.md; logs: $out/logs"
