#!/usr/bin/env bash
# irctest.sh: run the public IRC conformance suite irctest
# (github.com/progval/irctest) against a freshly built livechatd.
#
# Usage: scripts/irctest.sh [RUNNER_OPTIONS] [MODULE ...] [-- PYTEST_ARGS ...]
#
#   Everything after the script name is passed to the shared runner
#   (/work/shared/tools/irctest-run.sh, see its header) after HOST PORT:
#     scripts/irctest.sh                          the runner's default selection
#     scripts/irctest.sh join cap                 some modules
#     scripts/irctest.sh -v messages -- -x        verbose, stop at the first failure
#     scripts/irctest.sh -k testPartMessage part  a pytest -k filter
#     scripts/irctest.sh 'messages.py::PrivmsgTestCase::testPrivmsg' -- -v
#     scripts/irctest.sh --list-extra             the modules measured beyond the
#                                                 default selection (EXTRA_MODULES)
#     scripts/irctest.sh $(scripts/irctest.sh --list-extra)   ...run them
#   Runner options (-k -m -t -v) go before the modules.
#
# What it does: builds ./cmd/livechatd into a temp dir, starts it with empty
# state (accounts in memory, a fresh data dir) on a free loopback port with
# flood control and per-address limits out of the way and the server name
# irctest expects (My.Little.Server), waits until the port accepts, runs the
# runner with IRCv3 account registration and SASL PLAIN and SCRAM-SHA-256
# (restarting the daemon before each test, see IRCTEST_FRESH), and on exit
# stops the daemon it
# started (by its pid, and only that one).
#
# Environment:
#   IRCTEST_DIR         irctest checkout (default /work/irctest)
#   IRCTEST_RUNNER      the shared runner (default /work/shared/tools/irctest-run.sh)
#   IRCTEST_FRESH      1 (default): restart livechatd with empty state before
#                       EVERY test (the runner's IRCTEST_SERVER_RESET_CMD, about
#                       0.1 s a test), so no test sees the nicks, rooms, history
#                       or accounts of another.  0: one daemon for the whole run;
#                       then accounts registered by one test protect their nick
#                       in later ones, and the runner's registerUser (NICK
#                       <account> before REGISTER) hangs until the test timeout.
#   LIVECHAT_REV=REV    build that commit (git archive) instead of the work tree,
#                       e.g. LIVECHAT_REV=HEAD while others are mid-edit
#   IRCTEST_KEEP_TMP=1  keep the temp dir (binary, livechatd.log) and print its path
#   LIVECHAT_*          any other daemon setting; the ones this script sets
#                       (flood limits, accounts store, per-IP limits) can be
#                       overridden by exporting them first.
# Exit status: the runner's (0 = no failures), 2 for a setup problem.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
IRCTEST_DIR=${IRCTEST_DIR:-/work/irctest}
RUNNER=${IRCTEST_RUNNER:-/work/shared/tools/irctest-run.sh}
FRESH=${IRCTEST_FRESH:-1}

# The modules livechat is measured on beyond the runner's default selection
# (docs/CONFORMANCE.md; scripts/irctest-compare.sh runs them against Ergo
# too). One per line, so that branches adding one merge cleanly.
EXTRA_MODULES=(
  chmodes
  redact
  read_marker
  account_tag
  extended_join
  away_notify
  multi_prefix
  setname
  bot_mode
  monitor
  whowas
  multiline
  statusmsg
)

case "${1:-}" in
  -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  --list-extra) printf '%s\n' "${EXTRA_MODULES[@]}"; exit 0 ;;
esac

# The runner takes its options before HOST PORT, modules and pytest args after.
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    -k|-m|-t) [ $# -ge 2 ] || { echo "irctest.sh: $1 needs a value" >&2; exit 2; }
              opts+=("$1" "$2"); shift 2 ;;
    -v) opts+=("$1"); shift ;;
    *) break ;;
  esac
done

if [ ! -f "$IRCTEST_DIR/conftest.py" ] || [ ! -d "$IRCTEST_DIR/irctest/server_tests" ]; then
  echo "irctest.sh: no irctest checkout at IRCTEST_DIR=$IRCTEST_DIR" >&2
  echo "  get one (git clone https://github.com/progval/irctest) and set IRCTEST_DIR" >&2
  exit 2
fi
if [ ! -x "$RUNNER" ]; then
  echo "irctest.sh: runner $RUNNER is missing or not executable (set IRCTEST_RUNNER)" >&2
  exit 2
fi

tmp=$(mktemp -d -t livechat-irctest.XXXXXX)
pidfile="$tmp/livechatd.pid"
log="$tmp/livechatd.log"

