package protocol

import (
	"bytes"
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
