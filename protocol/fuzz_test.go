package protocol

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzRoundTrip checks, for any line that parses, that encoding gives a line
// that parses to an equal Message, and that encoding that again gives the
// same bytes (the encoding is stable). Lines that do not parse only have to
// not panic. Parse never produces what cannot round-trip (a space or leading
// ':' in a middle parameter, an empty middle parameter, an empty source), so
// starting from parsed messages is what makes the property hold.
func FuzzRoundTrip(f *testing.F) {
	for _, line := range []string{
		"PING",
		"PING :",
		"NICK bob\r\n",
		"privmsg #room :hello there everyone\n",
		":nick!user@host PRIVMSG #room :hi :) : ::",
		"@time=2026-11-29T10:00:00.000Z;msgid=abc123 :nick!user@host PRIVMSG #room :hello",
		`@a=x\:y\sz\\w\rq\n;b=\;c=\q;flag;+draft/typing=active TAGMSG #a`,
		"@a;;b=; CMD",
		"   USER  bob   0  *   :Bob  Smith  ",
		":srv 005 bob CHANTYPES=# NICKLEN=30 CASEMAPPING=ascii :are supported by this server",
		"CMD a b c d e f g h i j k l m n o p q r s t",
		"CMD a b c d e f g h i j k l m n ::o",
		"PRIVMSG #a :\x01ACTION waves\x01 \x02bold\x02 \x0304colour",
		"PRIVMSG #a :héllo ☃ \xff\xfe",
		"@=x CMD",
		"@ CMD",
		": CMD",
		"\r\n",
		"PING\r\r\n",
		"PRIVMSG #a :a\x00b",
	} {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := Parse(line)
		ms, errs := ParseString(string(line))
		if err != errs || !reflect.DeepEqual(m, ms) {
			t.Fatalf("Parse and ParseString disagree on %q:\n  %#v, %v\n  %#v, %v", line, m, err, ms, errs)
		}
		if err != nil {
			if !reflect.DeepEqual(m, Message{}) {
				t.Fatalf("Parse(%q) returned %#v with error %v, want the zero Message", line, m, err)
			}
			return
		}

		enc := m.Bytes()
		if got := m.AppendTo(nil); !bytes.Equal(got, enc) {
			t.Fatalf("AppendTo and Bytes disagree: %q vs %q", got, enc)
		}
		if len(enc) < m.wireLen() {
			checkCut(t, m, enc)
			return
		}
		if got := m.String(); got+"\r\n" != string(enc) {
			t.Fatalf("String() = %q, Bytes() = %q", got, enc)
		}
		if i := bytes.IndexAny(enc, "\x00\r\n"); i != len(enc)-2 {
			t.Fatalf("encoding %q has NUL, CR or LF before its terminator", enc)
		}

		m2, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(%q) = %#v\nencoded as %q, which does not parse: %v", line, m, enc, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("Parse(%q) =\n  %#v\nencoded as %q, which parses as\n  %#v", line, m, enc, m2)
		}
		if enc2 := m2.Bytes(); !bytes.Equal(enc, enc2) {
			t.Fatalf("unstable encoding: %q then %q", enc, enc2)
		}
	})
}

// checkCut checks an encoding whose body was over MaxBodyLen: it fits now,
// still parses, and differs from m only in a shorter last parameter.
func checkCut(t *testing.T, m Message, enc []byte) {
	t.Helper()
	body := enc[:len(enc)-2]
	if len(m.Tags) > 0 {
		body = body[bytes.IndexByte(body, ' ')+1:]
	}
	if len(body) > MaxBodyLen {
		t.Fatalf("cut encoding %q still has a %d-byte body", enc, len(body))
	}
	m2, err := Parse(enc)
	if err != nil {
		t.Fatalf("cut encoding %q does not parse: %v", enc, err)
	}
	last := len(m.Params) - 1
	if m2.Command != m.Command || len(m2.Params) != len(m.Params) || !reflect.DeepEqual(m.Params[:last], m2.Params[:last]) {
		t.Fatalf("cutting %#v changed more than its last parameter: %#v", m, m2)
	}
	safe := []byte(m.Params[last])
	for i, c := range safe {
		if c == 0 || c == '\r' || c == '\n' {
			safe[i] = ' ' // as appendSafe writes them
		}
	}
	if !bytes.HasPrefix(safe, []byte(m2.Params[last])) || !utf8.ValidString(m2.Params[last]) && utf8.Valid(safe) {
		t.Fatalf("cut last parameter %q is not a prefix of %q", m2.Params[last], safe)
	}
}