# alive PID: running, and not a zombie (a daemon started by the per-test
# restart is reparented when that shell exits, and may stay a zombie until
# its new parent reaps it).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ "$st" != Z ]
}
stop_daemon() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 500); do alive "$pid" || break; sleep 0.01; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}
cleanup() {
  stop_daemon
  if [ "${IRCTEST_KEEP_TMP:-0}" = 1 ]; then
    echo "irctest.sh: kept $tmp (livechatd.log)" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

src=$repo
if [ -n "${LIVECHAT_REV:-}" ]; then
  # build a commit, not the work tree (others may be mid-edit)
  rev=$(git -C "$repo" rev-parse --verify --short "$LIVECHAT_REV^{commit}") || {
    echo "irctest.sh: LIVECHAT_REV=$LIVECHAT_REV is not a commit" >&2; exit 2; }
  src="$tmp/src"; mkdir -p "$src"
  git -C "$repo" archive "$rev" | tar -x -C "$src" || exit 2
  echo "irctest.sh: building livechatd at commit $rev" >&2
else
  echo "irctest.sh: building livechatd from the work tree ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'))" >&2
fi
(cd "$src" && go build -o "$tmp/livechatd" ./cmd/livechatd) || { echo "irctest.sh: go build failed" >&2; exit 2; }

# The operator irctest uses (OPER operuser operpassword). Operators live in
# the config file: their hashes contain commas, which an env list splits.
{
  printf 'operators:
  - "operuser:%s"
' "$(printf 'operpassword
' | "$tmp/livechatd" accounts hash)"
} >"$tmp/irctest.yaml" || { echo "irctest.sh: could not hash the operator password" >&2; exit 2; }
example="$src/configs/livechatd.example.yaml"

# --- daemon settings ---------------------------------------------------------
export LIVECHAT_ACCOUNTS_STORE=${LIVECHAT_ACCOUNTS_STORE:-memory}
export LIVECHAT_LIMITS_FLOOD_BURST=${LIVECHAT_LIMITS_FLOOD_BURST:-100000}
export LIVECHAT_LIMITS_FLOOD_RATE=${LIVECHAT_LIMITS_FLOOD_RATE:-100000}
export LIVECHAT_LOG_FORMAT=json # the port is read back from the JSON log
# irctest registers accounts with short passwords ("sesame", "bar").
export LIVECHAT_ACCOUNTS_MIN_PASSWORD_LENGTH=${LIVECHAT_ACCOUNTS_MIN_PASSWORD_LENGTH:-1}
# ...and hashes many of them: cheap parameters keep the run fast.
export LIVECHAT_ACCOUNTS_HASH_MEMORY_KIB=${LIVECHAT_ACCOUNTS_HASH_MEMORY_KIB:-64}
export LIVECHAT_ACCOUNTS_HASH_ITERATIONS=${LIVECHAT_ACCOUNTS_HASH_ITERATIONS:-1}
# irctest's tests expect the server to call itself My.Little.Server (every
# irctest controller configures that name): 004, PONG, WHO's server field.
export LIVECHAT_SERVER_NAME=${LIVECHAT_SERVER_NAME:-My.Little.Server}
# irctest's Ergo-marked multiline limit tests expect the limits its Ergo
# controller sets (max-lines 32; max-bytes 4096 is our default too).
export LIVECHAT_LIMITS_MULTILINE_MAX_LINES=${LIVECHAT_LIMITS_MULTILINE_MAX_LINES:-32}
# Per-address connection limits, if this version of livechatd has them: every
# irctest client comes from 127.0.0.1, and a test opens many connections fast.
# The keys are read from the example config (which lists every key), so the
# script keeps working whatever section they end up in.
if [ -f "$example" ]; then
  while IFS=$'\t' read -r key value; do
    var=LIVECHAT_$(printf '%s' "$key" | tr '[:lower:].' '[:upper:]_')
    [ -n "${!var+x}" ] && continue # the caller set it
    case "${key##*.}" in
      *exempt*) export "$var=127.0.0.0/8,::1/128" ;;
      *per_ip*|*per_addr*)
        if [[ $value =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
          export "$var=1000000"
        else
          echo "irctest.sh: warning: $key (default $value) may throttle irctest, whose clients all come from 127.0.0.1; set $var" >&2
          continue
        fi ;;
      *) continue ;;
    esac
    echo "irctest.sh: $var=${!var}" >&2
  done < <(awk '
    /^[[:space:]]*#/ || /^[[:space:]]*$/ || /^[[:space:]]*-/ { next }
    match($0, /^[ ]*[A-Za-z0-9_]+:/) {
      ind = match($0, /[^ ]/) - 1
      k = $0; sub(/^[ ]*/, "", k); sub(/:.*/, "", k)
      v = $0; sub(/^[^:]*:[ ]*/, "", v); sub(/[ ]+#.*/, "", v); gsub(/"/, "", v)
      while (depth > 0 && ind <= indent[depth]) depth--
      depth++; indent[depth] = ind; name[depth] = k
      path = name[1]; for (i = 2; i <= depth; i++) path = path "." name[i]
      print path "\t" v
    }' "$example")
fi

# --- start / restart ---------------------------------------------------------
# start_daemon ADDR: start livechatd in the background with empty state.
start_daemon() {
  rm -rf "$tmp/data"; mkdir -p "$tmp/data"
  # irctest's per-test settings (IRCTEST_CFG_*, set by the runner before a
  # restart): a server password, and whether REGISTER works before CAP END.
  local early=true
  [ "${IRCTEST_CFG_ACCOUNT_REGISTRATION_BEFORE_CONNECT:-1}" = 0 ] && early=false
  LIVECHAT_SERVER_PASSWORD="${IRCTEST_CFG_PASSWORD:-}" \
    LIVECHAT_ACCOUNTS_REGISTER_BEFORE_CONNECT=$early \
    "$tmp/livechatd" --config "$tmp/irctest.yaml" --listen "$1" --metrics-listen "" --data-dir "$tmp/data" >>"$log" 2>&1 &
  echo $! >"$pidfile"
}
# wait_port ADDR: until ADDR accepts (10 s), or the daemon has died.
wait_port() {
  local host=${1%:*} port=${1##*:} pid
  pid=$(cat "$pidfile")
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    alive "$pid" || break
    sleep 0.05
  done
  echo "irctest.sh: livechatd did not start listening on $1; its log:" >&2
  tail -n 20 "$log" >&2
  return 1
}

# First start on port 0: the kernel picks a free port, read back from the log.
start_daemon 127.0.0.1:0
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/.*"addr":"127\.0\.0\.1:\([0-9]*\)".*"transport":"tcp".*/\1/p; s/.*"transport":"tcp".*"addr":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$log" | head -n 1)
  [ -n "$port" ] && break
  alive "$(cat "$pidfile")" || break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "irctest.sh: livechatd did not report its listening port; its log:" >&2
  tail -n 20 "$log" >&2
  exit 2
fi
wait_port "127.0.0.1:$port" || exit 2
echo "irctest.sh: livechatd (pid $(cat "$pidfile")) listens on 127.0.0.1:$port; log $log" >&2

if [ "$FRESH" = 1 ]; then
  # The runner runs this before every test, in a child shell: stop the daemon
  # this script started (by its pid file), start a new one on the same port
  # with empty state, return; the runner waits for the port.
  restart="$tmp/restart.sh"
  {
    echo '#!/usr/bin/env bash'
    declare -p tmp pidfile log
    declare -f alive stop_daemon start_daemon
    echo 'echo "irctest.sh: restart for ${PYTEST_CURRENT_TEST:-?} at $(date +%T.%N)" >>"$log"'
    echo 'stop_daemon'
    echo 'echo "irctest.sh: stopped at $(date +%T.%N)" >>"$log"'
    printf 'start_daemon 127.0.0.1:%s\n' "$port"
  } >"$restart"
  chmod +x "$restart"
  export IRCTEST_SERVER_RESET_CMD="$restart"
fi

export IRCTEST_DIR
export IRCTEST_REGISTER_METHOD=${IRCTEST_REGISTER_METHOD:-ircv3}
# irctest has SCRAM-SHA-256 tests (sasl.py); it has none for EXTERNAL or
# LIVECHAT-TOKEN (its clients present no certificate), which Go tests cover.
export IRCTEST_SERVER_SASL_MECHS=${IRCTEST_SERVER_SASL_MECHS:-PLAIN SCRAM-SHA-256}
export IRCTEST_SERVER_NAME=${IRCTEST_SERVER_NAME:-livechatd}

# irctest keeps the ports its controllers took in $TMPDIR/irctest_ports.json,
# one file for every irctest run on the machine: another run rewriting it can
# error a test here (JSONDecodeError at setup or teardown). A private TMPDIR
# keeps runs apart.
TMPDIR="$tmp" "$RUNNER" ${opts[@]+"${opts[@]}"} 127.0.0.1 "$port" "$@"
rc=$?
pid=$(cat "$pidfile" 2>/dev/null)
if [ -n "$pid" ] && ! alive "$pid"; then
  echo "irctest.sh: livechatd (pid $pid) is no longer running: it exited during the run; last log lines:" >&2
  tail -n 20 "$log" >&2
  [ "$rc" = 0 ] && rc=1
fi
exit "$rc"
