package daemon

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
)

const (
	// writeTimeout bounds one write to a client that has stopped reading;
	// a stalled client is usually caught earlier by its send queue.
	writeTimeout = 30 * time.Second
	// closeTimeout bounds the final flush of a closing connection.
	closeTimeout = 2 * time.Second
	// coalesceSize is the buffer queued lines are copied into so that one
	// write carries many of them.
	coalesceSize = 16 << 10
)

var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceSize); return &b }}

// Session is one client connection. The reader goroutine (serve) parses
// lines and runs their handlers; it alone changes the session's identity and
// room list (under mu, so other sessions can read them). Output goes
// through a bounded queue drained by a writer goroutine that only exists
// while there is something to write, so an idle connection costs one
// goroutine and no buffers.
type Session struct {
	srv       *Server
	conn      net.Conn
	id        uint64
	transport string
	ip        string // the real address: logs, limits, bans, opers and the user themself
	host      string // what everyone else sees: the cloak (see cloakHost)
	sendqMax  int
	connected int64 // unix nanos (a time.Time is 24 bytes every connection pays)

	// Output queue, guarded by outMu.
	outMu    sync.Mutex
	out      [][]byte
	spare    [][]byte // the previous batch's slice, reused
	outBytes int
	// replyBytes of outBytes answer the client's own commands. They do not
	// count against the send queue: the command that queued them waits in
	// pace until the writer has taken them, so they are bounded by one
	// command's reply, and a long reply never cuts the client that asked.
	replyBytes int
	drained    chan struct{} // closed when the writer takes the queue; pace waits on it
	writing    bool          // a writer goroutine is running
	closing    bool          // no more output accepted; close once the queue drains
	labeling   bool          // a labeled command is running: Reply collects into rare.captured
	closed     bool
	// connPending says output is left inside the connection (tryWriter),
	// as unsent does for the session; only its current writer touches it.
	connPending bool
	reason      string // why the session ended, for logs and the QUIT peers see
	// unsent is what a shared writer could not write without waiting
	// (see writers.go); the session's own writer sends it first. Only
	// the session's current writer touches it. A pointer: it is rare, and
	// every idle connection pays for the field.
	unsent *[]byte

	caps atomic.Uint32 // capSet
	// mode is how the session's output is shown (modeTerminal,
	// modeText); the writer reads it on every batch.
	mode      atomic.Uint32
	features  atomic.Uint32 // rooms.Features implied by caps; read by rooms on delivery
	away      atomic.Pointer[string]
	invisible atomic.Bool // user mode +i
	bot       atomic.Bool // user mode +B: its messages carry the bot tag
	oper      atomic.Bool // user mode +o: logged in with OPER
	// registered is looked at by other sessions before messaging or
	// listing it. (Beside the other flags: apart, padding made it 8 bytes.)
	registered atomic.Bool
	activeAt   atomic.Int64 // unix nanos of the last line read, for WHOIS idle

	// Identity, written by the reader goroutine under mu.
	mu       sync.Mutex
	nick     string
	user     string
	realname string
	account  string // "" when anonymous
	joined   joinedRooms

	// group is the user's devices when one account is connected on
	// several (multiclient); nil for a single connection.
	group atomic.Pointer[devices]

	// identMu orders the session's nick changes against its registration:
	// its own NICK and welcome, and another session's eviction of it
	// (becomeGuest). Without it an eviction racing the welcome could be
	// queued before the 001 that still named the old nick, and the client
	// would believe in a nick it no longer had. A holder never takes
	// another session's identMu.
	identMu sync.Mutex

	// Reader-side state: used by the reader goroutine and, while it
	// waits, by the worker handling its line.
	step        lineStep
	deadlineSet int64 // monoNanos of when the idle read deadline was last moved; 0: move it at once
	flood       floodBucket
	quit        string // the reason the client gave with QUIT
	capVersion  int16  // 302 once the client sent CAP LS 302
	guest       bool
	capPending  bool // CAP negotiation started and not ended
	strict      bool // an IRC client (sent CAP or USER): no terminal conveniences
	pingSent    bool
	deadlineOff bool // no idle deadline: a person is never PINGed (see pings)
	left        bool // disconnecting: no other device joins it to a room; under identMu

	// rare is the state few connections ever use, allocated on first use
	// (see more) so that an idle connection does not carry it.
	rare *sessionRare
}

