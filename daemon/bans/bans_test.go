package bans

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"bob": "bob!*@*", "*@host": "*!*@host", "u@h": "*!u@h", "n!u": "n!u@*", "$a:acct": "$a:acct"} {
		if got, err := NormalizeK(in); err != nil || got != want {
			t.Errorf("NormalizeK(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"*", "*!*@*", "$a:", "$a:*", "", "a b"} {
		if got, err := NormalizeK(in); err == nil {
			t.Errorf("NormalizeK(%q) = %q, want an error", in, got)
		}
	}
	for in, want := range map[string]string{"1.2.3.4": "1.2.3.4/32", "10.1.2.3/8": "10.0.0.0/8", "::ffff:1.2.3.4": "1.2.3.4/32", "::ffff:1.2.3.0/120": "1.2.3.0/24", "2001:db8::1/48": "2001:db8::/48"} {
		if got, err := NormalizeD(in); err != nil || got != want {
			t.Errorf("NormalizeD(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"0.0.0.0/0", "10.0.0.0/7", "::/0", "2001::/15", "host.example", "::ffff:0.0.0.0/80"} {
		if got, err := NormalizeD(in); err == nil {
			t.Errorf("NormalizeD(%q) = %q, want an error", in, got)
		}
	}
}

func TestSetMatchesAndExpires(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSet([]Ban{
		{Kind: DLine, Mask: "192.0.2.0/24", Reason: "range"},
		{Kind: KLine, Mask: "*!*@198.51.100.7", Reason: "real address", Expires: now.Add(time.Hour)},
		{Kind: KLine, Mask: "*!*@cloak.example", Reason: "cloak"},
		{Kind: KLine, Mask: "$a:spam*", Reason: "account"},
	})
	for _, c := range []struct {
		who  Who
		want string
	}{
		{Who{Nick: "a", User: "u", Host: "x", IP: "192.0.2.9"}, "range"},
		{Who{Nick: "a", User: "u", Host: "x", IP: "::ffff:192.0.2.9"}, "range"},
		{Who{Nick: "a", User: "u", Host: "x", IP: "198.51.100.7"}, "real address"},
		{Who{Nick: "a", User: "u", Host: "cloak.example", IP: "203.0.113.1"}, "cloak"},
		{Who{Nick: "a", User: "u", Host: "x", IP: "203.0.113.1", Account: "spammer"}, "account"},
		{Who{Nick: "a", User: "u", Host: "x", IP: "203.0.113.1", Account: "nice"}, ""},
	} {
		b, ok := s.Match(c.who, now)
		if got := b.Reason; ok != (c.want != "") || got != c.want {
			t.Errorf("Match(%+v) = %q, %v; want %q", c.who, got, ok, c.want)
		}
	}
	later := now.Add(2 * time.Hour)
	if b, ok := s.Match(Who{Nick: "a", User: "u", Host: "x", IP: "198.51.100.7"}, later); ok {
		t.Errorf("expired ban still matches: %+v", b)
	}
	live, expired := s.List(KLine, later)
	if len(live) != 2 || len(expired) != 1 {
		t.Errorf("List after expiry: %d live, %d expired", len(live), len(expired))
	}
	if _, ok := s.Addr(netip.MustParseAddr("192.0.2.200"), now); !ok {
		t.Error("Addr misses the range")
	}
	if _, ok := s.Delete(Key(DLine, "192.0.2.0/24")); !ok {
		t.Error("Delete found nothing")
	}
	if _, ok := s.Addr(netip.MustParseAddr("192.0.2.200"), now); ok {
		t.Error("Addr matches a deleted range")
	}
}

func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "bans.json")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Ban{Kind: KLine, Mask: "Bad!*@*", Reason: "r", SetBy: "op", SetAt: at}
	if err := f.Put(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(Ban{Kind: DLine, Mask: "192.0.2.0/24", SetAt: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(Key(DLine, "192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete("absent"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := g.Load()
	if len(list) != 1 || list[0] != b || list[0].Key() != "K bad!*@*" {
		t.Fatalf("reopened: %+v", list)
	}
}
