package protocol

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"testing"
)

const (
	benchTagless = "PRIVMSG #room :hello there everyone"
	benchTagged  = "@time=2026-11-29T10:00:00.000Z;msgid=abc123 :nick!user@host PRIVMSG #room :hello"
)

var benchLines = []struct{ name, line string }{
	{"tagless", benchTagless},
	{"tagged", benchTagged},
}

// sinkMessage keeps results alive so the compiler cannot drop the work.
var sinkMessage Message

func BenchmarkParse(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) {
			line := []byte(bl.line + "\r\n")
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				m, err := Parse(line)
				if err != nil {
					b.Fatal(err)
				}
				sinkMessage = m
			}
		})
	}
}

func BenchmarkParseString(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := ParseString(bl.line)
				if err != nil {
					b.Fatal(err)
				}
				sinkMessage = m
			}
		})
	}
}

func BenchmarkAppendTo(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) {
			m, err := ParseString(bl.line)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			b.SetBytes(int64(len(bl.line) + 2))
			for b.Loop() {
				buf = m.AppendTo(buf[:0])
			}
		})
	}
}

// BenchmarkReadLine reads from a 1 MiB stream of mixed lines, served in
// 4 KiB reads as a socket would; ns/op is per line.
func BenchmarkReadLine(b *testing.B) {
	var data []byte
	for i := 0; len(data) < 1<<20; i++ {
		switch i % 4 {
		case 0:
			data = append(data, benchTagged...)
		case 1:
			data = append(data, "PING :"...)
			data = strconv.AppendInt(data, int64(i), 10)
		default:
			data = append(data, benchTagless...)
		}
		data = append(data, '\r', '\n')
	}
	lines := bytes.Count(data, []byte("\n"))
	r := NewReader(&repeatChunks{data: data, chunk: 4096})
	b.ReportAllocs()
	b.SetBytes(int64(len(data) / lines))
	for b.Loop() {
		if _, err := r.ReadLine(); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatChunks serves data cyclically, at most chunk bytes per Read.
type repeatChunks struct {
	data  []byte
	off   int
	chunk int
}

func (r *repeatChunks) Read(p []byte) (int, error) {
	n := copy(p[:min(len(p), r.chunk)], r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// BenchmarkReadLinePerRead is the pattern of a quiet connection: each line
// arrives in its own Read, so the Reader has nothing buffered whenever it
// reads. "deadline" also has every other Read fail with a timeout, as the
// daemon's idle check makes it, so each op is two ReadLine calls. ns/op and
// allocs/op are per line.
func BenchmarkReadLinePerRead(b *testing.B) {
	timeout := os.ErrDeadlineExceeded
	for _, bc := range []struct {
		name    string
		line    string
		timeout bool
	}{
		{"pong", "PONG :irc.livechat.example", false},
		{"tagless", benchTagless, false},
		{"tagged", benchTagged, false}, // longer than the small array
		{"pong-deadline", "PONG :irc.livechat.example", true},
		{"tagged-deadline", benchTagged, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := &lineReader{line: []byte(bc.line + "\r\n"), timeout: bc.timeout}
			r := NewReader(src)
			b.ReportAllocs()
			b.SetBytes(int64(len(src.line)))
			for b.Loop() {
				line, err := r.ReadLine()
				if bc.timeout {
					if err != timeout {
						b.Fatalf("ReadLine = %q, %v; want %v", line, err, timeout)
					}
					line, err = r.ReadLine()
				}
				if err != nil || len(line) != len(bc.line) {
					b.Fatalf("ReadLine = %q, %v", line, err)
				}
			}
		})
	}
}

// lineReader serves line in each Read, resuming a partial one, as a socket
// does for a client that sends one line at a time. With timeout, every Read
// that would start a new line fails with os.ErrDeadlineExceeded first.
type lineReader struct {
	line     []byte
	off      int
	timeout  bool
	timedOut bool
}

func (l *lineReader) Read(p []byte) (int, error) {
	if l.timeout && l.off == 0 && !l.timedOut {
		l.timedOut = true
		return 0, os.ErrDeadlineExceeded
	}
	l.timedOut = false
	n := copy(p, l.line[l.off:])
	l.off = (l.off + n) % len(l.line)
	return n, nil
}

// BenchmarkIdleReader measures what a Reader waiting for its next line keeps
// on the heap, the Reader included, as the metric B/idle-reader: each op makes
// a Reader, reads a line and the deadline error that follows it, as the daemon
// sees a quiet connection, and keeps the Reader (the last idleRing of them)
// alive.
func BenchmarkIdleReader(b *testing.B) {
	const idleRing = 10000
	for _, bc := range []struct{ name, line string }{
		{"pong", "PONG :irc.livechat.example"},
		{"tagged", benchTagged},
	} {
		b.Run(bc.name, func(b *testing.B) {
			line := []byte(bc.line + "\r\n")
			srcs := make([]lineReader, idleRing)
			readers := make([]*Reader, idleRing)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			n := 0
			for b.Loop() {
				src := &srcs[n%idleRing]
				*src = lineReader{line: line, timeout: true}
				r := NewReader(src)
				if _, err := r.ReadLine(); err != os.ErrDeadlineExceeded {
					b.Fatal(err)
				}
				if _, err := r.ReadLine(); err != nil {
					b.Fatal(err)
				}
				if _, err := r.ReadLine(); err != os.ErrDeadlineExceeded {
					b.Fatal(err)
				}
				readers[n%idleRing] = r
				n++
			}
			b.StopTimer()
			// Two collections also empty the buffer pool, a cache that no
			// idle Reader holds on to.
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&after)
			held := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
			b.ReportMetric(held/float64(min(n, idleRing)), "B/idle-reader")
			runtime.KeepAlive(readers)
		})
	}
}