// sessionRare holds what a session needs only for rare commands: SASL,
// labeled-response, PASS, OPER, REGISTER, draft/multiline and a guest's
// read markers. In every Session its ~170 bytes moved the Session up two
// allocator size classes (768 instead of 512 bytes a connection).
type sessionRare struct {
	// Reader-side, like the fields of Session they came from.
	made         int    // accounts this connection registered
	operFailures int    // OPER attempts refused
	pass         string // what the client sent with PASS
	saslMech     string
	saslBuf      []byte
	saslSCRAM    *accounts.SCRAMLogin // the SCRAM-SHA-256 exchange under way
	saslDone     string               // SCRAM: the account proved, once server-final is acknowledged
	ml           *multilineBatch      // the draft/multiline batch being received (see openBatch)
	// guestMarkers are a guest's read markers (an account's are stored).
	guestMarkers map[string]time.Time

	// The labeled command's replies, guarded by outMu and only used while
	// Session.labeling is set (beginLabel allocates rare before setting it,
	// so a Reply from another goroutine that sees labeling sees rare too).
	label         string   // its label
	captured      [][]byte // its replies so far
	capturedBytes int
	labelBatch    string // the labeled-response batch opened early for a long reply, or ""
}

// openBatch returns the draft/multiline batch being received, or nil.
// Call it only from the goroutine handling the session's line.
func (s *Session) openBatch() *multilineBatch {
	if s.rare == nil {
		return nil
	}
	return s.rare.ml
}

// more returns the session's rare state, allocating it on first use. Call
// it only from the goroutine handling the session's line: it is the one
// writer of s.rare, which is set once and never changed afterwards.
func (s *Session) more() *sessionRare {
	if s.rare == nil {
		s.rare = new(sessionRare)
	}
	return s.rare
}

func newSession(srv *Server, conn net.Conn, transport string, id uint64) *Session {
	cfg := srv.Config()
	ip := remoteIP(conn)
	s := &Session{
		srv:       srv,
		conn:      conn,
		id:        id,
		transport: transport,
		ip:        ip,
		host:      cloakHost(cfg.Cloak, srv.cloakKey, ip),
		sendqMax:  cfg.Limits.SendQBytes,
		connected: time.Now().UnixNano(),
		nick:      "*",
	}
	return s
}

func remoteIP(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(conn.RemoteAddr().String())
	if err != nil {
		return conn.RemoteAddr().String()
	}
	return host
}

// log is the server's logger for events of this connection: they carry
// its id and address. Nothing is built for an event that is not logged,
// and no per-connection logger is kept or made: a zerolog child logger
// (With) is a 500-byte buffer, made three times for every connection (the
// connected, registered and disconnected lines), 12% of the bytes a
// connect storm allocated.
func (s *Session) log() sessionLog { return sessionLog{s} }

type sessionLog struct{ s *Session }

func (l sessionLog) with(e *zerolog.Event) *zerolog.Event {
	return e.Uint64("conn", l.s.id).Stringer("remote", l.s.conn.RemoteAddr())
}

func (l sessionLog) Debug() *zerolog.Event { return l.with(l.s.srv.log.Debug()) }
func (l sessionLog) Info() *zerolog.Event  { return l.with(l.s.srv.log.Info()) }
func (l sessionLog) Warn() *zerolog.Event  { return l.with(l.s.srv.log.Warn()) }
func (l sessionLog) Error() *zerolog.Event { return l.with(l.s.srv.log.Error()) }

// Nick returns the session's current nick ("*" before it has one).
// Safe from any goroutine.
func (s *Session) Nick() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nick
}

// prefix returns nick!user@host, or "*" before the client sent NICK and USER.
func (s *Session) prefix() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nick == "*" || s.user == "" {
		return "*"
	}
	return s.nick + "!" + s.user + "@" + s.host
}

// prefixLen is len(s.prefix()) without building it.
func (s *Session) prefixLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nick == "*" || s.user == "" {
		return 1
	}
	return len(s.nick) + 1 + len(s.user) + 1 + len(s.host)
}

