package wslisten

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// clientFrame is a client's frame: b0 is its first byte (FIN, RSV bits,
// opcode), the payload is masked with a key that is not zero, and the
// length takes the shortest of the three encodings.
func clientFrame(b0 byte, payload string) []byte {
	return clientFrameLen(b0, uint64(len(payload)), payload)
}

// clientFrameLen is clientFrame with the length field given: a lie, if
// it is not the payload's.
func clientFrameLen(b0 byte, length uint64, payload string) []byte {
	f := []byte{b0}
	switch {
	case length < 126:
		f = append(f, 0x80|byte(length))
	case length <= 0xffff:
		f = append(f, 0x80|126, byte(length>>8), byte(length))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, length)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f = append(f, key[:]...)
	for i := range len(payload) {
		f = append(f, payload[i]^key[i%4])
	}
	return f
}

const (
	fin     = 0x80
	rsv1    = 0x40
	rsv2    = 0x20
	rsv3    = 0x10
	fText   = fin | opText
	fBinary = fin | opBinary
	fPing   = fin | opPing
	fPong   = fin | opPong
	fClose  = fin | opClose
)

// closeFrameOf is a close frame's payload.
func closeFrameOf(code int, reason string) string {
	return string(binary.BigEndian.AppendUint16(nil, uint16(code))) + reason
}

// framePair is a server-side conn over loopback TCP, and the client's raw
// socket, which speaks frames by hand.
type framePair struct {
	t   *testing.T
	srv *conn
	cli net.Conn
	r   *bufio.Reader
}

func newFramePair(t *testing.T, maxMessage int) *framePair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sock, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); sock.Close() })
	srv := newServerConn(&corkConn{Conn: sock}, nil, "", sock.RemoteAddr(), sock.LocalAddr(), maxMessage)
	cli.SetDeadline(time.Now().Add(waitFor))
	srv.SetReadDeadline(time.Now().Add(waitFor))
	return &framePair{t: t, srv: srv, cli: cli, r: bufio.NewReader(cli)}
}

func (p *framePair) send(frames ...[]byte) {
	p.t.Helper()
	if _, err := p.cli.Write(bytes.Join(frames, nil)); err != nil {
		p.t.Fatal(err)
	}
}

// read is one Read of the server side, with room for any message.
func (p *framePair) read() (string, error) {
	buf := make([]byte, 1<<17)
	n, err := p.srv.Read(buf)
	return string(buf[:n]), err
}

func (p *framePair) expectLine(want string) {
	p.t.Helper()
	got, err := p.read()
	if err != nil || got != want+"\r\n" {
		p.t.Fatalf("server read %q, %v; want %q", abbrev(got), err, abbrev(want+"\r\n"))
	}
}

func (p *framePair) expectError(want error) {
	p.t.Helper()
	if got, err := p.read(); err != want {
		p.t.Fatalf("server read %q, %v; want %v", abbrev(got), err, want)
	}
}

