package daemon

import (
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/internal/natstest"
	"github.com/livechat/livechat/protocol"
)

// A ban set on one node closes and refuses connections on every node,
// and lifting it lifts it everywhere; a room's +R and +f work for a
// joiner on a node without the room.
func TestClusterBansAndRoomModes(t *testing.T) {
	ns := natstest.RunServer(t, "")
	node := func(name string) string {
		_, addr := testServer(t, withOperator(t), func(cfg *configs.Config, opts *Options) {
			joinForTest(t, cfg, opts, ns.ClientURL(), name, time.Second)
		})
		return addr
	}
	addrA, addrB := node("a"), node("b")

	op := oper(t, addrA, "boss")
	op.join("#members")
	op.join("#lobby")
	op.send("MODE #members +Rf #lobby")
	op.expect("MODE")
	guest := connect(t, addrB, "roaming")
	guest.send("JOIN #members")
	if m := guest.expectNumeric(protocol.ERR_LINKCHANNEL); m.Param(2) != "#lobby" {
		t.Fatalf("%q", m.String())
	}
	if m, _ := guest.expect("JOIN"); m.Param(0) != "#lobby" {
		t.Fatalf("%q", m.String())
	}
	op.send("MODE #members -f")
	op.expect("MODE")
	guest.send("JOIN #members")
	guest.expectNumeric(protocol.ERR_NEEDREGGEDNICK)

	victim := dialFrom(t, addrB, "127.0.0.30")
	victim.register("victim")
	op.send("KLINE victim-not-here!*@* :unused", "DLINE 127.0.0.30 :from node a")
	op.expect("NOTICE")
	op.expect("NOTICE")
	victim.expectBanned("from node a")
	if m := dialFrom(t, addrB, "127.0.0.30").read(); m.Command != "ERROR" || m.Param(0) != "Banned: from node a" {
		t.Fatalf("%q", m.String())
	}
	op.send("UNDLINE 127.0.0.30")
	op.expect("NOTICE")
	// The lift reaches node b by its watch: wait for it with a deadline.
	deadline := time.Now().Add(waitFor)
	for {
		c := dialFrom(t, addrB, "127.0.0.30")
		c.send("NICK back", "USER back 0 * :x")
		if m := c.read(); m.Command != "ERROR" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the DLINE was not lifted on node b")
		}
	}
}
