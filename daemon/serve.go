package daemon

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/livechat/livechat/daemon/wslisten"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// maxClientTagSection bounds the tags a client sends, '@' and the space
// after them included (IRCv3 message-tags).
const maxClientTagSection = 4096

// deadlineSlack is how stale a read deadline may get before it is pushed
// forward, so a busy connection does not reset a timer on every line. It
// is capped at a fraction of the ping interval, which may be short.
const deadlineSlack = time.Second

// serve is the session's reader loop: it reads and handles lines until
// the client leaves, breaks a limit, or the server closes the connection,
// then releases the session's nick and rooms.
//
// The order is what observers rely on: the metrics count the disconnect
// before the room hears the QUIT, and the rooms and the nick are free
// before the client reads its ERROR, so a client that reconnects at once
// gets its nick back. MONITOR watchers hear of it once the nick is free,
// and WHOWAS knows it before the ERROR.
func (s *Session) serve() {
	reason := s.readLoop()
	if r := s.closeReason(); r != "" {
		reason = r
	}
	if reason == reasonMessageTooLong {
		// Here, not where it is read: the writer may hit the closed
		// connection first and end the session with this reason while
		// the reader never reads the error.
		s.srv.metrics.tooLong.Inc()
	}
	s.srv.metrics.disconnected(s.transport, reason)
	// Another device's JOIN may be joining s to its room (joinAsTwin,
	// under identMu): it finishes first and leaveAll leaves that room
	// too, or it comes after and finds s gone, instead of leaving a
	// closed session in the room for good.
	s.identMu.Lock()
	s.left = true
	s.identMu.Unlock()
	s.leaveAll(reason) // a device whose user stays connected leaves quietly
	if s.leaveDevices() {
		s.srv.monitors.remove(s, nil) // its own MONITOR list; the user is still online
	} else {
		s.srv.nicks.release(s)
		s.gone()
	}
	s.closeWith(reason)
	s.log().Info().Str("nick", s.Nick()).Str("reason", reason).Msg("disconnected")
	// Give the final ERROR its chance, but never wait on the client.
	s.conn.SetReadDeadline(time.Now().Add(closeTimeout))
}

// readLoop returns the reason the connection ended. It only reads: each
// line is handled on a pooled worker goroutine while this one waits, so
// the goroutine an idle connection parks in Read never grows its stack
// past the minimum (2 KiB instead of the 4-8 KiB handlers need).
func (s *Session) readLoop() string {
	r := protocol.NewReader(s.conn)
	if c, ok := s.conn.(interface{ ChargeFrames(func() bool) }); ok {
		c.ChargeFrames(s.chargeFrame)
	}
	s.conn.SetReadDeadline(time.Unix(0, s.connected).Add(s.srv.Config().Limits.RegistrationTimeout))
	for {
		s.step.line, s.step.err = r.ReadLine()
		s.step.done.Add(1)
		s.srv.workers.submit(s)
		s.step.done.Wait()
		if reason := s.step.reason; reason != "" {
			return reason
		}
	}
}

// lineStep is the hand-off between a session's reader and the worker
// that handles its line. The reader waits for done, so the worker owns
// the session's reader-side state meanwhile. A WaitGroup rather than a
// channel: it lives inside the Session, where a channel was a 112-byte
// allocation every connection kept.
type lineStep struct {
	line   []byte
	err    error
	reason string // the reason to stop, or "" to read on
	done   sync.WaitGroup
}

// runStep handles the line in s.step. It runs on a worker goroutine.
func (s *Session) runStep() {
	s.step.reason = s.process(s.step.line, s.step.err)
	// The line may live in a pooled buffer the reader has handed back;
	// do not keep it alive while the connection idles.
	s.step.line, s.step.err = nil, nil
	s.step.done.Done()
}

// reasonMessageTooLong ends a WebSocket session whose client sent a
// message over the limit (a TCP client's long line only gets a numeric).
const reasonMessageTooLong = "Message too long"

// writeErrorReason names a failed write in the quit message. A WebSocket
// client that sent an oversized message has its connection closed under
// the writer too, which then reports why.
func writeErrorReason(err error) string {
	if errors.Is(err, wslisten.ErrMessageTooBig) {
		return reasonMessageTooLong
	}
	return "Write error"
}