// abbrev keeps a failure's message short.
func abbrev(s string) string {
	if len(s) > 80 {
		return s[:40] + "..." + s[len(s)-20:] + " (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return s
}

// serverFrame reads the server's next frame.
func (p *framePair) serverFrame() (b0 byte, payload []byte) {
	p.t.Helper()
	h := make([]byte, 2, maxFrameHeader)
	if _, err := io.ReadFull(p.r, h); err != nil {
		p.t.Fatalf("reading the server's frame: %v", err)
	}
	h = h[:frameHeaderLen(h)]
	if _, err := io.ReadFull(p.r, h[2:]); err != nil {
		p.t.Fatal(err)
	}
	if h[1]&0x80 != 0 {
		p.t.Fatalf("the server masked its frame % x", h)
	}
	_, _, n := parseFrameHeader(h)
	payload = make([]byte, n)
	if _, err := io.ReadFull(p.r, payload); err != nil {
		p.t.Fatal(err)
	}
	return h[0], payload
}

// expectClose reads the server's next frame, which must be a close frame
// with code.
func (p *framePair) expectClose(code websocket.StatusCode) {
	p.t.Helper()
	b0, payload := p.serverFrame()
	if b0 != fClose || len(payload) < 2 || websocket.StatusCode(binary.BigEndian.Uint16(payload)) != code {
		p.t.Fatalf("server sent frame %#x % x, want a close frame %d", b0, payload, code)
	}
}

// Fragments are joined, and control frames between them handled, with
// every length encoding.
func TestReadJoinsFragmentsAroundControlFrames(t *testing.T) {
	p := newFramePair(t, DefaultMaxMessage)
	long := strings.Repeat("x", 300)   // 16-bit length
	longer := strings.Repeat("y", 200) // with the 16-bit one, more than the small array
	p.send(
		clientFrame(fText, "NICK a"),
		clientFrame(opText, "PRIVMSG #a :"),
		clientFrame(fPing, "are you there"),
		clientFrame(opContinuation, long),
		clientFrame(fPong, "unasked"),
		clientFrame(opContinuation, ""),
		clientFrameLen(fin|opContinuation, uint64(len(longer)), longer), // 7-bit
		clientFrame(fBinary, "PING :x"),
	)
	p.expectLine("NICK a")
	p.expectLine("PRIVMSG #a :" + long + longer)
	p.expectLine("PING :x")
	if b0, payload := p.serverFrame(); b0 != fPong || string(payload) != "are you there" {
		t.Errorf("answer to a ping: %#x %q, want a pong with its payload", b0, payload)
	}
	// A 64-bit length for a short message is wasteful, not wrong.
	big := clientFrame(fText, strings.Repeat("z", 70000))
	p.srv.maxMessage = 80000
	p.send(big)
	p.expectLine(strings.Repeat("z", 70000))
}

// A ping is answered even when the daemon's last write deadline has long
// passed (it sets one per write and leaves it): the pong has its own.
func TestPongAfterAStaleWriteDeadline(t *testing.T) {
	p := newFramePair(t, DefaultMaxMessage)
	p.srv.SetWriteDeadline(time.Now().Add(-time.Minute))
	p.send(clientFrame(fPing, "late"), clientFrame(fText, "PING :x"))
	p.expectLine("PING :x")
	if b0, payload := p.serverFrame(); b0 != fPong || string(payload) != "late" {
		t.Fatalf("answer to a ping after a stale deadline: %#x %q, want a pong", b0, payload)
	}
	// The daemon's deadline is back in force after the pong.
	if _, err := p.srv.Write([]byte("PONG :x\r\n")); err == nil {
		t.Error("a write after the pong ignored the daemon's past deadline")
	}
}

// What RFC 6455 forbids a client closes the connection with 1002, and
// reading fails for good.
func TestReadRefusesProtocolViolations(t *testing.T) {
	unmasked := clientFrame(fText, "NICK a")
	unmasked[1] &^= 0x80
	for _, tc := range []struct {
		name   string
		frames [][]byte
		code   websocket.StatusCode
	}{
		{"unmasked", [][]byte{unmasked}, websocket.StatusProtocolError},
		{"RSV1 without permessage-deflate", [][]byte{clientFrame(fText|rsv1, "x")}, websocket.StatusProtocolError},
		{"RSV2", [][]byte{clientFrame(fText|rsv2, "x")}, websocket.StatusProtocolError},
		{"RSV3 on a ping", [][]byte{clientFrame(fPing|rsv3, "x")}, websocket.StatusProtocolError},
		{"opcode 3", [][]byte{clientFrame(fin|3, "x")}, websocket.StatusProtocolError},
		{"opcode 0xB", [][]byte{clientFrame(fin|0xB, "")}, websocket.StatusProtocolError},
		{"fragmented ping", [][]byte{clientFrame(opPing, "x")}, websocket.StatusProtocolError},
		{"126-byte ping", [][]byte{clientFrame(fPing, strings.Repeat("p", 126))}, websocket.StatusProtocolError},
		{"continuation without a message", [][]byte{clientFrame(fin|opContinuation, "x")}, websocket.StatusProtocolError},
		{"message inside a message", [][]byte{clientFrame(opText, "a"), clientFrame(fText, "b")}, websocket.StatusProtocolError},
		{"1-byte close", [][]byte{clientFrame(fClose, "x")}, websocket.StatusProtocolError},
		{"close 1005", [][]byte{clientFrame(fClose, closeFrameOf(1005, ""))}, websocket.StatusProtocolError},
		{"close 999", [][]byte{clientFrame(fClose, closeFrameOf(999, ""))}, websocket.StatusProtocolError},
		{"close 5000", [][]byte{clientFrame(fClose, closeFrameOf(5000, ""))}, websocket.StatusProtocolError},
		{"close reason not UTF-8", [][]byte{clientFrame(fClose, closeFrameOf(1000, "\xff"))}, websocket.StatusInvalidFramePayloadData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFramePair(t, DefaultMaxMessage)
			p.send(clientFrame(fText, "NICK a"))
			p.send(tc.frames...)
			p.send(clientFrame(fText, "NICK b"))
			p.expectLine("NICK a")
			p.expectError(errProtocol)
			p.expectClose(tc.code)
			p.expectError(errProtocol)
		})
	}
}

