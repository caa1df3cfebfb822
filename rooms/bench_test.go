package rooms

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// countingClient counts deliveries without allocating, so the benchmark
// measures the room alone.
type countingClient struct {
	n        atomic.Int64
	target   int64
	done     chan struct{}
	features Features
}

func (c *countingClient) Send([]byte) bool {
	if c.n.Add(1) == c.target {
		close(c.done)
	}
	return true
}

func (c *countingClient) Away() bool { return false }

func (c *countingClient) Reply(line []byte) bool { return c.Send(line) }

func (c *countingClient) Features() Features { return c.features }

func (c *countingClient) Removed(*Room) {}

func (c *countingClient) Queue(line []byte) bool { return c.Send(line) }

func (c *countingClient) Flush() {}

// BenchmarkFanout sends b.N messages into a room of 1,000 members and
// reports the cost per delivery. allocs/op is per message: the target is a
// constant (the request, the event and its encoding), none per recipient.
func BenchmarkFanout(b *testing.B) { benchmarkFanout(b, nil) }

// BenchmarkFanoutMixedCaps is the same with members spread over four
// capability sets (plain; server-time; server-time+message-tags;
// everything): each message is encoded once per set, so allocs/op grows
// by a few encodings, not by members.
func BenchmarkFanoutMixedCaps(b *testing.B) {
	benchmarkFanout(b, []Features{0, FeatTime, FeatTime | FeatTags, FeatTime | FeatTags | FeatAccountTag | FeatExtendedJoin})
}

func benchmarkFanout(b *testing.B, mix []Features) {
	const members = 1000
	g := NewRegistry(Options{ServerName: "bench", MaxRooms: 1, MaxMembers: members, HistorySize: 100, HistoryReplay: 0})
	defer g.Close()
	sender := &countingClient{}
	r, err := g.Join(mem(sender, "sender"), "#bench", "")
	if err != nil {
		b.Fatal(err)
	}
	features := func(i int) Features {
		if len(mix) == 0 {
			return 0
		}
		return mix[i%len(mix)]
	}
	last := &countingClient{done: make(chan struct{}), features: features(members - 1)}
	for i := 1; i < members-1; i++ {
		if _, err := g.Join(mem(&countingClient{features: features(i)}, fmt.Sprint("m", i)), "#bench", ""); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := g.Join(mem(last, "last"), "#bench", ""); err != nil {
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