// Why a line was refused, for the livechat_input_refused_total metric.
const (
	refusalLineBreak = "ws_line_break" // a WebSocket message held a line break
	refusalParse     = "parse"         // not a message: tags alone, a bad command, ...
	refusalTagKey    = "tag_key"       // tags with invalid keys dropped (the message ran)
)

// reasonInvalidUTF8 ends a WebSocket session whose client sent a text
// message that is not UTF-8 (RFC 6455 closes those with 1007).
const reasonInvalidUTF8 = "Invalid UTF-8 in a text message"

// process handles one result of ReadLine and returns a reason to stop, if
// any. Lines refused before they are parsed cost flood tokens like any
// other, so a stream of them is slowed down too.
func (s *Session) process(line []byte, err error) string {
	switch {
	case err == nil:
	case errors.Is(err, wslisten.ErrMessageTooBig):
		return reasonMessageTooLong
	case errors.Is(err, wslisten.ErrExcessFlood):
		return "Excess flood" // counted by chargeFrame
	case errors.Is(err, wslisten.ErrInvalidUTF8):
		s.srv.metrics.invalidInput.Inc()
		return reasonInvalidUTF8
	case errors.Is(err, protocol.ErrLineTooLong):
		s.srv.metrics.tooLong.Inc()
		s.numeric(protocol.ERR_INPUTTOOLONG, "Input line was too long: lines are limited to "+strconv.Itoa(protocol.MaxBodyLen+2)+" bytes with the line ending; it was not run")
		return s.throttleOnly()
	case errors.Is(err, wslisten.ErrLineBreak):
		s.srv.metrics.refusedInput.WithLabelValues(refusalLineBreak).Inc()
		s.reply(failMessage(s.srv.Config().ServerName, "*", "INVALID_MESSAGE", "One IRC line per WebSocket message: this one held a line break and was not run"))
		return s.throttleOnly()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return s.idle()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return "Connection closed"
	default:
		return "Read error"
	}

	now := time.Now()
	s.srv.metrics.bytesRead.Add(float64(len(line) + 1))
	s.pingSent = false
	if s.registered.Load() {
		s.pushReadDeadline(now)
	}
	s.activeAt.Store(now.UnixNano())
	// The lines of an open multiline batch are free: its limits bound
	// them, and the batch pays with its BATCH lines. Only its own lines:
	// anything else sent while a batch is open pays as usual.
	if !s.batchOwns(line) {
		if reason, ok := s.throttle(now); !ok {
			return reason
		}
	}
	if len(line) == 0 {
		return ""
	}
	s.handleLine(line)
	s.pace() // the next line waits until this one's replies are on their way
	if s.quit != "" {
		return s.quit
	}
	return s.closeReason()
}

// pushReadDeadline moves the idle deadline to ping_interval from now, at
// most once per slack: measured from when it was last moved, not from the
// previous line, or a client that talks steadily would never move it and
// be PINGed while busy.
func (s *Session) pushReadDeadline(now time.Time) {
	if !s.pings() {
		if !s.deadlineOff {
			s.deadlineOff = true
			s.conn.SetReadDeadline(time.Time{})
		}
		return
	}
	if s.deadlineOff {
		s.deadlineOff = false
		s.deadlineSet = 0 // move it at once
	}
	interval := s.srv.Config().Limits.PingInterval
	if t := monoNanos(now); s.deadlineSet == 0 || time.Duration(t-s.deadlineSet) > min(deadlineSlack, interval/8) {
		s.deadlineSet = t
		s.conn.SetReadDeadline(now.Add(interval))
	}
}

// idle handles a read deadline: an unregistered client ran out of time, a
// quiet one is PINGed, and one that stayed quiet after the PING is dropped.
// It returns the reason to drop the client, or "".
func (s *Session) idle() string {
	cfg := s.srv.Config()
	if !s.registered.Load() {
		return "Registration timed out"
	}
	if !s.pings() {
		// Became a person since the deadline was set (FORMAT text): no
		// PING, and no deadline from now on.
		s.pingSent = false
		s.pushReadDeadline(time.Now())
		return ""
	}
	if s.pingSent {
		return "Ping timeout: " + cfg.Limits.PingTimeout.String()
	}
	s.pingSent = true
	s.Send([]byte("PING :" + cfg.ServerName + "\r\n"))
	s.conn.SetReadDeadline(time.Now().Add(cfg.Limits.PingTimeout))
	s.deadlineSet = 0 // the next line must move it back at once
	return ""
}

