package wslisten

import "errors"

// ErrExcessFlood is what Read returns, for good, once the function given
// to ChargeFrames has refused a frame; Close then says 1008 (policy
// violation) "Excess flood".
var ErrExcessFlood = errors.New("WebSocket client sent frames faster than flood control allows")

// maxFrameHeader is the longest frame header: 2 bytes, an 8-byte length
// and a 4-byte mask.
const maxFrameHeader = 14

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
// from inside Read, so charge may sleep to slow the client down: those
// frames never become a line for the session to count, so a client could
// otherwise send them without end. When charge returns false, Read fails
// with ErrExcessFlood from then on. Call it before the first Read; on a
// dialled connection it does nothing.
func (c *conn) ChargeFrames(charge func() bool) {
	if c.ws == nil {
		c.charge = charge
	}
}
