package jshistory

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/livechat/livechat/internal/natstest"
	"github.com/livechat/livechat/rooms"
	"github.com/livechat/livechat/rooms/logtest"
)

var streams atomic.Int64

// freshConfig names streams no other test uses, so that many logs share
// one server.
func freshConfig() Config {
	k := streams.Add(1)
	return Config{
		Stream: fmt.Sprintf("H%d", k), Subject: fmt.Sprintf("h%d", k),
		IndexStream: fmt.Sprintf("I%d", k), IndexSubject: fmt.Sprintf("i%d", k),
		Timeout: 10 * time.Second,
	}
}

func open(t testing.TB, nc *nats.Conn, cfg Config) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	s := natstest.RunServer(t, "")
	defer s.Shutdown()
	nc := natstest.Connect(t, s.ClientURL())
	logtest.Run(t, func(t *testing.T) rooms.Log { return open(t, nc, freshConfig()) })
}

func latest(t *testing.T, l rooms.Log, target string, n int) []*rooms.Event {
	t.Helper()
	got, err := l.Query(target, rooms.Query{Sel: rooms.SelLatest, Limit: n, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func event(i int, target string) *rooms.Event {
	return &rooms.Event{
		At: time.UnixMilli(1_800_000_000_000 + int64(i)), ID: fmt.Sprintf("id%d", i),
		Source: "a!a@h", Command: "PRIVMSG", Params: []string{target, fmt.Sprintf("line %d", i)},
	}
}

// TestSharedHistory: two nodes, each with its own connection and Log on
// the same streams, see each other's events, msgid bounds included, and
// a redaction on one is gone on the other.
func TestSharedHistory(t *testing.T) {
	s := natstest.RunServer(t, "")
	defer s.Shutdown()
	cfg := freshConfig()
	a := open(t, natstest.Connect(t, s.ClientURL()), cfg)
	b := open(t, natstest.Connect(t, s.ClientURL()), cfg)
	for i := 1; i <= 10; i++ {
		l := a
		if i%2 == 0 {
			l = b
		}
		l.Append("#shared", event(i, "#shared"))
		if err := l.Sync(); err != nil { // the other node reads only what is stored
			t.Fatal(err)
		}
	}
	for _, l := range []*Log{a, b} {
		got := latest(t, l, "#shared", 100)
		if len(got) != 10 || got[0].ID != "id1" || got[9].ID != "id10" {
			t.Fatalf("LATEST on a node: %d events", len(got))
		}
		after, err := l.Query("#shared", rooms.Query{Sel: rooms.SelAfter, A: rooms.Bound{ID: "id3"}, Limit: 2})
		if err != nil || len(after) != 2 || after[0].ID != "id4" || after[1].ID != "id5" {
			t.Fatalf("AFTER id3 (appended by node a) = %v, %v", after, err)
		}
	}
	if e, err := a.Redact("#shared", "id4"); err != nil || e == nil {
		t.Fatalf("Redact id4 (appended by b) on a = %v, %v", e, err)
	}
	if got := latest(t, b, "#shared", 100); len(got) != 9 {
		t.Fatalf("after a's redaction b sees %d events", len(got))
	}
	if e, err := b.Redact("#shared", "id4"); e != nil || err != nil {
		t.Fatalf("second Redact on b = %v, %v", e, err)
	}
}

// TestRestart: what Sync acknowledged survives a restart of the NATS
// server on the same store directory.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	s := natstest.RunServer(t, dir)
	cfg := freshConfig()
	nc := natstest.Connect(t, s.ClientURL())
	l := open(t, nc, cfg)
	for i := 1; i <= 500; i++ {
		l.Append("#room", event(i, "#room"))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	s = natstest.RunServer(t, dir)
	defer s.Shutdown()
	l2 := open(t, natstest.Connect(t, s.ClientURL()), cfg)
	got := latest(t, l2, "#room", 1000)
	if len(got) != 500 || got[0].ID != "id1" || got[499].ID != "id500" {
		t.Fatalf("after a restart: %d events", len(got))
	}
	before, err := l2.Query("#room", rooms.Query{Sel: rooms.SelBefore, A: rooms.Bound{ID: "id250"}, Limit: 3})
	if err != nil || len(before) != 3 || before[0].ID != "id247" {
		t.Fatalf("BEFORE id250 after a restart (index lookup) = %v, %v", before, err)
	}
}

func TestEncode(t *testing.T) {
	for _, name := range []string{"", "#a", "#a.b c*>", "~a:bob c:1", "#ünï 🎉"} {
		tok := encode(name)
		for _, c := range tok {
			if c == '.' || c == ' ' || c == '*' || c == '>' {
				t.Errorf("encode(%q) = %q", name, tok)
			}
		}
		if back, ok := decode(tok); !ok || back != name {
			t.Errorf("decode(encode(%q)) = %q, %v", name, back, ok)
		}
	}
}
