package daemon

import (
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
)

// countingConn wraps a real loopback connection and counts write calls.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// BenchmarkSendCoalescing queues each of b.N lines to 50 sessions over
// real loopback TCP connections, as a room's fan-out does, and reports
// the cost per delivery and how many lines each write call carried.
func BenchmarkSendCoalescing(b *testing.B) {
	const sessions = 50
	cfg := configs.Default()
	cfg.Limits.SendQBytes = 1 << 30
	srv := New(&cfg, Options{Logger: zerolog.Nop()})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	line := []byte(":alice!~alice@127.0.0.1 PRIVMSG #room :hello everyone, a typical chat line\r\n")
	want := int64(b.N * len(line))
	var writes atomic.Int64
	drained := make(chan error, sessions)
	targets := make([]*Session, sessions)
	for i := range targets {
		dialed, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer dialed.Close()
		accepted, err := l.Accept()
		if err != nil {
			b.Fatal(err)
		}
		targets[i] = newSession(srv, &countingConn{Conn: accepted, writes: &writes}, "tcp", uint64(i))
		go func() {
			_, err := io.CopyN(io.Discard, dialed, want)
			drained <- err
		}()
	}

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, s := range targets {
			s.Send(line)
		}
	}
	for range sessions {
		if err := <-drained; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	deliveries := float64(b.N * sessions)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(deliveries/float64(writes.Load()), "lines/write")
}
