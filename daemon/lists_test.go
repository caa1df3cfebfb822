package daemon

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
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

// So does a QUIT: one line goes to every peer, so a member muted in any
// of its rooms quits without its own words.
func TestMutedQuitReasonDropped(t *testing.T) {
	_, addr := testServer(t)
	keeper := connect(t, addr, "keeper")
	keeper.join("#quiet")
	banned := connect(t, addr, "spammer")
	banned.join("#quiet")
	fine := connect(t, addr, "fine")
	fine.join("#quiet")
	keeper.send("MODE #quiet +b spammer")
	keeper.expect("MODE")

	banned.send("QUIT :buy cheap pills at example.com")
	if q, _ := keeper.expect("QUIT"); q.Param(0) != "Quit" {
		t.Fatalf("banned member's QUIT carried its words: %q", q.String())
	}
	fine.send("QUIT :good night")
	if q, _ := keeper.expect("QUIT"); q.Param(0) != "Quit: good night" {
		t.Fatalf("a member who may speak lost the QUIT reason: %q", q.String())
	}
}

// A secret (+s) room shows who is in it, their addresses and its topic
// only to its members and to server operators; everyone else gets just
// the end numerics (and 442 for TOPIC), and LIST and WHOIS skip it.
func TestSecretRoomHiddenFromOutsiders(t *testing.T) {
	srv, addr := testServer(t)
	owner := connect(t, addr, "owner")
	owner.join("#hidden")
	owner.send("MODE #hidden +s", "MODE #hidden +be troll!*@* friend!*@*", "TOPIC #hidden :the plan")
	owner.expect("TOPIC")
	outsider := connect(t, addr, "outsider")

	outsider.send("NAMES #hidden", "WHO #hidden", "TOPIC #hidden", "LIST", "WHOIS owner", "MODE #hidden b", "MODE #hidden e")
	got := outsider.sync()
	for _, m := range got {
		switch m.Command {
		case protocol.RPL_NAMREPLY, protocol.RPL_WHOREPLY, protocol.RPL_TOPIC, protocol.RPL_TOPICWHOTIME, protocol.RPL_LIST,
			protocol.RPL_BANLIST, protocol.RPL_EXCEPTLIST: // a list entry names its setter, a member
			t.Fatalf("an outsider learned about the secret room: %q", m.String())
		case protocol.RPL_WHOISCHANNELS:
			if strings.Contains(m.Param(2), "#hidden") {
				t.Fatalf("WHOIS revealed the secret room: %q", m.String())
			}
		}
	}
	want := []string{protocol.RPL_ENDOFNAMES, protocol.RPL_ENDOFWHO, protocol.ERR_NOTONCHANNEL, protocol.RPL_LISTEND, protocol.RPL_ENDOFWHOIS, protocol.RPL_ENDOFBANLIST, protocol.RPL_ENDOFEXCEPTLIST}
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

// holder is a room member without a connection, so a test can fill the
// server with rooms and members cheaply through the registry.
type holder struct{ _ byte } // not zero-sized: each one is a distinct member

func (*holder) Send([]byte) bool         { return true }
func (*holder) Queue([]byte) bool        { return true }
func (*holder) Flush()                   {}
func (*holder) Reply([]byte) bool        { return true }
func (*holder) Features() rooms.Features { return 0 }
func (*holder) Away() bool               { return false }
func (*holder) Removed(*rooms.Room)      {}

// fillRooms creates n rooms with 60-byte names, each held by one member.
func fillRooms(t *testing.T, srv *Server, n int) {
	t.Helper()
	h := &holder{}
	for i := range n {
		name := fmt.Sprintf("#room-%06d-%s", i, strings.Repeat("x", 47))
		if _, err := srv.rooms.Join(rooms.Member{Client: h, Nick: "holder", User: "h", Host: "h"}, name, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// fillRoom puts n members with 30-byte nicks into room.
func fillRoom(t *testing.T, srv *Server, room string, n int) {
	t.Helper()
	for i := range n {
		m := rooms.Member{Client: new(holder), Nick: fmt.Sprintf("m%029d", i), User: "user", Host: "host.example.org", Realname: "a member"}
		if _, err := srv.rooms.Join(m, room, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// Replies far longer than the send queue (LIST of thousands of rooms,
// NAMES, WHO and JOIN of a room with thousands of members) stream to a
// client that reads them instead of cutting it as a slow consumer.
//
// LIVECHAT_LIST_ROOMS=100000 runs it at the scale (seconds and a
// few hundred MB, so not in CI).
func TestLongRepliesStream(t *testing.T) {
	nRooms, nMembers := 3000, 2000
	if n, err := strconv.Atoi(os.Getenv("LIVECHAT_LIST_ROOMS")); err == nil && n > 0 {
		nRooms = n
	}
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.SendQBytes = 8192
		c.Limits.MaxRooms = max(c.Limits.MaxRooms, nRooms+2) // and #big, #side
	})
	fillRooms(t, srv, nRooms)
	fillRoom(t, srv, "#big", nMembers)
	asker := connect(t, addr, "asker")
	bystander := connect(t, addr, "bystander")
	bystander.join("#side")

	asker.send("LIST")
	lines := 0
	for {
		m := asker.read()
		if m.Command == protocol.RPL_LIST {
			lines++
		}
		if m.Command == "ERROR" {
			t.Fatalf("LIST cut the asker after %d rooms: %q", lines, m.String())
		}
		if m.Command == protocol.RPL_LISTEND {
			break
		}
	}
	if lines != nRooms+2 { // and #big, #side
		t.Fatalf("LIST gave %d rooms, want %d", lines, nRooms+2)
	}
	bystander.sync()

	// Every member must show, in 353s or 352s, then the end numeric.
	count := func(cmd, end string, names func(protocol.Message) int) int {
		n := 0
		for {
			m := asker.read()
			switch m.Command {
			case cmd:
				n += names(m)
			case "ERROR":
				t.Fatalf("%s cut the asker: %q", cmd, m.String())
			case end:
				return n
			}
		}
	}
	words := func(m protocol.Message) int { return len(strings.Fields(m.Param(3))) }
	one := func(protocol.Message) int { return 1 }
	asker.send("NAMES #big")
	if n := count(protocol.RPL_NAMREPLY, protocol.RPL_ENDOFNAMES, words); n != nMembers {
		t.Fatalf("NAMES listed %d members, want %d", n, nMembers)
	}
	asker.send("WHO #big")
	if n := count(protocol.RPL_WHOREPLY, protocol.RPL_ENDOFWHO, one); n != nMembers {
		t.Fatalf("WHO listed %d members, want %d", n, nMembers)
	}
	asker.send("JOIN #big")
	if n := count(protocol.RPL_NAMREPLY, protocol.RPL_ENDOFNAMES, words); n != nMembers+1 {
		t.Fatalf("JOIN's NAMES listed %d members, want %d", n, nMembers+1)
	}
	bystander.send("PRIVMSG #side :still served")
	bystander.sync()
}

// A client that asks for a long reply and never reads is still cut as a
// slow consumer once it takes nothing for ping_timeout, and the server
// stops producing the reply. net.Pipe has no buffers to hide the stall in.
func TestLongReplyToNonReaderIsCut(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.SendQBytes = 8192
		c.Limits.PingTimeout = 500 * time.Millisecond
	})
	fillRooms(t, srv, 500)
	bystander := connect(t, addr, "bystander")
	near, far := net.Pipe()
	t.Cleanup(func() { near.Close() })
	srv.accept(far, "pipe")
	stuck := &client{t: t, conn: near, r: bufio.NewReader(near)}
	stuck.register("stuck")
	stuck.send("LIST")

	deadline := time.Now().Add(waitFor)
	for testCounter(t, srv, "livechat_slow_consumer_disconnects_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client that never reads was never cut")
		}
		bystander.sync() // a bystander is served meanwhile
	}
	// Whatever was in flight, then the ERROR, then the end: never the 323.
	for {
		m, err := stuck.tryRead()
		if err != nil {
			break
		}
		if m.Command == protocol.RPL_LISTEND {
			t.Fatal("the LIST went on after the client was cut")
		}
	}
}

// A labeled LIST longer than the send queue streams inside its
// labeled-response batch.
func TestLabeledLongListStreams(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Limits.SendQBytes = 8192 })
	fillRooms(t, srv, 1000)
	c := connectCaps(t, addr, "labeler", "labeled-response", "batch")
	c.send("@label=big LIST")
	start, _ := c.expect("BATCH")
	if tagOf(start, "label") != "big" || start.Param(1) != "labeled-response" {
		t.Fatalf("batch start %q", start.String())
	}
	id := strings.TrimPrefix(start.Param(0), "+")
	n := 0
	for {
		m := c.read()
		if m.Command == "BATCH" {
			if m.Param(0) != "-"+id {
				t.Fatalf("batch end %q", m.String())
			}
			break
		}
		if tagOf(m, "batch") != id {
			t.Fatalf("line outside the batch: %q", m.String())
		}
		if m.Command == protocol.RPL_LIST {
			n++
		}
	}
	if n != 1000 {
		t.Fatalf("got %d rooms, want 1000", n)
	}
	c.sync()
}