// A message over the limit is refused from its header, before any of it
// is buffered: 1009, and ErrMessageTooBig for good, from Read and Write.
func TestReadMessageTooBig(t *testing.T) {
	const max = 600
	oneByteFrames := [][]byte{clientFrame(opText, "x")}
	for range max - 1 {
		oneByteFrames = append(oneByteFrames, clientFrame(opContinuation, "x"))
	}
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"one frame", [][]byte{clientFrame(fText, strings.Repeat("x", max+1))}},
		{"fragments", [][]byte{clientFrame(opText, strings.Repeat("x", 400)), clientFrame(fin|opContinuation, strings.Repeat("x", 201))}},
		{"1-byte fragments", append(oneByteFrames, clientFrame(fin|opContinuation, "x"))},
		{"2^63 bytes", [][]byte{clientFrameLen(fText, 1<<63, "")}},
		{"2^64-1 bytes", [][]byte{clientFrameLen(fText, 1<<64-1, "")}},
		{"2^63 bytes after a fragment", [][]byte{clientFrame(opText, "x"), clientFrameLen(opContinuation, 1<<63, "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFramePair(t, max)
			p.send(clientFrame(fText, strings.Repeat("x", max))) // the longest is fine
			p.send(tc.frames...)
			p.expectLine(strings.Repeat("x", max))
			p.expectError(ErrMessageTooBig)
			p.expectClose(websocket.StatusMessageTooBig)
			if m := p.srv.msg; m != nil && cap(*m) > max+2 {
				t.Errorf("message buffer grew to %d bytes", cap(*m))
			}
			p.expectError(ErrMessageTooBig)
			if _, err := p.srv.Write([]byte("NOTICE * :late\r\n")); err != ErrMessageTooBig {
				t.Errorf("write after an oversized message: %v, want ErrMessageTooBig", err)
			}
		})
	}
}

// After refusing an oversized message, Close reads past its payload to
// the client's close frame, and closes the socket on nothing unread: the
// client gets the 1009 whole, not a reset.
func TestCloseAfterAnOversizedMessage(t *testing.T) {
	defer func(w time.Duration) { closeWait = w }(closeWait)
	closeWait = waitFor
	p := newFramePair(t, 600)
	p.send(clientFrame(fText, strings.Repeat("x", 5000)))
	p.expectError(ErrMessageTooBig)
	p.expectClose(websocket.StatusMessageTooBig)
	p.send(clientFrame(fClose, closeFrameOf(1009, "")))
	start := time.Now()
	p.srv.Close()
	if el := time.Since(start); el > waitFor/2 {
		t.Errorf("Close took %v: it did not find the client's close frame", el)
	}
	if _, err := p.r.ReadByte(); err != io.EOF {
		t.Errorf("after the handshake the client read %v, want the socket closed cleanly", err)
	}
}

// A text message must be UTF-8: 1007 at Close, and ErrInvalidUTF8 for
// good. A binary one may carry anything.
func TestReadInvalidUTF8(t *testing.T) {
	p := newFramePair(t, DefaultMaxMessage)
	p.send(clientFrame(fBinary, "PRIVMSG #a :caf\xe9"), clientFrame(fText, "PRIVMSG #a :caf\xe9"), clientFrame(fText, "NICK b"))
	p.expectLine("PRIVMSG #a :caf\xe9")
	p.expectError(ErrInvalidUTF8)
	p.expectError(ErrInvalidUTF8)
	go p.srv.Close()
	p.expectClose(websocket.StatusInvalidFramePayloadData)
}

// A message with a line break inside is dropped alone; one line ending at
// its end is tolerated.
func TestReadLineBreak(t *testing.T) {
	p := newFramePair(t, DefaultMaxMessage)
	p.send(clientFrame(fText, "NICK a\r\nQUIT"), clientFrame(fText, "NICK b\r\n"), clientFrame(fText, "NICK c\n"), clientFrame(fText, ""))
	p.expectError(ErrLineBreak)
	p.expectLine("NICK b")
	p.expectLine("NICK c")
	p.expectLine("") // an empty message is an empty line, which the session charges
}

