package wslisten

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"os"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// The server side reads the client's frames itself, off the socket, in
// the caller's goroutine; the library only did the upgrade. An idle
// connection's reader then parks in the socket's Read a few calls below
// Session.readLoop, on the smallest goroutine stack, holding no buffer:
// the library's reader parked some twenty frames deep, through its
// buffered reader and locks, which grew every reader's stack to 4-8 KiB
// (docs/BENCHMARKS.md, "WebSocket idle memory").
//
// All the reading state lives in the conn, so a read that fails on a
// deadline, wherever it stopped (in a header, a payload, between the
// fragments of a message), goes on where it was on the next Read.

// Opcodes (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	// noFrame is conn.op between frames: the next bytes are a header.
	noFrame = 0xff
	// brokenFrame is conn.op once the stream cannot be followed any more
	// (a refused header whose payload was never read).
	brokenFrame = 0xfe
	// closedFrame is conn.op once the client's close frame is in:
	// nothing follows it.
	closedFrame = 0xfd
)

// maxSkip is the longest payload of an oversized message that Close's
// wait for the client's close frame reads past; after a longer one the
// stream is given up.
const maxSkip = 1 << 30

// maxControlPayload is the longest payload of a control frame (RFC 6455
// 5.5).
const maxControlPayload = 125

// smallReadSize is the array a server-side conn reads the socket into:
// frame headers, the short messages of a quiet client, and a control
// frame's payload, which must fit whole (it is handled in place).
// Longer payloads are read straight into the message buffer.
const smallReadSize = 128

var _ [smallReadSize - maxControlPayload]struct{} // a control payload fits

// maxEmptyReads bounds how often the socket may return no bytes and no
// error in a row before reading gives up with io.ErrNoProgress.
const maxEmptyReads = 100

// errProtocol is what Read returns, for good, once the client broke RFC
// 6455; the connection has been closed with status 1002.
var errProtocol = errors.New("WebSocket protocol violation")

// readFrames reads frames until a data message is complete, and leaves
// it in pending; pings are answered and pongs dropped on the way. With
// drain (Close waiting for the client's close frame), data is thrown
// away as it comes, without a buffer, and it returns only at the close
// frame or an error. A close frame from the client makes it return
// io.EOF. The caller holds rmu.
func (c *conn) readFrames(drain bool) error {
	for {
		if c.op == noFrame {
			if err := c.readHeader(drain); err != nil {
				return err
			}
		}
		switch c.op {
		case brokenFrame:
			return errProtocol
		case closedFrame:
			return io.EOF
		}
		if c.op >= opClose {
			if int(c.in1-c.in0) < c.left {
				if err := c.fill(); err != nil {
					return err
				}
				continue
			}
			op, p := c.op, c.small[c.in0:int(c.in0)+c.left]
			c.in0 += uint8(c.left)
			c.op, c.left = noFrame, 0
			mask(p, c.key)
			if err := c.control(op, p, drain); err != nil {
				return err
			}
			continue
		}
		for c.left > 0 {
			if err := c.readPayload(drain); err != nil {
				return err
			}
		}
		c.op = noFrame
		if !c.fin {
			continue
		}
		text := c.msgOp == opText
		c.msgOp = 0
		if drain {
			c.dropMessage()
			continue
		}
		return c.finishMessage(text)
	}
}

