package rooms

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// countingClient counts deliveries without allocating, so the benchmark
// measures the room alone.
type countingClient struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (c *countingClient) Send([]byte) bool {
	if c.n.Add(1) == c.target {
		close(c.done)
	}
	return true
}

func (c *countingClient) Away() bool { return false }

func (c *countingClient) Reply(line []byte) bool { return c.Send(line) }

func (c *countingClient) Features() Features { return 0 }

// BenchmarkFanout sends b.N messages into a room of 1,000 members and
// reports the cost per delivery. allocs/op is per message: the target is a
// constant (the request and the encoded line), none per recipient.
func BenchmarkFanout(b *testing.B) {
	const members = 1000
	g := NewRegistry(Options{ServerName: "bench", MaxRooms: 1, MaxMembers: members, HistorySize: 100, HistoryReplay: 0})
	defer g.Close()
	sender := &countingClient{}
	r, err := g.Join(mem(sender, "sender"), "#bench")
	if err != nil {
		b.Fatal(err)
	}
	last := &countingClient{done: make(chan struct{})}
	for i := 1; i < members-1; i++ {
		if _, err := g.Join(mem(&countingClient{}, fmt.Sprint("m", i)), "#bench"); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := g.Join(mem(last, "last"), "#bench"); err != nil {
		b.Fatal(err)
	}
	last.n.Store(0)
	last.target = int64(b.N)
	text := "hello everyone, this is a typical chat line of some length"

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Say(sender, Speech{Command: "PRIVMSG", Text: text}, false)
	}
	<-last.done
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(members-1)), "ns/delivery")
}