// The client's close frame is echoed, and reading ends with io.EOF.
func TestReadClientClose(t *testing.T) {
	p := newFramePair(t, DefaultMaxMessage)
	p.send(clientFrame(opText, "half a message"), clientFrame(fClose, closeFrameOf(1001, "going")))
	p.expectError(io.EOF)
	p.expectClose(websocket.StatusGoingAway)
	p.expectError(io.EOF)
	if _, err := p.srv.Write([]byte("NOTICE * :late\r\n")); err == nil {
		t.Error("a line was sent after the close frame")
	}
	done := make(chan struct{})
	go func() { p.srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Close waited though the close handshake was done")
	}
	if _, err := p.r.ReadByte(); err != io.EOF {
		t.Errorf("after the handshake the socket gave %v, want it closed", err)
	}
}

// Close sends its close frame and waits for the client's, which a Read
// in progress finds.
func TestCloseAnsweredDuringRead(t *testing.T) {
	defer func(w time.Duration) { closeWait = w }(closeWait)
	closeWait = waitFor
	p := newFramePair(t, DefaultMaxMessage)
	readErr := make(chan error, 1)
	go func() { _, err := p.read(); readErr <- err }()
	done := make(chan struct{})
	go func() { p.srv.Close(); close(done) }()
	p.expectClose(websocket.StatusNormalClosure)
	p.send(clientFrame(fText, "a message the client sent meanwhile"), clientFrame(fClose, closeFrameOf(1000, "")))
	if err := <-readErr; err != nil && err != io.EOF && err != net.ErrClosed {
		t.Errorf("Read during Close: %v", err)
	}
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Close did not return once the client answered")
	}
}

// A client that sends pings and never reads cannot hold the reader in a
// pong's write: the socket is closed, and Read returns.
func TestPongToAClientThatDoesNotRead(t *testing.T) {
	defer func(d time.Duration) { controlWriteTimeout = d }(controlWriteTimeout)
	controlWriteTimeout = 100 * time.Millisecond
	p := newFramePair(t, DefaultMaxMessage)
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, err := p.read(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	pings := bytes.Repeat(clientFrame(fPing, strings.Repeat("p", maxControlPayload)), 1000)
	for range 10000 { // bounded: the socket buffers fill long before
		if _, err := p.cli.Write(pings); err != nil {
			break
		}
	}
	select {
	case err := <-readErr:
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the reader is stuck in a pong's write")
	}
}

// Every frame but the end of a data message is charged to flood control;
// once the charge refuses, Read fails for good and Close says 1008.
func TestReadChargesFrames(t *testing.T) {
	stream := [][]byte{
		clientFrame(fText, "whole: free"),
		clientFrame(fPing, ""),                        // charged
		clientFrame(opText, strings.Repeat("a", 300)), // charged
		clientFrame(opContinuation, ""),               // charged
		clientFrame(fin|opContinuation, "last: free"),
		clientFrame(fPong, "x"), // charged
		clientFrame(fBinary, strings.Repeat("b", 126)),
	}
	for _, step := range []int{1, 7, 1 << 20} {
		s := &scriptConn{}
		s.script(bytes.Join(stream, nil), step, true)
		c := newServerConn(&corkConn{Conn: s}, nil, "", nil, nil, DefaultMaxMessage)
		charged := 0
		c.ChargeFrames(func() bool { charged++; return true })
		lines, err := readAll(c)
		if len(lines) != 3 || err != io.EOF || charged != 4 {
			t.Errorf("read %d bytes at a time: %d lines, %v, %d frames charged; want 3 lines, EOF, 4", step, len(lines), err, charged)
		}
	}

	p := newFramePair(t, DefaultMaxMessage)
	left := 100
	p.srv.ChargeFrames(func() bool { left--; return left >= 0 })
	flood := [][]byte{clientFrame(opText, "")}
	for range 1000 {
		flood = append(flood, clientFrame(opContinuation, ""))
	}
	p.send(flood...)
	p.expectError(ErrExcessFlood)
	p.expectError(ErrExcessFlood)
	go p.srv.Close()
	b0, payload := p.serverFrame()
	if b0 != fClose || string(payload) != closeFrameOf(1008, "Excess flood") {
		t.Errorf("server sent %#x %q, want close 1008 Excess flood", b0, payload)
	}
}

// Endless empty continuation frames cost no memory.
func TestReadEmptyFragmentsHoldNoMemory(t *testing.T) {
	p := newFramePair(t, DefaultMaxMessage)
	frames := [][]byte{clientFrame(opText, "x")}
	for range 20000 {
		frames = append(frames, clientFrame(opContinuation, ""))
	}
	p.send(append(frames, clientFrame(fin|opContinuation, "y"))...)
	p.expectLine("xy")
	if p.srv.msg != nil {
		t.Error("a message buffer is held after the message")
	}
}

// A read deadline may pass anywhere, in a header, a payload, a control
// frame or between fragments: the next Read goes on where it was.
func TestReadDeadlineAnywhere(t *testing.T) {
	stream := bytes.Join([][]byte{
		clientFrame(fText, "NICK a"),
		clientFrame(opText, "PRIVMSG #a :"),
		clientFrame(fPing, "p"),
		clientFrame(fin|opContinuation, strings.Repeat("x", 300)),
		clientFrameLen(fText, 70000, strings.Repeat("y", 70000)),
	}, nil)
	s := &scriptConn{}
	s.script(stream, 1, true)
	c := newServerConn(&corkConn{Conn: s}, nil, "", nil, nil, 80000)
	lines, err := readAll(c)
	want := []string{"NICK a\r\n", "PRIVMSG #a :" + strings.Repeat("x", 300) + "\r\n", strings.Repeat("y", 70000) + "\r\n"}
	if err != io.EOF || strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("read a byte at a time with a deadline after each: %d lines (%v), want %d", len(lines), err, len(want))
	}
	if got := s.out.String(); got != "\x8a\x01p" {
		t.Errorf("server wrote %q, want one pong", got)
	}
}

