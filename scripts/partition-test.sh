#!/usr/bin/env bash
# partition-test.sh: cut one livechat node off from NATS and check that
# the cluster does not split (issue 14). Needs root: it makes a network
# namespace and two veth pairs, then runs TestClusterPartition
# (cmd/livechatd/partition_process_test.go), which starts three NATS
# servers and livechat nodes 1 and 2 here with scripts/cluster-demo.sh,
# node 3 inside the namespace, and takes node 3's NATS link down and up.
#
# Usage: sudo scripts/partition-test.sh [GO_TEST_FLAGS...]   e.g. -race
#
#   this namespace                              namespace lcpart<pid>
#   NATS x3 on 10.231.N.1, nodes 1-2 ──veth A── node 3's NATS connection
#   test clients              ──────── veth B── node 3's listeners, 10.232.N.2
#
# Only veth A is cut, so node 3's users stay connected to a node that
# cannot reach the cluster. What the test checks: node 3 refuses their
# room messages, /readyz goes 503, the other nodes QUIT its users with
# "node lost" within the lease, the room (homed on node 1) keeps one order
# for everybody; once the link is back node 3 is ready again and the
# history read on it is that one order. The namespace and links are
# removed on exit. Exit status: go test's, 2 when this machine cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "partition-test: needs root (ip netns, veth)" >&2; exit 2; }
command -v ip >/dev/null || { echo "partition-test: needs ip (iproute2)" >&2; exit 2; }

ns=lcpart$$
a_here=lcpa$$ a_there=lcpa$$n
b_here=lcpb$$ b_there=lcpb$$n
# A /24 pair no interface here uses yet.
for _ in $(seq 50); do
  n=$(( RANDOM % 200 + 20 ))
  ip -o addr | grep -qE "inet 10\.23[12]\.$n\." || break
done

cleanup() {
  ip netns del "$ns" 2>/dev/null || true # takes the namespace ends, and so both pairs
  ip link del "$a_here" 2>/dev/null || true
  ip link del "$b_here" 2>/dev/null || true
}
trap cleanup EXIT

if ! ip netns add "$ns" 2>/dev/null; then
  echo "partition-test: cannot make a network namespace here (ip netns add failed); skipped" >&2
  exit 2
fi
ip -n "$ns" link set lo up
for pair in "a $a_here $a_there 10.231.$n" "b $b_here $b_there 10.232.$n"; do
  read -r _ here there net <<<"$pair"
  ip link add "$here" type veth peer name "$there"
  ip link set "$there" netns "$ns"
  ip addr add "$net.1/24" dev "$here"
  ip link set "$here" up
  ip -n "$ns" addr add "$net.2/24" dev "$there"
  ip -n "$ns" link set "$there" up
done

echo "partition-test: namespace $ns; NATS on 10.231.$n.1 (link $a_here, the one cut), node 3 at 10.232.$n.2"
PARTITION_TEST_NS=$ns PARTITION_TEST_NATS_HOST=10.231.$n.1 PARTITION_TEST_NODE_ADDR=10.232.$n.2 \
  PARTITION_TEST_CUT_LINK=$a_here go test -count=1 -v -run '^TestClusterPartition$' "$@" ./cmd/livechatd