// secure reports whether the client reached us over TLS.
func (s *Session) secure() bool {
	if s.transport == "tls" {
		return true
	}
	// A WebSocket knows: wss, or https to a trusted proxy.
	c, ok := s.conn.(interface{ Secure() bool })
	return ok && c.Secure()
}

// certFP returns the SHA-256 fingerprint (lower-case hex) of the TLS
// client certificate the client presented, or "" if it presented none or
// is not on the TLS listener. The handshake is done by the time any line
// has been read, which is before anyone can ask. The WebSocket listener
// does not ask browsers for certificates: they would show every visitor
// of the page a certificate picker.
func (s *Session) certFP() string {
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		return ""
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		return ""
	}
	sum := sha256.Sum256(st.PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// Away reports whether the user set an away message. Safe from any goroutine.
func (s *Session) Away() bool { return s.away.Load() != nil }

// Send queues line for the writer without blocking. line must not be
// modified afterwards; the same slice may be queued to many sessions. When
// the queue would exceed the send-queue limit the session is a slow
// consumer: its queue is dropped, it is sent `ERROR :SendQ exceeded` and
// closed, and Send reports false. Safe from any goroutine.
func (s *Session) Send(line []byte) bool {
	return s.enqueue(line, true, false)
}

// sendReply is Send for a line answering the client's own command: it is
// never refused for size, and the command paces itself (see pace).
func (s *Session) sendReply(line []byte) bool {
	return s.enqueue(line, true, true)
}

// Queue is Send without starting the write; Flush starts it. Rooms queue
// a burst to every member and flush once. Safe from any goroutine.
func (s *Session) Queue(line []byte) bool {
	return s.enqueue(line, false, false)
}

// Flush has everything queued written. Safe from any goroutine.
func (s *Session) Flush() {
	s.outMu.Lock()
	start := len(s.out) > 0 && !s.writing && !s.closed
	if start {
		s.writing = true
	}
	s.outMu.Unlock()
	if start {
		s.startWriter()
	}
}

// startWriter has the output written, by a shared writer if the
// connection allows it (writers.go), else by a goroutine of its own. The
// caller set s.writing.
func (s *Session) startWriter() {
	if s.sharedCapable() {
		writers.schedule(s)
		return
	}
	go s.writeLoop()
}

func (s *Session) enqueue(line []byte, flush, reply bool) bool {
	s.outMu.Lock()
	if s.closing {
		s.outMu.Unlock()
		return false
	}
	if reply {
		s.replyBytes += len(line)
	} else if s.outBytes-s.replyBytes+len(line) > s.sendqMax {
		s.overflowLocked()
		s.outMu.Unlock()
		s.srv.metrics.slowConsumers.Inc()
		return false
	}
	if s.out == nil {
		s.out = *queuePool.Get().(*[][]byte)
	}
	s.out = append(s.out, line)
	s.outBytes += len(line)
	start := flush && !s.writing
	if start {
		s.writing = true
	}
	s.outMu.Unlock()
	if start {
		s.startWriter()
	}
	return true
}

func (s *Session) overflowLocked() {
	clear(s.out)
	s.out = append(s.out[:0], []byte("ERROR :SendQ exceeded\r\n"))
	s.outBytes, s.replyBytes = 0, 0
	s.closing = true
	s.reason = "SendQ exceeded"
	s.wakePacerLocked()
	// A client that stopped reading would hold the writer for the full
	// write timeout; cut that short so the room's other members do not
	// share a room with a ghost for long.
	s.conn.SetWriteDeadline(time.Now().Add(closeTimeout))
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
}

// closeWith queues `ERROR :reason`, stops accepting output, and closes the
// connection once the queue is flushed (or closeTimeout passes).
func (s *Session) closeWith(reason string) {
	s.outMu.Lock()
	if s.closing {
		s.outMu.Unlock()
		return
	}
	s.out = append(s.out, []byte("ERROR :"+reason+"\r\n"))
	s.closing = true
	if s.reason == "" {
		s.reason = reason
	}
	s.wakePacerLocked()
	start := !s.writing
	s.writing = true
	s.outMu.Unlock()
	if start {
		go s.writeLoop()
	}
}

// closeReason returns why the session is closing, or "".
func (s *Session) closeReason() string {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.reason
}

// writeLoop drains the queue, coalescing everything queued into as few
// writes as possible, and exits when the queue is empty. It may wait on
// the client, so it runs on a goroutine of the session's own.
func (s *Session) writeLoop() {
	if s.unsent != nil || s.connPending {
		s.outMu.Lock()
		timeout := writeTimeout
		if s.closing {
			timeout = closeTimeout
		}
		s.outMu.Unlock()
		if err := s.finishPending(timeout); err != nil {
			s.outMu.Lock()
			s.failWriteLocked(err)
			s.outMu.Unlock()
		}
	}
	for {
		s.outMu.Lock()
		if len(s.out) == 0 || s.closed {
			s.finishWritingLocked()
			return
		}
		batch, total := s.out, s.outBytes
		s.out, s.spare = s.spare, nil
		s.outBytes, s.replyBytes = 0, 0
		s.wakePacerLocked()
		timeout := writeTimeout
		if s.closing {
			timeout = closeTimeout
		}
		s.outMu.Unlock()

		err := s.writeBatch(batch, total, timeout)
		clear(batch)
		s.outMu.Lock()
		s.spare = batch[:0]
		if err != nil {
			s.failWriteLocked(err)
		}
		s.outMu.Unlock()
	}
}

// finishWritingLocked ends a writer's turn once the queue is empty or the
// session closed, closing the connection if the session was closing. It
// unlocks outMu.
func (s *Session) finishWritingLocked() {
	s.writing = false
	s.releaseQueueLocked()
	done := s.closing && !s.closed
	if done {
		s.closed = true
	}
	s.wakePacerLocked()
	s.outMu.Unlock()
	if done {
		s.conn.Close()
	}
}

// failWriteLocked ends the session after a failed write. It is called
// with outMu held, and drops it while closing the connection.
func (s *Session) failWriteLocked(err error) {
	if !s.writeFailedLocked(err) {
		return
	}
	s.outMu.Unlock()
	s.conn.Close()
	s.outMu.Lock()
}

// writeFailedLocked marks the session closed by a failed write, with
// outMu held, and reports whether the caller is the one to close the
// connection (false: it was closed already).
func (s *Session) writeFailedLocked(err error) bool {
	if s.closed {
		return false
	}
	s.closed, s.closing = true, true
	if s.reason == "" {
		s.reason = writeErrorReason(err)
	}
	return true
}

// pace holds the command running for the session until the writer has
// taken the queued output down to half the send queue. Commands with long
// replies (LIST, WHO, several rooms' NAMES or JOINs) call it between
// lines, and every line read ends with it, so a reply streams at the pace
// the client reads it and the client's next line waits meanwhile. A
// client that takes nothing for ping_timeout is a slow consumer. pace
// reports false once the session is closing: stop producing. Call it only
// from the goroutine handling the session's line.
func (s *Session) pace() bool {
	mark := s.sendqMax / 2
	s.spillLabel(mark)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.outMu.Lock()
		if s.outBytes <= mark || s.closing {
			ok := !s.closing
			s.outMu.Unlock()
			return ok
		}
		if s.drained == nil {
			s.drained = make(chan struct{})
		}
		drained := s.drained
		s.outMu.Unlock()
		s.Flush() // lines a room queued may not have been flushed yet
		wait := s.srv.Config().Limits.PingTimeout
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-drained:
		case <-timer.C:
			s.outMu.Lock()
			slow := !s.closing
			if slow {
				s.overflowLocked()
			}
			s.outMu.Unlock()
			if slow {
				s.srv.metrics.slowConsumers.Inc()
			}
		}
	}
}

