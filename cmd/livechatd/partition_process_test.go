package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
)

// TestClusterPartition is run by scripts/partition-test.sh (as root),
// which makes a network namespace joined to this one by two veth pairs:
// one carries node 3's NATS traffic (PARTITION_TEST_CUT_LINK is its end
// here), the other its clients (PARTITION_TEST_NODE_ADDR). Nodes 1 and 2
// and the three NATS servers run here, started by scripts/cluster-demo.sh
// with NATS on PARTITION_TEST_NATS_HOST; node 3 runs in the namespace.
// Cutting the NATS link leaves node 3's users connected to it, cut off
// from the cluster: node 3 must refuse their room messages, go unready,
// and lose them to a "node lost" QUIT on the other nodes, while the room,
// homed on node 1, keeps one order that the history shows after the link
// is back.
func TestClusterPartition(t *testing.T) {
	ns, natsHost := os.Getenv("PARTITION_TEST_NS"), os.Getenv("PARTITION_TEST_NATS_HOST")
	nodeAddr, cutLink := os.Getenv("PARTITION_TEST_NODE_ADDR"), os.Getenv("PARTITION_TEST_CUT_LINK")
	if ns == "" || natsHost == "" || nodeAddr == "" || cutLink == "" {
		t.Skip("needs a network namespace: run scripts/partition-test.sh (as root)")
	}
	const lease = 3 * time.Second
	began := time.Now()
	step := func(what string) { t.Logf("%6.2fs %s", time.Since(began).Seconds(), what) }
	cl := startDemo(t, "--livechat-nodes", "2", "--nats-host", natsHost, "--lease-ttl", fmt.Sprintf("%ds", int(lease/time.Second)))
	cl.startInNamespace(3, ns, nodeAddr, lease)
	step("cluster up, node 3 in namespace " + ns)

	u1 := cl.dial(1, "u1")
	u1.join("#part") // homed on node 1
	u2 := cl.dial(2, "u2")
	u2.join("#part")
	u3 := cl.dial(3, "u3")
	u3.join("#part")
	for _, c := range []*demoConn{u1, u2, u3} {
		if _, _, ok := c.say("#part", "hello from "+c.nick); !ok {
			t.Fatalf("%s: no echo of hello", c.nick)
		}
	}
	for _, c := range []*demoConn{u1, u2, u3} {
		c.waitLine(0, func(m protocol.Message) bool { return m.Command == "PRIVMSG" && m.Param(1) == "hello from u3" }, waitFor, "u3's hello")
	}

	talk := startTalkIn("#part", u1, u2)
	talk.waitAcked(10)
	step("cut node 3's NATS link")
	cut := time.Now()
	from1, from3 := u1.mark(), u3.mark()
	ip(t, "link", "set", "dev", cutLink, "down")
	healed := false
	heal := func() {
		if !healed {
			ip(t, "link", "set", "dev", cutLink, "up")
			healed = true
		}
	}
	t.Cleanup(heal)

	// Node 3 refuses (or never acknowledges) a room message homed
	// elsewhere; meanwhile, it goes unready.
	said := make(chan string, 1)
	go func() {
		if id, refusal, ok := u3.say("#part", "from the cut-off side"); ok {
			said <- "accepted, msgid " + id
		} else {
			said <- fmt.Sprintf("refused after %v: %s", time.Since(cut).Round(time.Millisecond), refusal.String())
		}
	}()
	cl.waitReady(3, http.StatusServiceUnavailable, lease+10*time.Second)
	t.Logf("node 3 /readyz 503 %v after the cut", time.Since(cut).Round(time.Millisecond))
	select {
	case r := <-said:
		if strings.HasPrefix(r, "accepted") {
			t.Errorf("node 3, cut off, accepted a message for a room homed on node 1 (%s)", r)
		} else {
			t.Logf("u3's message while cut off: %s", r)
		}
	case <-time.After(2 * waitFor):
		t.Fatal("u3's message while cut off: no answer")
	}
	// The others declare u3 lost.
	q := u1.waitLine(from1, func(m protocol.Message) bool { return m.Command == "QUIT" && nickOf(m.Source) == "u3" }, lease+10*time.Second, "u3's QUIT")
	if q.msg.Param(0) != "node lost" {
		t.Errorf("u3's QUIT says %q", q.msg.Param(0))
	}
	t.Logf("u3's QUIT (%q) reached u1 %v after the cut (lease_ttl %v)", q.msg.Param(0), q.at.Sub(cut).Round(time.Millisecond), lease)
	talk.waitAcked(talk.acked() + 20) // the majority talks on

	step("heal")
	heal()
	healedAt := time.Now()
	cl.waitReady(3, http.StatusOK, 3*waitFor)
	t.Logf("node 3 /readyz 200 again %v after the link came back", time.Since(healedAt).Round(time.Millisecond))
	// What u3 was told, from the cut on: a NOTICE, an ERROR as node 3
	// closes the connection of a user the cluster declared lost.
	for i := from3; ; i++ {
		l, at, err := u3.find(i, func(m protocol.Message) bool { return m.Command == "NOTICE" || m.Command == "ERROR" }, time.Millisecond)
		if err != nil {
			break
		}
		t.Logf("u3 was told, %v after the cut: %s", l.at.Sub(cut).Round(time.Millisecond), l.msg.String())
		i = at
	}
	select {
	case <-u3.done:
		t.Logf("node 3 closed u3's connection")
	default:
		t.Logf("u3's connection to node 3 is still open")
	}
	u3b := cl.redial(3, "u3", 2*waitFor)
	u3b.join("#part")
	talk.waitAcked(talk.acked() + 10)
	talk.stop()
	u1.waitMsgid(talk.lastAcked(u2))
	u2.waitMsgid(talk.lastAcked(u1))
	u3b.waitMsgid(talk.lastAcked(u1))
	u3b.waitMsgid(talk.lastAcked(u2))
	step("talk stopped")

	// One order: u1 and u2 saw the same sequence, and the history read on
	// node 3 after the heal is that sequence, without the cut-off message.
	seen1, seen2 := u1.roomMsgids("#part"), u2.roomMsgids("#part")
	if at := slices.Index(seen1, seen2[0]); at < 0 || !slices.Equal(seen1[at:], seen2) {
		t.Errorf("u1 and u2 saw different orders (%d and %d messages)", len(seen1), len(seen2))
	}
	hist := u3b.historyAfter("#part", "timestamp=2000-01-01T00:00:00.000Z")
	if !slices.Equal(hist, seen1) {
		t.Errorf("history on node 3 (%d messages) is not the order u1 saw (%d)", len(hist), len(seen1))
	}
	t.Logf("one order: %d messages, the same for u1, u2 and in the history read on node 3", len(hist))
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

// startInNamespace runs node k of the cluster in the network namespace ns,
// listening on addr, and waits for its /readyz.
func (cl *demoCluster) startInNamespace(k int, ns, addr string, lease time.Duration) {
	t := cl.t
	t.Helper()
	dir := filepath.Join(cl.dir, fmt.Sprintf("node-%d", k))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "livechatd.log"))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(cl.dir, "cloak.secret"))
	if err != nil {
		t.Fatal(err)
	}
	irc, metrics := addr+":6667", addr+":9667" // the namespace's own ports
	cmd := exec.Command("ip", "netns", "exec", ns, cl.env["LIVECHATD"],
		"--listen", irc, "--metrics-listen", metrics, "--ws-listen", "", "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(slices.Clone(cl.envv), "LIVECHAT_CLUSTER_NATS_URLS="+cl.env["NATS_URLS"],
		fmt.Sprintf("LIVECHAT_CLUSTER_NODE_NAME=node-%d", k), fmt.Sprintf("LIVECHAT_CLUSTER_LEASE_TTL=%ds", int(lease/time.Second)),
		"LIVECHAT_CLUSTER_REPLICAS=3", "LIVECHAT_CLOAK_SECRET="+string(secret), "LIVECHAT_LOG_FORMAT=json")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(exited) }()
	t.Cleanup(func() { // before the script stops NATS
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(waitFor):
			cmd.Process.Kill()
			<-exited
		}
	})
	cl.env[fmt.Sprintf("NODE%d_IRC", k)], cl.env[fmt.Sprintf("NODE%d_METRICS", k)] = irc, metrics
	cl.waitReady(k, http.StatusOK, 2*waitFor)
}

// waitReady waits until node k's /readyz answers code.
func (cl *demoCluster) waitReady(k, code int, within time.Duration) {
	cl.t.Helper()
	url := "http://" + cl.env[fmt.Sprintf("NODE%d_METRICS", k)] + "/readyz"
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	last := 0
	for {
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if last = resp.StatusCode; last == code {
				return
			}
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("node-%d: /readyz not %d within %v (last %d)", k, code, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
