package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/livechat/livechat/daemon/wslisten"
	"github.com/livechat/livechat/protocol"
)

// dialer dials the server, spreading connections over several loopback
// source addresses (127.0.0.2 .. 127.0.0.(K+1)) so that a run with many
// connections does not exhaust one source address's ephemeral ports.
type dialer struct {
	addrs     []string // -addr, split at commas
	addr      string
	websocket bool // ws://addr/ instead of plain TCP
	sources   []*net.TCPAddr
	next      atomic.Uint32
}

func newDialer(addrs string, k int, websocket bool) (*dialer, error) {
	d := &dialer{websocket: websocket}
	var ip net.IP
	for _, addr := range strings.Split(addrs, ",") {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("bad -addr %q: %v", addr, err)
		}
		if _, err := strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("bad -addr %q: port must be numeric", addr)
		}
		if host == "localhost" {
			addr, host = net.JoinHostPort("127.0.0.1", port), "127.0.0.1"
		}
		d.addrs = append(d.addrs, addr)
		ip = net.ParseIP(host)
	}
	d.addr = d.addrs[0]
	if k > 253 {
		k = 253
	}
	if k > 0 && ip != nil && ip.To4() != nil && ip.IsLoopback() {
		for i := 0; i < k; i++ {
			d.sources = append(d.sources, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))})
		}
	}
	return d, nil
}

// dial connects to the next address, round robin: with several (nodes of
// a livechat cluster), the connections spread evenly over them.
func (d *dialer) dial(ctx context.Context, deadline time.Time) (net.Conn, error) {
	nd := &net.Dialer{Deadline: deadline}
	n := int(d.next.Add(1))
	if len(d.sources) > 0 {
		nd.LocalAddr = d.sources[n%len(d.sources)]
	}
	addr := d.addrs[n%len(d.addrs)]
	if d.websocket {
		return dialWebSocket(ctx, nd, addr, deadline)
	}
	return nd.DialContext(ctx, "tcp", addr)
}

// dialWebSocket connects to ws://addr/ through nd, so WebSocket runs use
// the same spread of source addresses as TCP ones.
func dialWebSocket(ctx context.Context, nd *net.Dialer, addr string, deadline time.Time) (net.Conn, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: nd.DialContext}}
	return wslisten.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{
		HTTPClient:   hc,
		Subprotocols: []string{wslisten.TextSubprotocol},
	})
}

// ircConn is one client connection. Exactly one goroutine reads from it
// (first the setup steps, then readLoop). Writes of whole lines/batches go
// straight to the socket under wmu, so a sender's batch is one write syscall.
// The reader never blocks on wmu: PONGs it cannot write at once are handed
// to a short-lived goroutine, so a sender stuck in a write can never stall
// the reader (which would risk a distributed deadlock with the server).
type ircConn struct {
	nc   net.Conn
	r    *protocol.Reader
	tr   *timedReader // nil without a read buffer
	nick string

	wmu sync.Mutex

	pings   atomic.Int64 // server PINGs answered
	tooLong atomic.Int64 // over-long lines skipped by readLoop
}

var errClosed = errors.New("connection closed by server")

// newIRCConn wraps nc. With bufSize > 0 reads go through a bufio.Reader of
// that size (fewer read syscalls for busy receivers); otherwise
// protocol.Reader reads the socket directly with its own one-line buffer
// (cheap for thousands of idle connections).
func newIRCConn(nc net.Conn, bufSize int) *ircConn {
	if bufSize > 0 {
		tr := &timedReader{r: nc}
		return &ircConn{nc: nc, tr: tr, r: protocol.NewReader(bufio.NewReaderSize(tr, bufSize))}
	}
	return &ircConn{nc: nc, r: protocol.NewReader(nc)}
}

// timedReader records when each read from the socket returned. Every line
// handed out by the buffered readers above it became complete in the latest
// read (protocol.Reader and bufio only read when they hold no complete line
// or no data), so that time is the line's receive time, and one clock read
// per socket read replaces one per line.
type timedReader struct {
	r   io.Reader
	now int64
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.now = time.Now().UnixNano()
	return n, err
}