// wakePacerLocked lets a command waiting in pace look at the queue again.
func (s *Session) wakePacerLocked() {
	if s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// Queue slices are pooled: a session holds them only while it has output
// pending, so an idle connection keeps none, and a busy one reuses slices
// that have already grown instead of growing new ones for every burst.
var queuePool = sync.Pool{New: func() any { q := make([][]byte, 0, 64); return &q }}

// maxPooledQueue keeps a rare huge burst from being pooled forever.
const maxPooledQueue = 4096

// releaseQueueLocked gives the session's (empty) queue slices back.
func (s *Session) releaseQueueLocked() {
	for _, q := range []*[][]byte{&s.out, &s.spare} {
		if *q != nil && cap(*q) <= maxPooledQueue {
			clear(*q) // a closed session may leave lines behind
			b := (*q)[:0]
			queuePool.Put(&b)
		}
		*q = nil
	}
}

func (s *Session) writeBatch(batch [][]byte, total int, timeout time.Duration) error {
	s.conn.SetWriteDeadline(time.Now().Add(timeout))
	var err error
	switch mode := s.mode.Load(); {
	case mode != 0:
		bp := coalescePool.Get().(*[]byte)
		buf := s.render((*bp)[:0], batch)
		_, err = s.conn.Write(buf)
		total = len(buf) // counted as rendered, as the shared writers do
		putCoalesce(bp, buf)
	case len(batch) == 1:
		_, err = s.conn.Write(batch[0])
	case total <= coalesceSize:
		bp := coalescePool.Get().(*[]byte)
		buf := (*bp)[:0]
		for _, line := range batch {
			buf = append(buf, line...)
		}
		_, err = s.conn.Write(buf)
		*bp = buf[:0]
		coalescePool.Put(bp)
	default:
		bufs := net.Buffers(batch)
		_, err = bufs.WriteTo(s.conn)
	}
	if err == nil {
		s.srv.metrics.bytesWritten.Add(float64(total))
	}
	return err
}

// render appends the batch's lines to buf as the client is to see them.
// A person's lines are rewritten here, on the session's writer, so the
// fan-out that queued them pays nothing.
func (s *Session) render(buf []byte, batch [][]byte) []byte {
	if mode := s.mode.Load(); mode != 0 {
		r := s.renderer(mode)
		for _, line := range batch {
			buf = r.appendLine(buf, line)
		}
		return buf
	}
	for _, line := range batch {
		buf = append(buf, line...)
	}
	return buf
}

// reply encodes m and queues it as a reply to the session's command.
func (s *Session) reply(m protocol.Message) {
	s.Reply(m.AppendTo(nil))
}

// numeric queues a server numeric addressed to the session's nick.
func (s *Session) numeric(code string, params ...string) {
	s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: code, Params: append([]string{s.Nick()}, params...)})
}