// throttle applies flood control: within the burst lines run at once,
// beyond it they are delayed, and a client too far beyond it is dropped.
func (s *Session) throttle(now time.Time) (reason string, ok bool) {
	lim := s.srv.Config().Limits
	wait, ok := s.flood.take(now, lim.FloodBurst, lim.FloodRate, lim.FloodMaxLag)
	if !ok {
		s.srv.metrics.flood.WithLabelValues("disconnect").Inc()
		return "Excess flood", false
	}
	if wait > 0 {
		s.srv.metrics.flood.WithLabelValues("delay").Inc()
		time.Sleep(wait)
	}
	return "", true
}

// throttleOnly charges a line that is not run, and returns the reason to
// stop, if any.
func (s *Session) throttleOnly() string {
	reason, _ := s.throttle(time.Now())
	return reason
}

// chargeFrame is flood control for the WebSocket frames that never become
// lines (pings, pongs, fragments): the transport calls it from inside Read,
// in the reader goroutine, so no worker is using s.flood meanwhile.
func (s *Session) chargeFrame() bool {
	_, ok := s.throttle(time.Now())
	return ok
}

// handleLine parses and runs one line.
func (s *Session) handleLine(line []byte) {
	if line[0] == '@' {
		// IRCv3 message-tags: the client's tag section ('@' to the space)
		// may be 4096 bytes; the reader allows more for server tags.
		// A line of tags alone has no space, and is refused by Parse.
		end := bytes.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		if end+1 > maxClientTagSection {
			s.srv.metrics.tooLong.Inc()
			s.numeric(protocol.ERR_INPUTTOOLONG, "Input line was too long: tags are limited to "+strconv.Itoa(maxClientTagSection)+" bytes; it was not run")
			return
		}
	}
	msg, err := protocol.Parse(line)
	if err != nil {
		if !errors.Is(err, protocol.ErrEmptyLine) {
			s.srv.metrics.refusedInput.WithLabelValues(refusalParse).Inc()
			s.reply(failMessage(s.srv.Config().ServerName, "*", "INVALID_MESSAGE", "Could not parse that line: "+err.Error()))
		}
		return
	}
	if !utf8.Valid(line) {
		s.srv.metrics.invalidInput.Inc()
		s.reply(failMessage(s.srv.Config().ServerName, msg.Command, "INVALID_UTF8", "Message rejected: it contained invalid UTF-8"))
		return
	}
	if dropInvalidTags(&msg) {
		s.srv.metrics.refusedInput.WithLabelValues(refusalTagKey).Inc()
		s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: "WARN",
			Params: []string{msg.Command, "INVALID_TAG", "Tags with invalid keys were dropped; the message runs without them"}})
	}
	s.dispatch(&msg, line)
}

// dropInvalidTags removes the tags whose keys are not valid and reports
// whether there were any. The message still runs: message-tags forbids
// rejecting a message over a key, and the WARN keeps the client informed.
func dropInvalidTags(m *protocol.Message) bool {
	n := len(m.Tags)
	m.Tags = slices.DeleteFunc(m.Tags, func(t protocol.Tag) bool { return !protocol.ValidTagKey(t.Key) })
	if len(m.Tags) == 0 {
		m.Tags = nil
	}
	return len(m.Tags) != n
}

// leaveAll takes the session out of every room; each peer sees one QUIT
// however many rooms it shares with the session.
func (s *Session) leaveAll(reason string) {
	s.mu.Lock()
	rs := s.rooms()
	s.joined = nil
	s.mu.Unlock()
	if len(rs) == 0 {
		return
	}
	muted := false
	quit := s.event("QUIT", reason)
	quit.ID, quit.Origin = s.srv.ids.Next(), s.identity()
	peers := dedupe(rs, func(r *rooms.Room) []rooms.Client {
		p, m := r.Leave(s, quit)
		muted = muted || m
		return p
	})
	if muted && s.quit != "" && reason == s.quit {
		// The client's own words, from a member who may not speak in one
		// of its rooms (banned, unvoiced in +m): one QUIT goes to all.
		live := *quit
		live.Params = []string{"Quit"}
		quit = &live
	}
	notify(peers, quit, nil)
}