// connectRegister dials and registers with nick (NICK/USER, wait 001),
// answering PINGs and choosing another nick on 433. Everything happens
// before deadline.
func connectRegister(ctx context.Context, d *dialer, nick string, deadline time.Time, bufSize int) (*ircConn, error) {
	nc, err := d.dial(ctx, deadline)
	if err != nil {
		return nil, &stepError{"dial", err}
	}
	c := newIRCConn(nc, bufSize)
	if err := c.register(nick, deadline); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func stepOf(err error) string {
	var se *stepError
	if errors.As(err, &se) {
		if ne, ok := se.err.(net.Error); ok && ne.Timeout() {
			return se.step + "-timeout"
		}
		return se.step
	}
	return "other"
}

// write writes b under the write lock.
func (c *ircConn) write(b []byte) error {
	c.wmu.Lock()
	_, err := c.nc.Write(b)
	c.wmu.Unlock()
	return err
}

// writeNoBlock writes b if the write lock is free, otherwise hands the write
// to a goroutine; used by the reader (PONG) so it never waits on a sender.
func (c *ircConn) writeNoBlock(b []byte) {
	if c.wmu.TryLock() {
		c.nc.Write(b)
		c.wmu.Unlock()
		return
	}
	go func() {
		c.wmu.Lock()
		c.nc.Write(b)
		c.wmu.Unlock()
	}()
}

// pong answers a PING.
func (c *ircConn) pong(m *protocol.Message) {
	tok := ""
	if len(m.Params) > 0 {
		tok = m.Params[len(m.Params)-1]
	}
	b := make([]byte, 0, 8+len(tok))
	b = append(b, "PONG :"...)
	b = append(b, tok...)
	b = append(b, '\r', '\n')
	c.pings.Add(1)
	c.writeNoBlock(b)
}

const maxSetupLines = 20000 // bound on lines read while waiting for one reply

func (c *ircConn) register(nick string, deadline time.Time) error {
	c.nc.SetDeadline(deadline)
	c.nick = nick
	b := make([]byte, 0, 64+2*len(nick))
	b = append(b, "NICK "...)
	b = append(b, nick...)
	b = append(b, "\r\nUSER "...)
	b = append(b, nick...)
	b = append(b, " 0 * :livechat-bench\r\n"...)
	if err := c.write(b); err != nil {
		return &stepError{"register", err}
	}
	tries := 0
	for i := 0; i < maxSetupLines; i++ {
		m, line, err := c.nextSetupMessage("register")
		if err != nil {
			return err
		}
		switch m.Command {
		case "001":
			if len(m.Params) > 0 && m.Params[0] != "" && m.Params[0] != "*" {
				c.nick = m.Params[0]
			}
			return nil
		case "433", "436", "437": // nick in use / collision / unavailable
			tries++
			if tries > 10 {
				return &stepError{"register", fmt.Errorf("nick %s: %d nick collisions", nick, tries)}
			}
			c.nick = altNick(nick)
			if err := c.write([]byte("NICK " + c.nick + "\r\n")); err != nil {
				return &stepError{"register", err}
			}
		case "432", "461", "462", "463", "464", "465", "468":
			return &stepError{"register", fmt.Errorf("server refused registration: %s", lineText(line))}
		case "ERROR":
			return &stepError{"register", fmt.Errorf("server: %s", lineText(line))}
		}
	}
	return &stepError{"register", errors.New("too many lines before 001")}
}

// nextSetupMessage reads the next line of a setup step, answering a PING
// on the way. Lines the step cannot use (over-long ones the reader skipped,
// unparsable ones, PINGs) come back as a Message with no Command, so every
// line still counts against the step's maxSetupLines.
func (c *ircConn) nextSetupMessage(step string) (protocol.Message, []byte, error) {
	line, err := c.r.ReadLine()
	if errors.Is(err, protocol.ErrLineTooLong) {
		return protocol.Message{}, nil, nil // the reader skipped it; the connection is fine
	}
	if err != nil {
		return protocol.Message{}, nil, &stepError{step, eofErr(err)}
	}
	m, err := protocol.Parse(line)
	if err != nil {
		return protocol.Message{}, nil, nil
	}
	if m.Command == "PING" {
		c.pong(&m)
		return protocol.Message{}, nil, nil
	}
	return m, line, nil
}

// altNick derives another nick for 433: a short random base-36 tail keeps it
// within small NICKLEN limits.
func altNick(nick string) string {
	tail := strconv.FormatUint(rand.Uint64N(36*36*36*36), 36)
	if len(nick) > 5 {
		nick = nick[:5]
	}
	return nick + tail
}

// connectJoin registers a connection and joins room before setupDeadline,
// then gives it the run's hard deadline; on failure nothing stays open.
func connectJoin(ctx context.Context, d *dialer, nick, room string, setupDeadline, hard time.Time, bufSize int) (*ircConn, error) {
	cn, err := connectRegister(ctx, d, nick, setupDeadline, bufSize)
	if err != nil {
		return nil, err
	}
	if err := cn.join(room, setupDeadline); err != nil {
		cn.close()
		return nil, err
	}
	cn.nc.SetDeadline(hard)
	return cn, nil
}

// join sends JOIN and waits for the end of NAMES (366) for that room.
func (c *ircConn) join(room string, deadline time.Time) error {
	c.nc.SetDeadline(deadline)
	if err := c.write([]byte("JOIN " + room + "\r\n")); err != nil {
		return &stepError{"join", err}
	}
	for i := 0; i < maxSetupLines; i++ {
		m, line, err := c.nextSetupMessage("join")
		if err != nil {
			return err
		}
		switch m.Command {
		case "366":
			if len(m.Params) >= 2 && strings.EqualFold(m.Params[1], room) {
				return nil
			}
		case "403", "405", "471", "473", "474", "475", "476", "477", "479", "489", "520":
			return &stepError{"join", fmt.Errorf("server refused JOIN %s: %s", room, lineText(line))}
		case "ERROR":
			return &stepError{"join", fmt.Errorf("server: %s", lineText(line))}
		}
	}
	return &stepError{"join", errors.New("too many lines before 366")}
}

// quit sends QUIT and waits (until deadline) for the server to close the
// connection, so the server side does the active close.
func (c *ircConn) quit(deadline time.Time) error {
	c.nc.SetDeadline(deadline)
	if err := c.write([]byte("QUIT :bye\r\n")); err != nil {
		return &stepError{"quit", err}
	}
	for i := 0; i < maxSetupLines; i++ {
		line, err := c.r.ReadLine()
		if errors.Is(err, protocol.ErrLineTooLong) {
			continue
		}
		if err != nil {
			if isEOF(err) {
				return nil
			}
			return &stepError{"quit", err}
		}
		m, err := protocol.Parse(line)
		if err == nil && m.Command == "ERROR" {
			return nil
		}
	}
	return nil
}

// readLoop reads lines until the connection fails or is closed, answering
// PINGs; every other line goes to handle (which may be nil). now is the
// receive time of the line in unix nanoseconds. The caller bounds the loop
// by closing the connection or setting a read deadline.
func (c *ircConn) readLoop(handle func(m *protocol.Message, now int64)) error {
	for {
		line, err := c.r.ReadLine()
		if errors.Is(err, protocol.ErrLineTooLong) {
			c.tooLong.Add(1)
			continue
		}
		if err != nil {
			return err
		}
		var now int64
		if c.tr != nil {
			now = c.tr.now
		} else {
			now = time.Now().UnixNano()
		}
		m, err := protocol.Parse(line)
		if err != nil {
			continue
		}
		if m.Command == "PING" {
			c.pong(&m)
			continue
		}
		if handle != nil {
			handle(&m, now)
		}
	}
}

func (c *ircConn) close() { c.nc.Close() }

func isEOF(err error) bool {
	return errors.Is(err, errClosed) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
}

func eofErr(err error) error {
	if errors.Is(err, io.EOF) {
		return errClosed
	}
	return err
}

func lineText(line []byte) string {
	s := string(line)
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimRight(s, "\r\n")
}

// nickFor returns prefix + base-36(i).
func nickFor(prefix string, i int) string {
	return prefix + strconv.FormatInt(int64(i), 36)
}

func roomName(prefix string, r int) string {
	return prefix + strconv.Itoa(r)
}
