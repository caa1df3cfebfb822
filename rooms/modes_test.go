package rooms

import (
	"strconv"
	"strings"
	"testing"

	"github.com/livechat/livechat/protocol"
)

func TestParseModes(t *testing.T) {
	changes, unknown := ParseModes("+ov-b+kl-lx", []string{"alice", "bob", "mask", "key", "10"})
	want := []ModeChange{{true, 'o', "alice"}, {true, 'v', "bob"}, {false, 'b', "mask"}, {true, 'k', "key"}, {true, 'l', "10"}, {false, 'l', ""}}
	if len(changes) != len(want) || string(unknown) != "x" {
		t.Fatalf("%v %q", changes, unknown)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("change %d: %v, want %v", i, changes[i], want[i])
		}
	}
	if got := protocol.CompleteMask("bob"); got != "bob!*@*" {
		t.Fatal(got)
	}
	if got := protocol.CompleteMask("*@host"); got != "*!*@host" {
		t.Fatal(got)
	}
	if got := protocol.CompleteMask("$a:acct"); got != "$a:acct" {
		t.Fatal(got)
	}
}

func TestBanListFull(t *testing.T) {
	g := testRegistry(t)
	op := newFake()
	r, _ := g.Join(mem(op, "op"), "#full", "")
	for i := range maxListEntries + 1 {
		op.reset()
		r.Mode(op, "op", false, []ModeChange{{Add: true, Mode: 'b', Arg: "n" + strconv.Itoa(i) + "!*@*"}})
		lines := op.waitLines(t, 1)
		full := strings.Contains(lines[0], " 478 op #full b :")
		if full != (i == maxListEntries) {
			t.Fatalf("ban %d: %q", i, lines[0])
		}
	}
}
