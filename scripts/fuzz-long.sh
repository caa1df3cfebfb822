#!/usr/bin/env bash
# fuzz-long.sh: run every `go test -fuzz` target in the repository for a
# fixed number of executions each, one after the other, and print each
# target's executions, new corpus entries and findings.
#
# Usage: scripts/fuzz-long.sh [EXECS] [TARGET_REGEXP]
#   EXECS          executions per target (default 10000000); a Go duration
#                  such as 5m also works
#   TARGET_REGEXP  only the targets whose name matches (default: all)
#
# A finding is written by the fuzzer under <package>/testdata/fuzz/<Target>/
# (commit it: plain `go test` then replays it). Logs go to $FUZZ_LOG_DIR
# (default: a temp dir, printed at the end). Exit status: 1 if any target
# found a failure. Uses every CPU unless FUZZ_PARALLEL is set.
# FUZZ_MINIMIZE bounds minimizing each new input (default 100x): FuzzSessions'
# coverage varies with goroutine scheduling, so many of its inputs look new,
# and unbounded minimization would take most of the run.
set -uo pipefail
cd "$(dirname "$0")/.."

execs=${1:-10000000}
filter=${2:-.}
case $execs in
  *[!0-9]*) fuzztime=$execs ;;
  *) fuzztime=${execs}x ;;
esac
logdir=${FUZZ_LOG_DIR:-$(mktemp -d /tmp/livechat-fuzz.XXXXXX)}
mkdir -p "$logdir"
parallel=()
[ -n "${FUZZ_PARALLEL:-}" ] && parallel=(-parallel "$FUZZ_PARALLEL")

# "package target" pairs, from the source so new targets are picked up.
mapfile -t targets < <(git ls-files '*_test.go' | xargs grep -H '^func Fuzz[A-Za-z0-9_]*(f \*testing.F)' |
  sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#./\1 \2#' | sort -u | grep -E " .*${filter}")
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz-long: no fuzz target matches $filter" >&2
  exit 2
fi

failed=0
summary=()
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  log="$logdir/${name}.log"
  echo "== $name ($pkg): -fuzztime=$fuzztime, log $log"
  start=$(date +%s)
  go test "$pkg" -run=NONE -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime="${FUZZ_MINIMIZE:-100x}" \
    "${parallel[@]}" >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  # The last progress line carries the totals.
  last=$(grep -E '^fuzz: elapsed' "$log" | tail -n 1)
  n=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  interesting=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  finding=none
  if [ $rc -ne 0 ]; then
    failed=1
    finding=$(grep -m1 -E 'Failing input written to|panic:|--- FAIL' "$log" || echo "exit $rc (see log)")
    grep -A25 -m1 -- '--- FAIL' "$log" | head -40
  fi
  line=$(printf '%-16s %-22s execs %-10s new %-5s %5ss  finding: %s' "$name" "$pkg" "${n:-?}" "${interesting:-?}" "$secs" "$finding")
  echo "$line"
  summary+=("$line")
done

echo
echo "== fuzz-long summary (logs in $logdir)"
printf '%s\n' "${summary[@]}"
exit $failed
