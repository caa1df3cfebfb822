package wslisten

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/coder/websocket"
)

// ErrExcessFlood is what Read returns, for good, once the function given
// to ChargeFrames has refused a frame; Close then says 1008 (policy
// violation) "Excess flood".
var ErrExcessFlood = errors.New("WebSocket client sent frames faster than flood control allows")

// frameMeter sits between the socket and the WebSocket library and reads
// the frame headers going by. The library answers pings, takes pongs and
// joins fragments on its own, so a client could send those without end and
// never hand the session a line to count; the meter charges each of them
// to the session's flood control instead (see conn.ChargeFrames). It
// charges every frame but the one that ends a data message: that message
// becomes a line, which the session charges itself.
//
// The library reads under its own lock, so the meter is used by one
// goroutine at a time: the session's reader inside Read, or Close.
type frameMeter struct {
	r       io.Reader
	charge  func() bool // nil charges nothing
	closing atomic.Bool // Close is reading the client's last frames: charge nothing
	err     error       // the refusal, returned from then on

	hdr  [maxFrameHeader]byte
	nhdr int    // header bytes of the next frame collected so far
	skip uint64 // payload bytes of the current frame still to go by
}

// maxFrameHeader is the longest frame header: 2 bytes, an 8-byte length
// and a 4-byte mask.
const maxFrameHeader = 14

func (m *frameMeter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(p)
	if !m.scan(p[:n]) {
		m.err = ErrExcessFlood
		return 0, m.err
	}
	return n, err
}

// scan follows the frames in b and reports false when one was refused.
func (m *frameMeter) scan(b []byte) bool {
	for len(b) > 0 {
		if m.skip > 0 {
			k := min(uint64(len(b)), m.skip)
			m.skip -= k
			b = b[k:]
			continue
		}
		m.hdr[m.nhdr] = b[0]
		m.nhdr++
		b = b[1:]
		if m.nhdr < frameHeaderLen(m.hdr[:m.nhdr]) {
			continue
		}
		fin, opcode, length := parseFrameHeader(m.hdr[:m.nhdr])
		m.nhdr, m.skip = 0, length
		endsMessage := fin && opcode <= 2 // continuation, text or binary
		if !endsMessage && m.charge != nil && !m.closing.Load() && !m.charge() {
			return false
		}
	}
	return true
}

// frameHeaderLen is how long the header that h begins is, once h holds
// its first two bytes (before that, 2).
func frameHeaderLen(h []byte) int {
	if len(h) < 2 {
		return 2
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4 // the mask key
	}
	return n
}

func parseFrameHeader(h []byte) (fin bool, opcode byte, length uint64) {
	fin, opcode = h[0]&0x80 != 0, h[0]&0x0f
	switch l := h[1] & 0x7f; l {
	case 126:
		length = uint64(h[2])<<8 | uint64(h[3])
	case 127:
		for _, c := range h[2:10] {
			length = length<<8 | uint64(c)
		}
	default:
		length = uint64(l)
	}
	return fin, opcode, length
}

// ChargeFrames has the connection call charge for each frame the client
// sends that is not the end of a data message (pings, pongs, fragments),
// from inside Read, so charge may sleep to slow the client down. When it
// returns false, Read fails with ErrExcessFlood from then on. Call it
// before the first Read; on a dialled connection it does nothing.
func (c *conn) ChargeFrames(charge func() bool) {
	if c.meter == nil {
		return
	}
	c.meter.charge = func() bool {
		if charge() {
			return true
		}
		c.goodbye.Store(&closeFrame{websocket.StatusPolicyViolation, "Excess flood"})
		return false
	}
}
