package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/livechat/livechat/protocol"
)

// A member who may not speak (banned, or unvoiced in a +m room) cannot
// carry text to the room in a PART reason either; others still can.
func TestMutedPartReasonDropped(t *testing.T) {
	_, addr := testServer(t)
	keeper := connect(t, addr, "keeper")
	keeper.join("#quiet")
	banned := connect(t, addr, "spammer")
	banned.join("#quiet")
	unvoiced := connect(t, addr, "unvoiced")
	unvoiced.join("#quiet")
	fine := connect(t, addr, "fine")
	fine.join("#quiet")
	keeper.sync()

	keeper.send("MODE #quiet +b spammer")
	keeper.expect("MODE")
	banned.send("PART #quiet :buy cheap pills at example.com")
	if p, _ := keeper.expect("PART"); len(p.Params) != 1 {
		t.Fatalf("banned member's PART carried a reason: %q", p.String())
	}

	keeper.send("MODE #quiet +m")
	keeper.expect("MODE")
	unvoiced.send("PART #quiet :shouting past +m")
	if p, _ := keeper.expect("PART"); len(p.Params) != 1 {
		t.Fatalf("unvoiced member's PART in +m carried a reason: %q", p.String())
	}

	keeper.send("MODE #quiet -m")
	keeper.expect("MODE")
	fine.send("PART #quiet :good night")
	if p, _ := keeper.expect("PART"); p.Param(1) != "good night" {
		t.Fatalf("a member who may speak lost the PART reason: %q", p.String())
	}
}

// A secret (+s) room shows who is in it, their addresses and its topic
// only to its members and to server operators; everyone else gets just
// the end numerics (and 442 for TOPIC), and LIST and WHOIS skip it.
func TestSecretRoomHiddenFromOutsiders(t *testing.T) {
	srv, addr := testServer(t)
	owner := connect(t, addr, "owner")
	owner.join("#hidden")
	owner.send("MODE #hidden +s", "TOPIC #hidden :the plan")
	owner.expect("TOPIC")
	outsider := connect(t, addr, "outsider")

	outsider.send("NAMES #hidden", "WHO #hidden", "TOPIC #hidden", "LIST", "WHOIS owner")
	got := outsider.sync()
	for _, m := range got {
		switch m.Command {
		case protocol.RPL_NAMREPLY, protocol.RPL_WHOREPLY, protocol.RPL_TOPIC, protocol.RPL_TOPICWHOTIME, protocol.RPL_LIST:
			t.Fatalf("an outsider learned about the secret room: %q", m.String())
		case protocol.RPL_WHOISCHANNELS:
			if strings.Contains(m.Param(2), "#hidden") {
				t.Fatalf("WHOIS revealed the secret room: %q", m.String())
			}
		}
	}
	want := []string{protocol.RPL_ENDOFNAMES, protocol.RPL_ENDOFWHO, protocol.ERR_NOTONCHANNEL, protocol.RPL_LISTEND, protocol.RPL_ENDOFWHOIS}
	for _, code := range want {
		if !slices.Contains(commands(got), code) {
			t.Fatalf("missing %s in %v", code, commands(got))
		}
	}

	// A server operator may look inside; so may a member (the bystander).
	srv.nicks.get("outsider").oper.Store(true)
	outsider.send("NAMES #hidden")
	if n := outsider.expectNumeric(protocol.RPL_NAMREPLY); !strings.Contains(n.Param(3), "owner") {
		t.Fatalf("operator's NAMES: %q", n.String())
	}
	owner.send("WHO #hidden")
	if w := owner.expectNumeric(protocol.RPL_WHOREPLY); w.Param(5) != "owner" {
		t.Fatalf("member's WHO: %q", w.String())
	}
}