// The server's frames carry no mask, and the meter of its own frames
// agrees with what the reader parses.
func TestMask(t *testing.T) {
	for n := range 40 {
		p := bytes.Repeat([]byte{0xa5}, n)
		q := bytes.Clone(p)
		key := binary.LittleEndian.Uint32([]byte{1, 2, 3, 4})
		k := key
		for i := range q { // a byte at a time, turning the key
			k = mask(q[i:i+1], k)
		}
		if k2 := mask(p, key); !bytes.Equal(p, q) || k2 != k {
			t.Fatalf("%d bytes: whole and bytewise masking differ", n)
		}
		for i := range p {
			if p[i] != 0xa5^byte(i%4+1) {
				t.Fatalf("%d bytes: byte %d is %#x", n, i, p[i])
			}
		}
	}
}

// readAll reads c to its first error other than a deadline, and returns
// the lines and that error. It is bounded: the scripts are finite.
func readAll(c *conn) ([]string, error) {
	var lines []string
	buf := make([]byte, 1<<17)
	for range 1 << 20 {
		n, err := c.Read(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
		case err != nil:
			return lines, err
		default:
			lines = append(lines, string(buf[:n]))
		}
	}
	return lines, errors.New("readAll: no end")
}

// scriptConn is a socket whose reads follow a script: the client's bytes
// in pieces, maybe with a passing deadline before each piece, then EOF.
// What the server writes is kept in out.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	reads    [][]byte
	stall    []bool // a deadline passes before reads[i]
	out      bytes.Buffer
}

func (s *scriptConn) script(b []byte, step int, stall bool) {
	for len(b) > 0 {
		k := min(step, len(b))
		s.reads = append(s.reads, b[:k])
		s.stall = append(s.stall, stall)
		b = b[k:]
	}
}

func (s *scriptConn) Read(p []byte) (int, error) {
	if len(s.reads) == 0 {
		return 0, io.EOF
	}
	if s.stall[0] {
		s.stall[0] = false
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p, s.reads[0])
	if s.reads[0] = s.reads[0][n:]; len(s.reads[0]) == 0 {
		s.reads, s.stall = s.reads[1:], s.stall[1:]
	}
	return n, nil
}

func (s *scriptConn) Write(p []byte) (int, error)        { return s.out.Write(p) }
func (s *scriptConn) Close() error                       { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error    { return nil }
func (s *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

// An idle server-side reader waits in the socket's own Read, called
// straight from conn.Read: the shallowest stack, which keeps an idle
// connection's reader goroutine at the 2 KiB minimum (a session's
// reader sits a few calls above; see read.go).
func TestIdleReaderParksInTheSocketRead(t *testing.T) {
	p := newFramePair(t, DefaultMaxMessage)
	p.send(clientFrame(fText, "NICK a"))
	p.expectLine("NICK a")
	go p.read()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			i := strings.Index(g, "wslisten.(*conn).Read(")
			if i < 0 {
				continue
			}
			// In a trace the callee comes first: the frame right above
			// conn.Read must be the socket's.
			callees := strings.Split(g[:strings.LastIndex(g[:i], "\n")], "\n") // function, file, function, file...
			if len(callees) < 2 || !strings.HasPrefix(callees[len(callees)-2], "net.(*conn).Read(") {
				t.Fatalf("the idle reader waits below conn.Read in:\n%s", g)
			}
			return
		}
	}
	t.Fatal("no reader waiting")
}
