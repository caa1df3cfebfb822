#!/usr/bin/env bash
# irctest-compare.sh: run one irctest selection against livechatd and against
# Ergo (github.com/ergochat/ergo, the server IRC users compare us with) and
# print one table: per module, passed/failed/skipped on each, and the tests
# that pass on one server only.
#
# Usage: scripts/irctest-compare.sh [-k EXPR] [-m EXPR] [-t SECS] [-o DIR] [MODULE ...]
#        scripts/irctest-compare.sh --from DIR     the table again, from a kept run
#
#   MODULE   irctest modules as scripts/irctest.sh takes them, and two words:
#              default   the shared runner's default selection
#              extra     scripts/irctest.sh --list-extra
#            No modules: default extra.
#   -k -m -t the shared runner's options, the same for both servers (markers
#            default to 'not implementation-specific and not deprecated and
#            not strict')
#   -o DIR   keep both runs' output (livechat.log, ergo.log) in DIR, for
#            reading the failures or --from; without it they go to a temp
#            dir removed at exit
#
# How each server runs: livechatd through scripts/irctest.sh with
# IRCTEST_FRESH=1 (a daemon with empty state before every test); Ergo through
# irctest's own Ergo controller (irctest.controllers.ergo), which writes its
# config and starts a fresh `ergo` from PATH before every test. Both go
# through the shared runner (/work/shared/tools/irctest-run.sh), so the
# markers, timeout, pytest and its summary are the same; what differs is what
# each controller declares (Ergo's claims capabilities and optional behaviours
# such as MULTI_JOIN, which turns a "not supported" skip into a failure;
# livechat's claims none, see scripts/irctest.sh).
#
# Environment:
#   ERGO_BIN      the ergo binary to test. Default: build one from ERGO_SRC.
#   ERGO_SRC      an Ergo source checkout (default /work/ergo), built with
#                 `go build` (Go >= the version its go.mod names) into the
#                 output dir; never inside this repository.
#   IRCTEST_DIR   irctest checkout (default /work/irctest)
#   IRCTEST_RUNNER the shared runner (default /work/shared/tools/irctest-run.sh)
#   LIVECHAT_REV  passed on to scripts/irctest.sh (build that commit)
# Exit status: 0 when both runs produced a summary, 2 otherwise.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export IRCTEST_DIR=${IRCTEST_DIR:-/work/irctest}
RUNNER=${IRCTEST_RUNNER:-/work/shared/tools/irctest-run.sh}
ERGO_SRC=${ERGO_SRC:-/work/ergo}
PY=${IRCTEST_PYTHON:-/usr/bin/python3}

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

opts=() out='' from=''
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -k|-m|-t) [ $# -ge 2 ] || { echo "irctest-compare.sh: $1 needs a value" >&2; exit 2; }
              opts+=("$1" "$2"); shift 2 ;;
    -o) [ $# -ge 2 ] || { echo "irctest-compare.sh: -o needs a directory" >&2; exit 2; }
        out=$2; shift 2 ;;
    --from) [ $# -ge 2 ] || { echo "irctest-compare.sh: --from needs a directory" >&2; exit 2; }
            from=$2; shift 2 ;;
    -*) echo "irctest-compare.sh: unknown option $1 (see -h)" >&2; exit 2 ;;
    *) break ;;
  esac
done