// readHeader reads the next frame header and checks it against RFC 6455's
// rules for a client's frames. It leaves the frame's opcode, length and
// mask in the conn.
func (c *conn) readHeader(drain bool) error {
	for {
		n := int(c.in1 - c.in0)
		if n >= 2 && n >= frameHeaderLen(c.small[c.in0:c.in0+2]) {
			break
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
	h := c.small[c.in0:]
	hl := frameHeaderLen(h[:2])
	fin, op, length := parseFrameHeader(h[:hl])
	c.in0 += uint8(hl)
	switch {
	case h[0]&0x70 != 0:
		// RSV1 too: the listener never offers permessage-deflate.
		return c.fail(websocket.StatusProtocolError, "Reserved bits set")
	case h[1]&0x80 == 0:
		return c.fail(websocket.StatusProtocolError, "Client frames must be masked")
	case op >= opClose && op <= opPong:
		if !fin || length > maxControlPayload {
			return c.fail(websocket.StatusProtocolError, "Control frames must be whole and short")
		}
	case op == opContinuation:
		if c.msgOp == 0 {
			return c.fail(websocket.StatusProtocolError, "Continuation frame without a message")
		}
	case op == opText || op == opBinary:
		if c.msgOp != 0 {
			return c.fail(websocket.StatusProtocolError, "New message inside a fragmented one")
		}
	default:
		return c.fail(websocket.StatusProtocolError, "Unknown opcode")
	}
	if drain && length > maxSkip {
		return c.fail(websocket.StatusProtocolError, "Frame too long to skip") // and beyond 2^63, forbidden
	}
	tooBig := op < opClose && !drain && length > uint64(c.maxMessage-c.msgLen())
	if tooBig {
		// The whole message is refused before any of it is read; so is a
		// length beyond 2^63, which RFC 6455 forbids.
		c.tooBig.Store(true) // first: a writer that finds the close frame sent asks
		if length > maxSkip {
			c.fail(websocket.StatusMessageTooBig, "Message longer than the longest legal line")
			return ErrMessageTooBig
		}
		c.cork.writeControl(opClose, closePayload(websocket.StatusMessageTooBig, "Message longer than the longest legal line"))
		// The frame is still followed, for Close to skip its payload and
		// find the client's answer: closing the socket on the unread
		// payload would reset the connection under our close frame.
	}
	c.fin, c.op, c.left = fin, op, int(length)
	c.key = binary.LittleEndian.Uint32(h[hl-4 : hl])
	if op == opText || op == opBinary {
		c.msgOp = op
	}
	if tooBig {
		return ErrMessageTooBig
	}
	// Flood control counts every frame but the one that ends a data
	// message: that one becomes a line, which the session counts.
	if !(fin && op < opClose) && !drain && c.charge != nil && !c.closing.Load() && !c.charge() {
		c.goodbye.Store(&closeFrame{websocket.StatusPolicyViolation, "Excess flood"})
		return ErrExcessFlood
	}
	return nil
}

// readPayload takes in what it can of the current data frame's payload:
// first what the small array holds, then straight from the socket into
// the message buffer, never past the frame's end.
func (c *conn) readPayload(drain bool) error {
	if c.in0 == c.in1 {
		if drain {
			return c.fill()
		}
		b := c.room(c.left)
		n := len(b)
		k, err := c.read(b[n : n+c.left])
		c.key = mask(b[n:n+k], c.key)
		*c.msg = b[:n+k]
		c.left -= k
		return err
	}
	k := min(c.left, int(c.in1-c.in0))
	p := c.small[c.in0 : int(c.in0)+k]
	c.in0 += uint8(k)
	c.left -= k
	if drain {
		return nil
	}
	c.key = mask(p, c.key)
	*c.msg = append(c.room(k), p...)
	return nil
}

// room returns the message buffer with room for n more bytes. It grows
// to the longest message and its line ending at most, which readHeader
// made sure is enough, so a message never takes more than that.
func (c *conn) room(n int) []byte {
	b := c.message()
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), min(max(2*cap(b), len(b)+n), c.maxMessage+2))
	copy(nb, b)
	*c.msg = nb
	return nb
}

// message is the buffer the message in progress collects in, taken from
// the pool when it starts.
func (c *conn) message() []byte {
	if c.msg == nil {
		c.msg = messagePool.Get().(*[]byte)
	}
	return *c.msg
}

// msgLen is how much of the message in progress is in.
func (c *conn) msgLen() int {
	if c.msg == nil {
		return 0
	}
	return len(*c.msg)
}

// dropMessage gives the message buffer back.
func (c *conn) dropMessage() {
	if c.msg != nil {
		putMessage(c.msg)
		c.msg = nil
	}
}

