package protocol

import "testing"

func TestMatchMask(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"troll!*@*", "troll!~troll@127.0.0.1", true},
		{"TROLL!*@*", "troll!~troll@127.0.0.1", true},
		{"*!*@127.0.0.1", "troll!~troll@127.0.0.1", true},
		{"*!*@127.0.0.2", "troll!~troll@127.0.0.1", false},
		{"tr?ll!*@*", "troll!u@h", true},
		{"coolni*", "coolNick", true},
		{"*", "", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"", "x", false},
		{"**a", "bba", true},
	}
	for _, c := range cases {
		if got := MatchMask(c.pattern, c.s); got != c.want {
			t.Errorf("MatchMask(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
}
