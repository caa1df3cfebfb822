package rooms

import "testing"

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
	if got := normalizeMask("bob"); got != "bob!*@*" {
		t.Fatal(got)
	}
	if got := normalizeMask("*@host"); got != "*!*@host" {
		t.Fatal(got)
	}
	if got := normalizeMask("$a:acct"); got != "$a:acct" {
		t.Fatal(got)
	}
}
