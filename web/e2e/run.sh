#!/usr/bin/env bash
# Browser test of the chat page: builds livechatd, starts it on free
# loopback ports with in-memory accounts and a temporary data dir, runs the
# IRC parser unit test and chat.test.mjs in headless Debian chromium
# (never downloads a browser), and stops the daemon on any exit.
#
#   bash web/e2e/run.sh            (from anywhere in the repository)
#
# Needs: go, node (18+), npm (only the first time, for playwright-core),
# and chromium at /usr/bin/chromium (apt-get install chromium) or $CHROMIUM.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$here/screenshots}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/livechat-e2e.XXXXXX")
daemon_pid=""
cleanup() {
	if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL $*"; exit 1; }

command -v node >/dev/null || fail "setup: node is not installed"
command -v go >/dev/null || fail "setup: go is not installed"
[[ -x "$CHROMIUM" ]] || fail "setup: no chromium at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"

if [[ ! -d "$here/node_modules/playwright-core" || ! -d "$here/node_modules/axe-core" ]]; then
	echo "installing playwright-core and axe-core (npm ci; no browser download)"
	(cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

echo "building livechatd"
(cd "$root" && go build -o "$tmp/livechatd" ./cmd/livechatd)

# A burst of 200 lets the test seed a long room history at once.
# Port 0: the kernel picks free ports, and the daemon logs the addresses it
# got ("accepting clients"), so parallel runs never collide.
mkdir -p "$tmp/data"
LIVECHAT_DATA_DIR="$tmp/data" \
LIVECHAT_ACCOUNTS_STORE=memory \
LIVECHAT_LOG_FORMAT=json \
LIVECHAT_LIMITS_FLOOD_BURST=200 \
	"$tmp/livechatd" --listen 127.0.0.1:0 --ws-listen 127.0.0.1:0 --metrics-listen "" \
	>"$tmp/daemon.log" 2>&1 &
daemon_pid=$!

addr_of() { # transport -> host:port from the daemon's JSON log
	sed -n "s/.*\"addr\":\"\([^\"]*\)\",\"transport\":\"$1\".*\"accepting clients\".*/\1/p" "$tmp/daemon.log" | head -n1
}
ws="" tcp=""
for _ in $(seq 200); do # 20 s
	ws=$(addr_of websocket) tcp=$(addr_of tcp)
	[[ -n "$ws" && -n "$tcp" ]] && break
	kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/daemon.log"; fail "setup: livechatd exited"; }
	sleep 0.1
done
[[ -n "$ws" && -n "$tcp" ]] || { cat "$tmp/daemon.log"; fail "setup: livechatd did not report its addresses within 20 s"; }
echo "livechatd: page http://$ws/  tcp $tcp  (pid $daemon_pid)"

mkdir -p "$SCREENSHOT_DIR"
rm -f "$SCREENSHOT_DIR"/failure-*.png # evidence from an earlier failed run
status=0
node "$here/irc.test.mjs" || status=1
LIVECHAT_URL="http://$ws/" LIVECHAT_TCP="$tcp" timeout 300 node "$here/chat.test.mjs" || status=1

if [[ $status -ne 0 ]]; then
	echo "--- daemon log (last 40 lines)"
	tail -n 40 "$tmp/daemon.log"
	echo "FAIL web/e2e"
	exit 1
fi
echo "PASS web/e2e"
