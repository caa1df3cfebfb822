package jshistory

import (
	"fmt"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/natstest"
	"github.com/livechat/livechat/rooms"
)

// BenchmarkAppend: appends to one room, published asynchronously, with a
// Sync at the end; the figure per op includes the wait for every ack.
func BenchmarkAppend(b *testing.B) {
	s := natstest.RunServer(b, "")
	defer s.Shutdown()
	l := open(b, natstest.Connect(b, s.ClientURL()), freshConfig())
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l.Append("#bench", event(i, "#bench"))
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendSync: one append then Sync (history.sync: always).
func BenchmarkAppendSync(b *testing.B) {
	s := natstest.RunServer(b, "")
	defer s.Shutdown()
	l := open(b, natstest.Connect(b, s.ClientURL()), freshConfig())
	b.ResetTimer()
	for i := range b.N {
		l.Append("#bench", event(i, "#bench"))
		if err := l.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPage reads pages of 100 from a room of 100,000 events (one in
// ten a JOIN) in a stream where another 100,000 events of 100 other rooms
// are interleaved.
func BenchmarkPage(b *testing.B) {
	s := natstest.RunServer(b, "")
	defer s.Shutdown()
	l := open(b, natstest.Connect(b, s.ClientURL()), freshConfig())
	const n = 100_000
	start := time.Now()
	for i := 1; i <= n; i++ {
		e := event(i, "#big")
		if i%10 == 0 {
			e.Command = "JOIN"
		}
		l.Append("#big", e)
		o := event(n+i, "#other")
		l.Append(fmt.Sprintf("#o%d", i%100), o)
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled 200,000 events in %v", time.Since(start))
	mid := rooms.Bound{ID: fmt.Sprintf("id%d", n/2+1)}
	cases := []struct {
		name string
		q    rooms.Query
	}{
		{"Latest", rooms.Query{Sel: rooms.SelLatest, Limit: 100}},
		{"LatestEvents", rooms.Query{Sel: rooms.SelLatest, Limit: 100, Events: true}},
		{"BeforeMsgid", rooms.Query{Sel: rooms.SelBefore, A: mid, Limit: 100}},
		{"AfterMsgid", rooms.Query{Sel: rooms.SelAfter, A: mid, Limit: 100}},
		{"AroundMsgid", rooms.Query{Sel: rooms.SelAround, A: mid, Limit: 100}},
		{"BeforeTime", rooms.Query{Sel: rooms.SelBefore, A: rooms.Bound{At: event(n/2, "").At}, Limit: 100}},
		{"AfterTime", rooms.Query{Sel: rooms.SelAfter, A: rooms.Bound{At: event(n/2, "").At}, Limit: 100}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				got, err := l.Query("#big", c.q)
				if err != nil || len(got) != 100 {
					b.Fatalf("%d events, %v", len(got), err)
				}
			}
		})
	}
	// msgid lookups through the index stream, as another node does.
	l.cache.init(1)
	b.Run("BeforeMsgidIndexed", func(b *testing.B) {
		for range b.N {
			got, err := l.Query("#big", cases[2].q)
			if err != nil || len(got) != 100 {
				b.Fatalf("%d events, %v", len(got), err)
			}
		}
	})
}
