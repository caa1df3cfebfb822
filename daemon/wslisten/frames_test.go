package wslisten

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// The meter finds every frame header however the bytes are split, with
// 7-bit, 16-bit and 64-bit lengths, masked or not, and charges all
// frames but those that end a data message.
func TestFrameMeterCharges(t *testing.T) {
	hdr := func(b0 byte, masked bool, n int) []byte {
		m := byte(0)
		if masked {
			m = 0x80
		}
		var h []byte
		switch {
		case n < 126:
			h = []byte{b0, m | byte(n)}
		case n < 1<<16:
			h = []byte{b0, m | 126, byte(n >> 8), byte(n)}
		default:
			h = []byte{b0, m | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		}
		if masked {
			h = append(h, 1, 2, 3, 4)
		}
		return append(h, bytes.Repeat([]byte{0x89}, n)...) // payload that looks like ping headers
	}
	var stream []byte
	stream = append(stream, hdr(0x81, true, 5)...)     // text, whole: free
	stream = append(stream, hdr(0x89, true, 0)...)     // ping: charged
	stream = append(stream, hdr(0x01, true, 300)...)   // text, first fragment: charged
	stream = append(stream, hdr(0x00, false, 0)...)    // continuation: charged
	stream = append(stream, hdr(0x80, true, 70000)...) // last fragment: free
	stream = append(stream, hdr(0x8A, true, 3)...)     // pong: charged
	stream = append(stream, hdr(0x82, true, 126)...)   // binary, whole: free
	for _, step := range []int{1, 3, 7, 512, len(stream)} {
		charged := 0
		m := &frameMeter{charge: func() bool { charged++; return true }}
		for b := stream; len(b) > 0; {
			k := min(step, len(b))
			if !m.scan(b[:k]) {
				t.Fatal("refused without a refusal")
			}
			b = b[k:]
		}
		if charged != 4 || m.nhdr != 0 || m.skip != 0 {
			t.Errorf("read %d bytes at a time: charged %d frames (want 4), left nhdr=%d skip=%d", step, charged, m.nhdr, m.skip)
		}
	}
}

// Once the charge refuses, Read fails for good.
func TestFrameMeterRefusal(t *testing.T) {
	pings := strings.Repeat("\x89\x80\x00\x00\x00\x00", 3)
	left := 2
	m := &frameMeter{r: strings.NewReader(pings), charge: func() bool { left--; return left >= 0 }}
	buf := make([]byte, 64)
	if _, err := m.Read(buf); err != ErrExcessFlood {
		t.Fatalf("Read: %v, want ErrExcessFlood", err)
	}
	if _, err := m.Read(buf); err != ErrExcessFlood {
		t.Fatalf("second Read: %v, want ErrExcessFlood", err)
	}
}

// The frames the cork builds read back as one final, unmasked message of
// the right type and length, at each length encoding's edges.
func TestCorkFramesParse(t *testing.T) {
	for _, n := range []int{1, 125, 126, 0xffff, 0x10000} {
		c := &corkConn{corked: true}
		p := bytes.Repeat([]byte{'x'}, n)
		if err := c.appendFrame(byte(websocket.MessageBinary), p); err != nil {
			t.Fatal(err)
		}
		h := c.buf[:frameHeaderLen(c.buf[:2])]
		fin, op, length := parseFrameHeader(h)
		if !fin || op != 2 || length != uint64(n) || h[1]&0x80 != 0 || !bytes.Equal(c.buf[len(h):], p) {
			t.Fatalf("%d bytes: fin %v op %d length %d header % x", n, fin, op, length, h)
		}
	}
	c := &corkConn{framing: true, corked: true}
	c.Write([]byte{0x88, 0}) // the library's close frame
	if err := c.appendFrame(1, []byte("late")); err == nil {
		t.Fatal("a data frame was framed after the close frame")
	}
}

// TryWrite never waits for the cork: while another write holds it (the
// library's pong to a client that stopped reading), it takes nothing.
func TestTryWriteDoesNotWaitForTheCork(t *testing.T) {
	c := &conn{cork: &corkConn{}, msgType: websocket.MessageText}
	c.cork.mu.Lock()
	if taken, _ := c.TryWrite([]byte("PING x\r\n")); taken {
		t.Fatal("TryWrite took a line while the cork was held")
	}
	c.cork.mu.Unlock()
}
