package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/livechat/livechat/internal/natstest"
	"github.com/livechat/livechat/protocol"
)

// exercisedMetrics starts a daemon with TLS, does what makes every
// metric appear (labelled series exist only once used), drains it so the
// disconnect counters are final, and returns its /metrics page.
func exercisedMetrics(t *testing.T) string {
	dir := t.TempDir()
	certPath, keyPath, cert := newCert(t, dir)
	// A burst of 1 makes the second quick line a flood-control delay.
	r := startRig(t, tlsYAML(certPath, keyPath, "limits:\n  flood_burst: 1\n  flood_rate: 1000\n"))
	a, _ := dialTLS(t, r.d.addrs.TLS, cert)
	a.register("anna")
	b := dialTCP(t, r.d.addrs.TCP)
	b.register("ben")
	a.send("JOIN #ops")
	a.expect(protocol.RPL_ENDOFNAMES)
	b.send("JOIN #ops")
	b.expect(protocol.RPL_ENDOFNAMES)
	a.send("PRIVMSG #ops :hello", "PING done")
	a.expect("PONG")
	b.expect("PRIVMSG")
	a.send("REGISTER anna correct-horse-battery")
	a.expect("REGISTER")
	b.send("LOGIN anna wrong-password")
	b.expect("FAIL")
	if err := r.d.reload(); err != nil {
		t.Fatal(err)
	}
	// Draining ends every session, so the disconnect counters are final,
	// and the operator endpoint stays up until closeOps.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := r.d.shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	_, page := r.get("/metrics")
	// A cluster node exports the cluster's metrics besides.
	ns := natstest.RunServer(t, "")
	c := startRig(t, fmt.Sprintf("cluster:\n  nats_urls: %q\n  node_name: exercised\n", ns.ClientURL()))
	x := dialTCP(t, c.d.addrs.TCP)
	x.register("xena")
	x.send("JOIN #cluster")
	x.expect(protocol.RPL_ENDOFNAMES)
	_, cpage := c.get("/metrics")
	return page + cpage
}
