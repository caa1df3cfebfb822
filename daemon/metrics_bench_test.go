package daemon

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
)

// The chat path pays for metrics on every line: a command counter, the
// bytes-read counter, and per room message the messages/deliveries
// counters and the fan-out histogram. These benchmarks set the cost of
// those operations against the cost of the whole path they ride on, in the
// same run:
//
//	go test -run=NONE -bench='MetricOps|ChatPath' ./daemon
//
// BenchmarkMetricOps/per_message is what one chat line costs in metrics;
// BenchmarkChatPath is one line from a client's socket to every member's
// socket (ns/op is per message, pipelined).

func BenchmarkMetricOps(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry(), &Server{})
	cmd := m.commands[0]
	b.Run("counter_inc", func(b *testing.B) {
		for b.Loop() {
			cmd.Inc()
		}
	})
	b.Run("counter_add", func(b *testing.B) {
		for b.Loop() {
			m.bytesRead.Add(64)
		}
	})
	b.Run("histogram_observe", func(b *testing.B) {
		for b.Loop() {
			m.fanout.Observe(3e-6)
		}
	})
	// A command's handler timed: two clock reads and an observation (one
	// command in commandTimeSample pays it).
	b.Run("command_seconds", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			m.commandSeconds[0].Observe(time.Since(start).Seconds())
		}
	})
	// Everything one PRIVMSG to a room adds up to.
	b.Run("per_message", func(b *testing.B) {
		for b.Loop() {
			cmd.Inc()
			if m.timeCommand(0) {
				start := time.Now()
				m.commandSeconds[0].Observe(time.Since(start).Seconds())
			}
			m.bytesRead.Add(64)
			m.delivered(10, 3*time.Microsecond)
		}
	})
	// Both cores updating the same series: lock-free, but the cache line
	// moves between cores.
	b.Run("per_message_parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cmd.Inc()
				if m.timeCommand(0) {
					start := time.Now()
					m.commandSeconds[0].Observe(time.Since(start).Seconds())
				}
				m.bytesRead.Add(64)
				m.delivered(10, 3*time.Microsecond)
			}
		})
	})
}

func BenchmarkChatPath(b *testing.B) {
	for _, members := range []int{2, 10} {
		b.Run("members="+strconv.Itoa(members), func(b *testing.B) { benchChat(b, members) })
	}
}

// benchChat has one member send b.N lines to a room and waits until every
// other member has read all of them.
func benchChat(b *testing.B, members int) {
	cfg := configs.Default()
	cfg.Listen.TCP = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Accounts.Store = "memory"
	cfg.Limits.FloodBurst = 1 << 30
	cfg.Limits.FloodRate = 1 << 30
	cfg.Limits.SendQBytes = 64 << 20
	srv := New(&cfg, Options{Logger: zerolog.Nop()})
	l, err := net.Listen("tcp", cfg.Listen.TCP)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l, "tcp")
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	conns := make([]*benchConn, members)
	for i := range conns {
		conns[i] = benchJoin(b, l.Addr().String(), "m"+strconv.Itoa(i))
	}
	line := []byte("PRIVMSG #bench :a line of chat about the length people type\r\n")
	done := make(chan error, members-1)
	b.ResetTimer()
	for _, c := range conns[1:] {
		go func() { done <- c.readPRIVMSGs(b.N) }()
	}
	sender := conns[0]
	for range b.N {
		if _, err := sender.w.Write(line); err != nil {
			b.Fatal(err)
		}
	}
	if err := sender.w.Flush(); err != nil {
		b.Fatal(err)
	}
	for range members - 1 {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, c := range conns {
		c.conn.Close()
	}
}

type benchConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func benchJoin(b *testing.B, addr, nick string) *benchConn {
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10)}
	c.w.WriteString("NICK " + nick + "\r\nUSER " + nick + " 0 * :bench\r\nJOIN #bench\r\n")
	if err := c.w.Flush(); err != nil {
		b.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(waitFor))
	for range 1000 {
		l, err := c.r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(l, " 366 ") { // end of NAMES: joined
			conn.SetReadDeadline(time.Time{})
			return c
		}
	}
	b.Fatal("no end of NAMES")
	return nil
}

func (c *benchConn) readPRIVMSGs(n int) error {
	c.conn.SetReadDeadline(time.Now().Add(time.Minute))
	for got := 0; got < n; {
		l, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if bytes.Contains(l, []byte(" PRIVMSG ")) {
			got++
		}
	}
	return nil
}
