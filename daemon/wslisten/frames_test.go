package wslisten

import (
	"bytes"
	"testing"

	"github.com/coder/websocket"
)

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
	c := &corkConn{corked: true}
	c.writeControl(opClose, nil)
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
