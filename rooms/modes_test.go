package rooms

import (
	"errors"
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

// +I lets a matching user into a +i room without an invitation, is listed
// with 346/347, and does not lift a ban.
func TestInviteExceptions(t *testing.T) {
	g := testRegistry(t)
	op := newFake()
	r, _ := g.Join(mem(op, "op"), "#quiet", "")
	modes := func(s string, args ...string) []ModeChange { c, _ := ParseModes(s, args); return c }
	r.Mode(op, "op", false, modes("+iI", "friend"))
	if _, err := g.Join(mem(newFake(), "stranger"), "#quiet", ""); !errors.Is(err, ErrInviteOnly) {
		t.Fatalf("stranger joined a +i room: %v", err)
	}
	if _, err := g.Join(mem(newFake(), "friend"), "#quiet", ""); err != nil {
		t.Fatalf("friend (+I) refused: %v", err)
	}
	op.reset()
	r.Mode(op, "op", false, []ModeChange{{Mode: 'I'}})
	if got := op.waitLines(t, 2); !strings.Contains(got[0], " 346 op #quiet friend!*@* op ") || !strings.Contains(got[1], " 347 op #quiet :") {
		t.Fatalf("+I list: %q", got)
	}
	r.Mode(op, "op", false, modes("+bI", "pal", "pal"))
	if _, err := g.Join(mem(newFake(), "pal"), "#quiet", ""); !errors.Is(err, ErrBanned) {
		t.Fatalf("+I lifted a ban: %v", err)
	}
}
