package rooms

import (
	"slices"
	"strings"
	"testing"
)

// One user on two devices is one member: both devices see the room, what
// one says the other sees, peers see one nick, and the user leaves only
// when the last device does, or at once when one of them PARTs.
func TestDevicesShareAMembership(t *testing.T) {
	g := testRegistry(t)
	phone, laptop, bob := newFake(), newFake(), newFake()
	r, err := g.Join(mem(phone, "alice"), "#room", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Join(mem(bob, "bob"), "#room", ""); err != nil {
		t.Fatal(err)
	}
	phone.waitLines(t, 4) // JOIN, 353, 366, bob's JOIN
	bob.waitLines(t, 3)
	bob.reset()

	m := mem(laptop, "alice")
	m.Twin = phone
	if _, err := g.Join(m, "#room", ""); err != nil {
		t.Fatal(err)
	}
	got := laptop.waitLines(t, 3)
	if got[0] != ":alice!~alice@127.0.0.1 JOIN #room" || !strings.Contains(got[1], " 353 alice = #room :") || strings.Count(got[1], "alice") != 2 {
		t.Fatalf("second device saw %q; want its JOIN and alice listed once", got)
	}
	if n := r.Members(); n != 2 {
		t.Fatalf("room counts %d members, want 2 (alice on two devices, bob)", n)
	}

	r.Say(bob, Speech{Command: "PRIVMSG", Text: "hi alice"}, true)
	r.Say(laptop, Speech{Command: "PRIVMSG", Text: "from the laptop"}, true)
	want := []string{":bob!~bob@127.0.0.1 PRIVMSG #room :hi alice", ":alice!~alice@127.0.0.1 PRIVMSG #room :from the laptop"}
	if got := phone.waitLines(t, 6)[4:]; !slices.Equal(got, want) {
		t.Fatalf("phone saw %q, want %q", got, want)
	}
	if got := laptop.waitLines(t, 4)[3:]; !slices.Equal(got, want[:1]) {
		t.Fatalf("laptop (no echo-message) saw %q, want only bob's line", got)
	}
	if got := bob.waitLines(t, 1); len(got) != 1 || got[0] != want[1] {
		t.Fatalf("bob saw %q; want the laptop's message once and no JOIN", got)
	}

	// The phone drops: nobody hears of it, the laptop is still in.
	if peers, _ := r.Leave(phone, &Event{Source: "alice!~alice@127.0.0.1", Command: "QUIT", Params: []string{"gone"}}); len(peers) != 0 {
		t.Fatalf("a device leaving told %d peers", len(peers))
	}
	r.Say(bob, Speech{Command: "PRIVMSG", Text: "still there?"}, true)
	if got := laptop.waitLines(t, 5); got[4] != ":bob!~bob@127.0.0.1 PRIVMSG #room :still there?" {
		t.Fatalf("laptop after the phone left saw %q", got)
	}
	if err := r.Part(laptop, "bye"); err != nil {
		t.Fatal(err)
	}
	if got := bob.waitLines(t, 2); got[1] != ":alice!~alice@127.0.0.1 PART #room :bye" {
		t.Fatalf("bob saw %q, want alice's PART", got)
	}
	if n := r.Members(); n != 1 {
		t.Fatalf("room counts %d members after the PART, want 1", n)
	}
}

// A PART from one device takes the user out on every device.
func TestPartFromOneDeviceLeavesAll(t *testing.T) {
	g := testRegistry(t)
	phone, laptop, bob := newFake(), newFake(), newFake()
	r, _ := g.Join(mem(phone, "alice"), "#room", "")
	m := mem(laptop, "alice")
	m.Twin = phone
	g.Join(m, "#room", "")
	g.Join(mem(bob, "bob"), "#room", "")
	laptop.waitLines(t, 4)
	if err := r.Part(phone, ""); err != nil {
		t.Fatal(err)
	}
	if got := laptop.waitLines(t, 5); got[4] != ":alice!~alice@127.0.0.1 PART #room" {
		t.Fatalf("laptop saw %q, want the PART", got)
	}
	if err := r.Part(laptop, ""); err != ErrNotMember {
		t.Fatalf("laptop still a member after the PART: %v", err)
	}
	if n := r.Members(); n != 1 {
		t.Fatalf("%d members, want 1", n)
	}
}