// notice queues a server NOTICE to the session, for netcat-friendly hints.
func (s *Session) notice(text string) {
	s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: "NOTICE", Params: []string{s.Nick(), text}})
}

// Output modes, the bits of Session.mode.
const (
	// modeTerminal marks a person in a terminal: a connection that
	// registered without CAP or USER. Errors, HELP and server notices
	// reach it as sentences, its own messages are echoed, and it is
	// never PINGed (see pings).
	modeTerminal uint32 = 1 << iota
	// modeText is FORMAT text: everything as plain chat lines.
	modeText
)

// setMode turns an output mode bit on or off. A terminal session sees its
// own messages, as echo-message clients do, so the bit changes its
// features too. Call it from the goroutine handling the session's line.
func (s *Session) setMode(bit uint32, on bool) {
	m := s.mode.Load()
	if on {
		m |= bit
	} else {
		m &^= bit
	}
	s.mode.Store(m)
	s.setCaps(capSet(s.caps.Load()))
}

// terminal reports whether the session is a person in a terminal (see
// modeTerminal). Safe from any goroutine.
func (s *Session) terminal() bool { return s.mode.Load()&modeTerminal != 0 }

// pings reports whether the session is PINGed when idle and dropped when
// it does not answer. A person in nc cannot answer a PING, so terminal
// and FORMAT text sessions on TCP are not PINGed: TCP keepalive (set on
// every accepted connection, see keepAlive) and write errors find a dead
// peer instead. IRC clients answer PINGs, and WebSocket connections keep
// them whoever is at the other end: the keepalive of their socket is
// the HTTP server's business.
func (s *Session) pings() bool {
	return s.mode.Load() == 0 || s.transport != "tcp" && s.transport != "tls"
}
