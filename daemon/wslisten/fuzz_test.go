package wslisten

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzFrameReader feeds the server side's frame reader any bytes, in
// pieces of any size, with a read deadline passing before every piece or
// none. It must not panic, must read the same lines, end with the same
// error and send the same frames (pongs, close) however the bytes come,
// hand out only single lines within the limit, and never hold a message
// buffer beyond the limit.
func FuzzFrameReader(f *testing.F) {
	for _, stream := range [][][]byte{
		{clientFrame(fText, "NICK a"), clientFrame(fBinary, "caf\xe9")},
		{clientFrame(opText, "PRIV"), clientFrame(fPing, "p"), clientFrame(opContinuation, "MSG #a :"), clientFrame(fPong, ""), clientFrame(fin|opContinuation, "hi")},
		{clientFrame(fText, strings.Repeat("x", 550)), clientFrame(fText, strings.Repeat("x", 601))},
		{clientFrame(opText, strings.Repeat("x", 300)), clientFrame(fin|opContinuation, strings.Repeat("x", 300))},
		{clientFrame(fText, "a\nb"), clientFrame(fText, "c\r\n"), clientFrame(fText, "\xff")},
		{clientFrame(fClose, closeFrameOf(1000, "bye")), clientFrame(fText, "after")},
		{clientFrameLen(fText, 1<<63, "")},
		{clientFrame(fText|rsv1, "x")},
	} {
		f.Add(bytes.Join(stream, nil), uint8(0), false)
		f.Add(bytes.Join(stream, nil), uint8(2), true)
	}
	const max = 600 // more than a pooled buffer's 512 bytes: they grow
	f.Fuzz(func(t *testing.T, data []byte, step uint8, stall bool) {
		whole := readScript(t, data, len(data)+1, false, max)
		pieces := readScript(t, data, int(step%17)+1, stall, max)
		if whole != pieces {
			t.Fatalf("the pieces read otherwise than the whole:\n%s\n%s", pieces, whole)
		}
	})
}

// readScript reads data through a server-side conn, step bytes a read,
// and describes what came out.
func readScript(t *testing.T, data []byte, step int, stall bool, max int) string {
	s := &scriptConn{}
	s.script(bytes.Clone(data), step, stall)
	c := newServerConn(&corkConn{Conn: s}, nil, "", nil, nil, max)
	var out strings.Builder
	buf := make([]byte, max+2)
	for range 4*len(data) + 10 { // each read takes a byte or a stall, or ends
		n, err := c.Read(buf)
		if c.msg != nil && cap(*c.msg) > max+2 {
			t.Fatalf("message buffer of %d bytes", cap(*c.msg))
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			out.WriteString("error: " + err.Error() + "\nsent: " + strings.ToValidUTF8(s.out.String(), "?"))
			return out.String()
		}
		line := buf[:n]
		if n < 2 || string(line[n-2:]) != "\r\n" || bytes.ContainsAny(line[:n-2], "\r\n") {
			t.Fatalf("read %q, not one line", line)
		}
		out.Write(line)
	}
	t.Fatal("no end")
	return ""
}