# table DIR: the comparison of DIR/livechat.log and DIR/ergo.log. Each log is
# the runner's output with pytest's -rpfEs: its per-module summary and one
# PASSED/FAILED/ERROR line per test, so a test on neither list was skipped.
table() {
  "$PY" - "$1/livechat.log" "$1/ergo.log" <<'PYEOF'
import re
import sys


def parse(path):
    rows, order, passed, failed = {}, [], set(), set()
    in_summary = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"(PASSED|FAILED|ERROR) (irctest/server_tests/\S+)", line)
            if m:
                name = m.group(2).replace("irctest/server_tests/", "")
                (passed if m.group(1) == "PASSED" else failed).add(name)
                continue
            if line.startswith("==== irctest summary"):
                in_summary, rows, order = True, {}, []
                continue
            m = re.match(r"(\S+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
            if in_summary and m:
                order.append(m.group(1))
                rows[m.group(1)] = tuple(int(m.group(i)) for i in (2, 3, 4))
    if not in_summary:
        sys.exit(f"irctest-compare.sh: no irctest summary in {path}")
    return rows, order, passed, failed


lc, lc_order, lc_pass, lc_fail = parse(sys.argv[1])
er, er_order, er_pass, er_fail = parse(sys.argv[2])
order = lc_order + [m for m in er_order if m not in lc]
none = (0, 0, 0)
print("| module | livechat passed | failed | skipped | Ergo passed | failed | skipped | passed, livechat − Ergo |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for m in order:
    a, b = lc.get(m, none), er.get(m, none)
    d = a[0] - b[0]
    print(f"| {m} | {a[0]} | {a[1]} | {a[2]} | {b[0]} | {b[1]} | {b[2]} | {d:+d} |" if d else
          f"| {m} | {a[0]} | {a[1]} | {a[2]} | {b[0]} | {b[1]} | {b[2]} | |")
ta = [sum(lc[m][i] for m in lc) for i in range(3)]
tb = [sum(er[m][i] for m in er) for i in range(3)]
print(f"| **total** | **{ta[0]}** | **{ta[1]}** | **{ta[2]}** | **{tb[0]}** | **{tb[1]}** | **{tb[2]}** | **{ta[0] - tb[0]:+d}** |")


def state(name, passed, failed):
    return "failed" if name in failed else "passed" if name in passed else "skipped"


for title, mine, theirs, a, b in (
    ("Pass on Ergo, not on livechat", er_pass, lc_pass, (lc_pass, lc_fail), (er_pass, er_fail)),
    ("Pass on livechat, not on Ergo", lc_pass, er_pass, (er_pass, er_fail), (lc_pass, lc_fail)),
):
    only = sorted(mine - theirs)
    print(f"\n{title} ({len(only)}):")
    for t in only:
        other = "livechat" if mine is er_pass else "Ergo"
        print(f"  {t}  ({other}: {state(t, *a)})")
PYEOF
}

if [ -n "$from" ]; then
  table "$from"
  exit $?
fi

if [ ! -f "$IRCTEST_DIR/conftest.py" ] || [ ! -f "$IRCTEST_DIR/irctest/controllers/ergo.py" ]; then
  echo "irctest-compare.sh: no irctest checkout at IRCTEST_DIR=$IRCTEST_DIR (git clone https://github.com/progval/irctest)" >&2
  exit 2
fi
[ -x "$RUNNER" ] || { echo "irctest-compare.sh: runner $RUNNER is missing (set IRCTEST_RUNNER)" >&2; exit 2; }
rev=$(git -C "$here/.." rev-parse --verify --short "${LIVECHAT_REV:-HEAD}^{commit}" 2>/dev/null) || {
  echo "irctest-compare.sh: LIVECHAT_REV=${LIVECHAT_REV:-} is not a commit" >&2; exit 2; }
# without LIVECHAT_REV, scripts/irctest.sh builds the work tree
[ -z "${LIVECHAT_REV:-}" ] && ! git -C "$here/.." diff --quiet HEAD 2>/dev/null && rev="$rev + uncommitted changes"

mods=()
[ $# -gt 0 ] || set -- default extra
for m in "$@"; do
  case "$m" in
    default) mapfile -t -O "${#mods[@]}" mods < <("$RUNNER" --list-default) ;;
    extra) mapfile -t -O "${#mods[@]}" mods < <("$here/irctest.sh" --list-extra) ;;
    *) mods+=("$m") ;;
  esac