// FuzzReader compares Reader with a model that splits the whole input on
// '\n' and applies the limits to each line, whatever the Read chunking. The
// input is prefix + pad*padLen + suffix so the fuzzer can reach the 510 and
// 8191 byte limits without having to grow inputs that large byte by byte.
func FuzzReader(f *testing.F) {
	f.Add([]byte("PING a\r\nPING b\n"), uint16(0), byte('x'), []byte(""), uint8(0))
	f.Add([]byte("PRIVMSG #a :"), uint16(MaxBodyLen-12), byte('x'), []byte("\r\nPING\n"), uint8(3))
	f.Add([]byte("PRIVMSG #a :"), uint16(MaxBodyLen-11), byte('x'), []byte("\nPING\n"), uint8(200))
	f.Add([]byte("@k="), uint16(MaxTagsLen-3), byte('v'), []byte(" PING\r\nPING\n"), uint8(255))
	f.Add([]byte("@k="), uint16(MaxTagsLen-2), byte('v'), []byte("\nPING\n"), uint8(7))
	f.Add([]byte("@k "), uint16(MaxBodyLen), byte('\r'), []byte("\n\n"), uint8(1))
	f.Add([]byte(""), uint16(20000), byte(0), []byte("PING x\nPING y"), uint8(128))
	f.Fuzz(func(t *testing.T, prefix []byte, padLen uint16, pad byte, suffix []byte, chunk uint8) {
		input := make([]byte, 0, len(prefix)+int(padLen)+len(suffix))
		input = append(input, prefix...)
		input = append(input, bytes.Repeat([]byte{pad}, int(padLen))...)
		input = append(input, suffix...)

		want := modelReadLines(input)
		r := NewReader(&chunkReader{data: input, chunk: int(chunk) + 1})
		for i := 0; ; i++ {
			line, err := r.ReadLine()
			if i == len(want) {
				if err != io.EOF {
					t.Fatalf("result %d: %q, %v; want io.EOF", i, line, err)
				}
				break
			}
			if string(line) != want[i].line || !errors.Is(err, want[i].err) {
				t.Fatalf("result %d: %q, %v; want %v", i, line, err, want[i])
			}
		}

		// Again with read deadlines expiring now and then, with and without
		// data, as the daemon's idle checks make them: each is reported once
		// and changes nothing else, wherever it falls in a line.
		every := 2 + int(chunk)%5
		tr := &timeoutReader{r: &chunkReader{data: input, chunk: int(chunk)/3 + 1}, every: every}
		r = NewReader(tr)
		timeouts := 0
		for i := 0; ; {
			line, err := r.ReadLine()
			if err == os.ErrDeadlineExceeded {
				if line != nil {
					t.Fatalf("line %q returned with the deadline error", line)
				}
				if timeouts++; timeouts > tr.injected {
					t.Fatalf("%d deadline errors reported, %d returned by Read", timeouts, tr.injected)
				}
				continue
			}
			if i == len(want) {
				if err != io.EOF {
					t.Fatalf("with deadlines, result %d: %q, %v; want io.EOF", i, line, err)
				}
				break
			}
			if string(line) != want[i].line || !errors.Is(err, want[i].err) {
				t.Fatalf("with deadlines, result %d: %q, %v; want %v", i, line, err, want[i])
			}
			i++
		}
		if timeouts != tr.injected {
			t.Fatalf("%d deadline errors reported, %d returned by Read", timeouts, tr.injected)
		}
	})
}

// modelReadLines is the obvious, unbounded-memory version of Reader.
func modelReadLines(input []byte) []result {
	var out []result
	for len(input) > 0 {
		line := input
		i := bytes.IndexByte(input, '\n')
		terminated := i >= 0
		if terminated {
			line, input = input[:i], input[i+1:]
		} else {
			input = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if modelFits(line) && !terminated {
			out = append(out, result{err: io.ErrUnexpectedEOF}) // half a line is not run
		} else if modelFits(line) {
			out = append(out, result{line: string(line)})
		} else {
			out = append(out, result{err: ErrLineTooLong})
		}
	}
	return out
}

func modelFits(line []byte) bool {
	if len(line) == 0 || line[0] != '@' {
		return len(line) <= MaxBodyLen
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return len(line) <= MaxTagsLen
	}
	return sp <= MaxTagsLen && len(line)-sp-1 <= MaxBodyLen
}

// chunkReader returns at most chunk bytes per Read, and io.EOF together with
// the last data, which io.Reader allows and callers must handle.
type chunkReader struct {
	data  []byte
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	if len(c.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}