// finishMessage checks the message just in and, if it is fine, makes it
// pending, with "\r\n" appended.
func (c *conn) finishMessage(text bool) error {
	b := trimLineEnding(c.room(2)) // room for the "\r\n"
	if err := checkMessage(text, b); err != nil {
		c.dropMessage()
		if err == ErrInvalidUTF8 {
			c.goodbye.Store(&closeFrame{websocket.StatusInvalidFramePayloadData, "Invalid UTF-8 in a text message"})
		}
		return err
	}
	c.pending = append(b, '\r', '\n')
	*c.msg = c.pending
	c.pbuf, c.msg = c.msg, nil
	return nil
}

// control handles a control frame whose payload p is in, unmasked.
func (c *conn) control(op byte, p []byte, drain bool) error {
	switch op {
	case opPing:
		if !drain {
			// A failure is the writer's to find: the socket is shared.
			c.cork.writeControl(opPong, p)
		}
		return nil
	case opPong:
		return nil
	}
	code := websocket.StatusNoStatusRcvd
	switch {
	case len(p) == 1:
		return c.fail(websocket.StatusProtocolError, "Close frame too short")
	case len(p) >= 2:
		code = websocket.StatusCode(binary.BigEndian.Uint16(p))
		if !validCloseCode(code) {
			return c.fail(websocket.StatusProtocolError, "Invalid close code")
		}
		if !utf8.Valid(p[2:]) {
			return c.fail(websocket.StatusInvalidFramePayloadData, "Invalid UTF-8 in the close reason")
		}
	}
	// Echo the status (RFC 6455 5.5.1); after a close frame of our own
	// this sends nothing.
	c.cork.writeControl(opClose, closePayload(code, ""))
	c.op = closedFrame
	return io.EOF
}

// fail closes the connection with a close frame of code and reason, at
// once, since what the client sends can no longer be followed, and
// returns errProtocol.
func (c *conn) fail(code websocket.StatusCode, reason string) error {
	c.op = brokenFrame
	c.cork.writeControl(opClose, closePayload(code, reason))
	return errProtocol
}

// validCloseCode reports whether a close frame may carry code (RFC 6455
// 7.4).
func validCloseCode(code websocket.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1014:
		return code != 1004 && code != 1005 && code != 1006
	default:
		return code >= 3000 && code <= 4999
	}
}

// closePayload is a close frame's payload: code (none for
// StatusNoStatusRcvd) and reason, which must be short.
func closePayload(code websocket.StatusCode, reason string) []byte {
	if code == websocket.StatusNoStatusRcvd {
		return nil
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return append(p, reason...)
}

// discard takes in whatever the client sends until the socket fails (the
// client closed it, or Close did), for a stream that can no longer be
// followed: closing the socket on unread bytes would reset the connection
// under the close frame just sent.
func (c *conn) discard() {
	for {
		if _, err := c.read(c.small[:]); err != nil {
			return
		}
	}
}

// fill reads more of the socket into the small array, after what it
// holds, which it first moves to the front (a few bytes: the start of a
// header or of a control frame's payload).
func (c *conn) fill() error {
	if c.in0 > 0 {
		c.in1 = uint8(copy(c.small[:], c.small[c.in0:c.in1]))
		c.in0 = 0
	}
	n, err := c.read(c.small[c.in1:])
	c.in1 += uint8(n)
	return err
}

// read reads what the client sent right behind its upgrade request
// first, then the socket. It returns some bytes or an error.
func (c *conn) read(p []byte) (int, error) {
	if c.early != nil {
		n := copy(p, c.early)
		if c.early = c.early[n:]; len(c.early) == 0 {
			c.early = nil
		}
		return n, nil
	}
	for range maxEmptyReads {
		if n, err := c.rsock.Read(p); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// readError is what Read reports for err from readFrames. A deadline
// leaves everything where it was, to go on at the next Read, and a
// message with a line break is only dropped; anything else ends reading
// for good.
func (c *conn) readError(err error) error {
	if err == ErrLineBreak || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	c.rerr = err
	c.dropMessage()
	return err
}

// mask applies the mask key (its low byte first) to b, and returns the
// key turned for the bytes after b (RFC 6455 5.3).
func mask(b []byte, key uint32) uint32 {
	if len(b) >= 8 {
		k := uint64(key)<<32 | uint64(key)
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= byte(key)
		key = bits.RotateLeft32(key, -8)
	}
	return key
}