done
[ ${#mods[@]} -gt 0 ] || { echo "irctest-compare.sh: no modules (is $RUNNER there?)" >&2; exit 2; }

tmp=$(mktemp -d -t irctest-compare.XXXXXX)
listener=''
cleanup() {
  [ -n "$listener" ] && kill "$listener" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "$out" ]; then
  out=$tmp/out
fi
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)

# --- Ergo: the given binary, or one built from source ------------------------
bindir=$tmp/bin
mkdir -p "$bindir"
if [ -n "${ERGO_BIN:-}" ]; then
  [ -x "$ERGO_BIN" ] || { echo "irctest-compare.sh: ERGO_BIN=$ERGO_BIN is not an executable" >&2; exit 2; }
  ln -s "$(cd "$(dirname "$ERGO_BIN")" && pwd)/$(basename "$ERGO_BIN")" "$bindir/ergo"
elif [ -f "$ERGO_SRC/ergo.go" ] && [ -f "$ERGO_SRC/go.mod" ]; then
  echo "irctest-compare.sh: building Ergo from $ERGO_SRC" >&2
  ver=$(git -C "$ERGO_SRC" describe --tags --always 2>/dev/null || echo unknown)
  commit=$(git -C "$ERGO_SRC" rev-parse HEAD 2>/dev/null || echo unknown)
  build() {
    (cd "$ERGO_SRC" && CGO_ENABLED=0 go build -tags "" \
      -ldflags "-X main.commit=$commit -X main.version=$ver" -o "$bindir/ergo" .)
  }
  # A checkout without its (large) vendored files cannot build from vendor/;
  # the module proxy then provides the same versions, checked by go.sum.
  if ! build 2>"$tmp/build.err"; then
    echo "irctest-compare.sh: building from vendor/ failed ($(head -n 1 "$tmp/build.err")); retrying with -mod=mod" >&2
    GOFLAGS="${GOFLAGS:-} -mod=mod" build || {
      echo "irctest-compare.sh: could not build Ergo in $ERGO_SRC; set ERGO_BIN to an ergo binary" >&2; exit 2; }
  fi
else
  cat >&2 <<EOF
irctest-compare.sh: no Ergo to test. Either
  git clone https://github.com/ergochat/ergo $ERGO_SRC   (or set ERGO_SRC to a checkout;
      the script builds it with go build), or
  set ERGO_BIN to an ergo binary (https://github.com/ergochat/ergo/releases).
EOF
  exit 2
fi
ergo_version=$("$bindir/ergo" --version 2>/dev/null | head -n 1)
[ -n "$ergo_version" ] || { echo "irctest-compare.sh: $bindir/ergo --version printed nothing" >&2; exit 2; }

echo "irctest-compare.sh: modules: ${mods[*]}" >&2
echo "irctest-compare.sh: output in $out" >&2

# --- livechat ----------------------------------------------------------------
echo "irctest-compare.sh: livechat ($rev)..." >&2
(
  unset IRCTEST_CONTROLLER
  IRCTEST_FRESH=1 IRCTEST_RUNNER=$RUNNER "$here/irctest.sh" ${opts[@]+"${opts[@]}"} "${mods[@]}" -- -rpfEs
) >"$out/livechat.log" 2>&1
if ! grep -q '^==== irctest summary' "$out/livechat.log"; then
  echo "irctest-compare.sh: the livechat run ended without a summary; its last lines:" >&2
  tail -n 15 "$out/livechat.log" >&2
  exit 2
fi
echo "irctest-compare.sh: livechat: $(tail -n 1 "$out/livechat.log")" >&2

# --- Ergo --------------------------------------------------------------------
# irctest's Ergo controller picks its own port for every test; the runner
# only checks that something listens on the HOST PORT it is given, so a
# listener that never answers stands in for that check.
"$PY" -c '
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    time.sleep(3600)
' </dev/null >"$tmp/listener.port" &
listener=$!
port=''
for _ in $(seq 100); do
  port=$(cat "$tmp/listener.port" 2>/dev/null)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "irctest-compare.sh: could not open a placeholder listener" >&2; exit 2; }
echo "irctest-compare.sh: $ergo_version..." >&2
# irctest keeps the ports its controllers took in $TMPDIR/irctest_ports.json,
# shared by every irctest run on the machine; a private TMPDIR keeps another
# run's rewrite of that file from failing a test here.
mkdir -p "$tmp/ergo-tmp"
(
  unset IRCTEST_SERVER_RESET_CMD
  PATH="$bindir:$PATH" IRCTEST_CONTROLLER=irctest.controllers.ergo TMPDIR="$tmp/ergo-tmp" \
    "$RUNNER" ${opts[@]+"${opts[@]}"} 127.0.0.1 "$port" "${mods[@]}" -- -rpfEs
) >"$out/ergo.log" 2>&1
kill "$listener" 2>/dev/null
listener=''
echo "irctest-compare.sh: Ergo: $(tail -n 1 "$out/ergo.log")" >&2

echo "livechat $rev, $ergo_version, irctest $(git -C "$IRCTEST_DIR" rev-parse --short HEAD 2>/dev/null), $(date -u +%F)"
echo
table "$out" || exit 2
