package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/protocol"
)

type fanoutScenario struct {
	rooms, members, senders int
	rate                    float64
	window                  int
	windowAt                string
	duration, warmup        time.Duration
	messages                int64
	size                    int
}

func (f *fanoutScenario) defaultNickPrefix() string { return "lcbf" }

func (f *fanoutScenario) doc() string {
	return `R rooms x M members; the first S members of every room send PRIVMSGs to their room
and every member checks what it receives.

Message text: "lcb<run-id> <room> <sender-id> <seq> <unix-nanos> [padding]". Every
receiver checks per-sender order (seq strictly increasing), routing (the channel and the
room id in the text both match the receiver's room) and, after the drain, loss (messages
each sender wrote vs messages each other member received). PRIVMSGs without this run's
tag (e.g. history a server replays from an earlier run) are counted as
foreign_privmsgs and not checked. Latency = receive time (when the socket read that
completed the line returned) minus the embedded timestamp, for messages stamped after
the warmup, in a log-linear histogram (<0.4% error, fixed memory, exact max).

Pacing:
  -rate N > 0   open loop: sender k's i-th message is due at t0 + phase_k + i/N and
                carries that INTENDED time as its timestamp, even if it is written
                late (a slow server is not flattered by coordinated omission). Senders
                are phase-spread evenly over one interval.
  -rate 0       flat out, with at most -window W messages of each sender in flight.
                IRC servers do not echo a sender's own PRIVMSG, so the sender cannot
                see its messages come back; the receivers are in the same process and
                acknowledge through memory instead (never through the network):
                -window-at all (default): a message is in flight until EVERY other
                  member of the room has received it. Every queue in the path (server
                  input, server output to each member, sockets) then holds at most W
                  messages per sender, so the throughput is what the whole pipeline
                  sustains and the latency is not inflated by unbounded queueing. Each
                  sender has W slot counters; a receiver bumps the slot of each new seq,
                  the one completing it wakes the sender. A lost message never completes
                  its slot, so loss stalls that sender until the send phase ends (and
                  is then reported as loss).
                -window-at observer: in flight until one designated observer (member
                  (i+1) mod M for sender i) has received it or any later message. This
                  bounds only the server's input queue and the observer's path; the
                  other members' queues can grow (their latency shows it).

Phases: setup (connect, register, join all, bounded by -timeout) -> send for
-warmup + -duration (warmup messages are checked but not in latency/throughput) ->
drain until every receiver has every message or -timeout passes -> close.`
}

func (f *fanoutScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&f.rooms, "rooms", 1, "number of rooms (R)")
	fs.IntVar(&f.members, "members", 200, "members per room (M), >= 2")
	fs.IntVar(&f.senders, "senders", 1, "senders per room (S), 1..M; senders are members 0..S-1")
	fs.Float64Var(&f.rate, "rate", 0, "messages per second per sender (open loop); 0 = flat out with -window")
	fs.IntVar(&f.window, "window", 32, "flat out (-rate 0): max messages per sender in flight (see -window-at)")
	fs.StringVar(&f.windowAt, "window-at", "all", "flat out: a message stops being in flight when received by `all` other members, or by one \"observer\"")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured send phase (after -warmup)")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "send phase before the measured one; its messages are checked for order/loss but not measured")
	fs.Int64Var(&f.messages, "messages", 1_000_000, "max messages per sender (bounds the run)")
	fs.IntVar(&f.size, "size", 0, "pad message text to at least this many bytes (max 400)")
}

func (f *fanoutScenario) validate(c *common) error {
	switch {
	case f.rooms < 1:
		return errors.New("-rooms must be >= 1")
	case f.members < 2:
		return errors.New("-members must be >= 2")
	case f.senders < 1 || f.senders > f.members:
		return errors.New("-senders must be in 1..members")
	case f.rate < 0:
		return errors.New("-rate must be >= 0")
	case f.rate == 0 && f.window < 1:
		return errors.New("-window must be >= 1")
	case f.windowAt != "all" && f.windowAt != "observer":
		return errors.New(`-window-at must be "all" or "observer"`)
	case f.duration <= 0:
		return errors.New("-duration must be > 0")
	case f.warmup < 0:
		return errors.New("-warmup must be >= 0")
	case f.messages < 1:
		return errors.New("-messages must be >= 1")
	case f.size < 0 || f.size > 400:
		return errors.New("-size must be in 0..400")
	case c.timeout <= 0:
		return errors.New("-timeout must be > 0")
	}
	return nil
}

func (f *fanoutScenario) fdsNeeded() int { return f.rooms * f.members }

// fanSender is one sending member.
type fanSender struct {
	sid       int
	conn      *ircConn
	prefix    []byte // "PRIVMSG #room :lcb <room> <sid> "
	textStart int    // offset of the message text in prefix
	pad       int    // pad text to this many bytes (0: none)

	sent atomic.Int64 // messages written to the socket
	err  error

	// flat-out window (see the scenario doc)
	ack   chan struct{} // wakes the sender, buffered 1
	acked atomic.Int64  // -window-at observer: highest seq the observer saw
	// -window-at all: slots[seq % W] counts the members that received seq;
	// need is M-1; done (sender goroutine only) is the highest seq such that
	// it and all before it reached need.
	slots []atomic.Int32
	need  int32
	done  int64
}

// appendMsg appends one PRIVMSG line for seq with timestamp ts.
func (s *fanSender) appendMsg(b []byte, seq, ts int64) []byte {
	start := len(b)
	b = append(b, s.prefix...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ts, 10)
	if text := len(b) - start - s.textStart; text+1 < s.pad {
		b = append(b, ' ')
		for n := text + 1; n < s.pad; n++ {
			b = append(b, 'x')
		}
	}
	return append(b, '\r', '\n')
}

// newTextTag returns the tag that starts every message text of one run:
// "lcb" + a random run id + " ". Messages of other runs (say, replayed room
// history from an earlier run against the same server) do not carry it and
// are counted as foreign rather than as order or loss errors.
func newTextTag() string {
	return "lcb" + strconv.FormatUint(rand.Uint64N(36*36*36*36*36), 36) + " "
}

// received is called by a receiver holding an ack duty for s, for every
// new (in-order) seq it gets from s.
func (s *fanSender) received(seq int64) {
	if s.slots != nil {
		if s.slots[seq%int64(len(s.slots))].Add(1) != s.need {
			return
		}
	} else {
		if seq <= s.acked.Load() {
			return
		}
		s.acked.Store(seq) // only the one observer stores
	}
	select {
	case s.ack <- struct{}{}:
	default:
	}
}

// completed returns the highest seq up to which everything was acknowledged
// (called by the sender goroutine only); sent is the highest seq written.
func (s *fanSender) completed(sent int64) int64 {
	if s.slots == nil {
		return s.acked.Load()
	}
	w := int64(len(s.slots))
	for s.done < sent {
		sl := &s.slots[(s.done+1)%w]
		if sl.Load() != s.need {
			break
		}
		sl.Store(0) // free the slot for seq done+1+w
		s.done++
	}
	return s.done
}

// fanReceiver is the per-member receive state, owned by the member's reader
// goroutine (only total is read concurrently).
type fanReceiver struct {
	tag      string // run tag, see newTextTag
	room     int
	roomName string
	self     int // sender-local index of this member, or -1
	nSenders int
	warmEnd  *atomic.Int64

	last  []int64      // per sender-local index: last seq seen
	count []int64      // per sender-local index: messages received
	acks  []*fanSender // per sender-local index: whom to acknowledge (flat out)

	total atomic.Int64 // valid messages received (all senders)

	hist      *Histogram
	orderErrs int64 // seq not strictly increasing
	routeErrs int64 // wrong channel or wrong room id
	foreign   int64 // PRIVMSG not in our format
	selfEcho  int64 // our own message echoed back
	firstErr  string
}

func newFanReceiver(tag string, room int, roomName string, self, nSenders int, warmEnd *atomic.Int64) *fanReceiver {
	return &fanReceiver{
		tag: tag, room: room, roomName: roomName, self: self, nSenders: nSenders, warmEnd: warmEnd,
		last: make([]int64, nSenders), count: make([]int64, nSenders), hist: &Histogram{},
	}
}

func (r *fanReceiver) ackFor(k int, s *fanSender) {
	if r.acks == nil {
		r.acks = make([]*fanSender, r.nSenders)
	}
	r.acks[k] = s
}

// handle processes one received message at time now (unix nanos).
func (r *fanReceiver) handle(m *protocol.Message, now int64) {
	if m.Command != "PRIVMSG" || len(m.Params) < 2 {
		return
	}
	room, sid, seq, ts, ok := parseBody(m.Params[len(m.Params)-1], r.tag)
	if !ok {
		r.foreign++
		return
	}
	if room != int64(r.room) || !strings.EqualFold(m.Params[0], r.roomName) ||
		sid < room*int64(r.nSenders) || sid >= (room+1)*int64(r.nSenders) {
		r.routeErrs++
		if r.firstErr == "" {
			r.firstErr = fmt.Sprintf("member of %s got message for room %d sender %d on %s", r.roomName, room, sid, m.Params[0])
		}
		return
	}
	k := int(sid - room*int64(r.nSenders))
	if k == r.self {
		r.selfEcho++
		return
	}
	if seq <= r.last[k] {
		r.orderErrs++
		if r.firstErr == "" {
			r.firstErr = fmt.Sprintf("member of %s: sender %d seq %d after %d", r.roomName, sid, seq, r.last[k])
		}
	} else {
		r.last[k] = seq
		if r.acks != nil {
			if s := r.acks[k]; s != nil {
				s.received(seq)
			}
		}
	}
	r.count[k]++
	r.total.Add(1)
	if ts >= r.warmEnd.Load() {
		r.hist.Record(now - ts)
	}
}

// parseBody parses "<tag><room> <sid> <seq> <ts>[ padding]".
func parseBody(s, tag string) (room, sid, seq, ts int64, ok bool) {
	if !strings.HasPrefix(s, tag) {
		return
	}
	i := len(tag)
	var vals [4]int64
	for f := 0; f < 4; f++ {
		start := i
		var v int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if v > (1<<62)/10 {
				return
			}
			v = v*10 + int64(s[i]-'0')
			i++
		}
		if i == start {
			return
		}
		vals[f] = v
		if f < 3 {
			if i >= len(s) || s[i] != ' ' {
				return
			}
			i++
		}
	}
	if i < len(s) && s[i] != ' ' {
		return
	}
	return vals[0], vals[1], vals[2], vals[3], true
}

// lossCheck compares what every receiver got with what every sender sent.
// sent is indexed by global sender id (room*S + k).
type lossResult struct {
	expected, received, lost, extra int64
}

func lossCheck(recvs []*fanReceiver, sent []int64) lossResult {
	var lr lossResult
	for _, r := range recvs {
		for k := 0; k < r.nSenders; k++ {
			if k == r.self {
				continue
			}
			exp := sent[r.room*r.nSenders+k]
			got := r.count[k]
			lr.expected += exp
			lr.received += got
			if got < exp {
				lr.lost += exp - got
			} else {
				lr.extra += got - exp
			}
		}
	}
	return lr
}

func (f *fanoutScenario) run(ctx context.Context, c *common, rep *report) error {
	R, M, S := f.rooms, f.members, f.senders
	n := R * M
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	setupStart := time.Now()
	setupDeadline := setupStart.Add(c.timeout)
	hard := setupDeadline.Add(f.warmup + f.duration + c.timeout + 10*time.Second)

	tag := newTextTag()
	var warmEnd atomic.Int64
	warmEnd.Store(1<<63 - 1) // nothing is measured until the send phase starts

	conns := make([]*ircConn, n)
	recvs := make([]*fanReceiver, n)
	senders := make([]*fanSender, R*S)
	for g := 0; g < n; g++ {
		r, i := g/M, g%M
		self := -1
		if i < S {
			self = i
		}
		recvs[g] = newFanReceiver(tag, r, roomName(c.roomPrefix, r), self, S, &warmEnd)
	}
	for r := 0; r < R; r++ {
		for k := 0; k < S; k++ {
			sid := r*S + k
			s := &fanSender{sid: sid, ack: make(chan struct{}, 1), pad: f.size}
			p := "PRIVMSG " + roomName(c.roomPrefix, r) + " :"
			s.textStart = len(p)
			p += tag + strconv.Itoa(r) + " " + strconv.Itoa(sid) + " "
			s.prefix = []byte(p)
			senders[sid] = s
			if f.rate == 0 {
				if f.windowAt == "all" {
					s.slots = make([]atomic.Int32, f.window)
					s.need = int32(M - 1)
					for i := 0; i < M; i++ {
						if i != k {
							recvs[r*M+i].ackFor(k, s)
						}
					}
				} else {
					recvs[r*M+(k+1)%M].ackFor(k, s)
				}
			}
		}
	}

	var closing atomic.Bool
	var disconnects atomic.Int64
	var readers sync.WaitGroup
	closeAll := func() {
		closing.Store(true)
		for _, cn := range conns {
			if cn != nil {
				cn.close()
			}
		}
	}
	var connsMu sync.Mutex // guards conns during setup (closeAll may race with it)
	watchdog := time.AfterFunc(time.Until(hard), func() {
		cancel()
		connsMu.Lock()
		closeAll()
		connsMu.Unlock()
	})
	defer watchdog.Stop()

	// ---- setup ----
	var setupErrs errorCounts
	var joined atomic.Int64
	prog := startProgress(c, "fanout setup", func() string {
		return fmt.Sprintf("joined %d/%d", joined.Load(), n)
	})
	setupCtx, setupCancel := context.WithDeadline(ctx, setupDeadline)
	parallel(setupCtx, n, c.dialConc, func(g int) {
		if setupErrs.total() > 0 {
			return // fail fast
		}
		cn, err := connectJoin(setupCtx, c.dialer, nickFor(c.nickPrefix, g), recvs[g].roomName, setupDeadline, hard, 16<<10)
		if err != nil {
			setupErrs.add(stepOf(err), err)
			return
		}
		connsMu.Lock()
		conns[g] = cn
		if closing.Load() {
			cn.close()
		}
		connsMu.Unlock()
		joined.Add(1)
		readers.Add(1)
		go func(rv *fanReceiver) {
			defer readers.Done()
			cn.readLoop(rv.handle)
			if !closing.Load() {
				disconnects.Add(1)
			}
		}(recvs[g])
	})
	setupCancel()
	prog.Stop()
	setupDur := time.Since(setupStart)
	rep.add("connections", n)
	rep.add("setup_seconds", round3(setupDur.Seconds()))
	if int(joined.Load()) != n {
		connsMu.Lock()
		closeAll()
		connsMu.Unlock()
		readers.Wait()
		rep.add("setup_failures", setupErrs.snapshot())
		return fmt.Errorf("setup: %d of %d members joined (%s)", joined.Load(), n, setupErrs.sampleString())
	}
	for g := 0; g < n; g++ {
		if g%M < S {
			senders[(g/M)*S+g%M].conn = conns[g]
		}
	}

	// ---- send ----
	cpu := startCPU(c.pid)
	t0 := time.Now().Add(20 * time.Millisecond)
	warmEndT := t0.Add(f.warmup)
	sendEndT := warmEndT.Add(f.duration)
	warmEnd.Store(warmEndT.UnixNano())
	stop := make(chan struct{})
	stopTimer := time.AfterFunc(time.Until(sendEndT), func() { close(stop) })
	defer stopTimer.Stop()

	totalSent := func() int64 {
		var t int64
		for _, s := range senders {
			t += s.sent.Load()
		}
		return t
	}
	totalRecv := func() int64 {
		var t int64
		for _, r := range recvs {
			t += r.total.Load()
		}
		return t
	}
	var lastRecv int64
	prog = startProgress(c, "fanout", func() string {
		tr := totalRecv()
		d := tr - lastRecv
		lastRecv = tr
		return fmt.Sprintf("sent %d delivered %d (%d/s)", totalSent(), tr, d)
	})

	var sendWG sync.WaitGroup
	nSenders := len(senders)
	for _, s := range senders {
		sendWG.Add(1)
		go func(s *fanSender) {
			defer sendWG.Done()
			if f.rate > 0 {
				iv := float64(time.Second) / f.rate
				phase := int64(iv * float64(s.sid) / float64(nSenders))
				s.runRate(iv, t0.UnixNano()+phase, sendEndT.UnixNano(), f.messages, stop)
			} else {
				for time.Now().Before(t0) {
					time.Sleep(time.Until(t0))
				}
				s.runWindow(int64(f.window), sendEndT.UnixNano(), f.messages, stop)
			}
		}(s)
	}
	sendWG.Wait()
	sendDone := time.Now()

	// ---- drain ----
	sent := make([]int64, len(senders))
	var sentTotal, writeErrs int64
	var firstWriteErr error
	for i, s := range senders {
		sent[i] = s.sent.Load()
		sentTotal += sent[i]
		if s.err != nil {
			writeErrs++
			if firstWriteErr == nil {
				firstWriteErr = s.err
			}
		}
	}
	expected := sentTotal * int64(M-1)
	drainDeadline := sendDone.Add(c.timeout)
	drained := false
	tick := time.NewTicker(2 * time.Millisecond)
	for {
		if totalRecv() >= expected {
			drained = true
			break
		}
		if time.Now().After(drainDeadline) || ctx.Err() != nil {
			break
		}
		<-tick.C
	}
	tick.Stop()
	drainDur := time.Since(sendDone)
	cpu.stop()
	prog.Stop()

	connsMu.Lock()
	closeAll()
	connsMu.Unlock()
	readers.Wait()

	// ---- results ----
	lr := lossCheck(recvs, sent)
	hist := &Histogram{}
	var orderErrs, routeErrs, foreign, selfEcho int64
	firstErr := ""
	for _, r := range recvs {
		hist.Merge(r.hist)
		orderErrs += r.orderErrs
		routeErrs += r.routeErrs
		foreign += r.foreign
		selfEcho += r.selfEcho
		if firstErr == "" {
			firstErr = r.firstErr
		}
	}
	measured := hist.Count()
	mode := "flat-out"
	if f.rate > 0 {
		mode = "open-loop"
	}
	if f.rate == 0 {
		mode += " window " + strconv.Itoa(f.window) + " at " + f.windowAt
	}
	rep.add("mode", mode)
	rep.add("rooms", R)
	rep.add("members_per_room", M)
	rep.add("senders", R*S)
	rep.add("sent", sentTotal)
	rep.add("expected_deliveries", expected)
	rep.add("delivered", lr.received)
	rep.add("lost", lr.lost)
	rep.add("duplicates_or_extra", lr.extra)
	rep.add("order_violations", orderErrs)
	rep.add("routing_errors", routeErrs)
	rep.add("foreign_privmsgs", foreign)
	rep.add("self_echoes", selfEcho)
	rep.add("disconnects", disconnects.Load())
	rep.add("write_errors", writeErrs)
	rep.add("drained", drained)
	rep.add("drain_seconds", round3(drainDur.Seconds()))
	rep.add("measured_seconds", round3(f.duration.Seconds()))
	rep.add("measured_deliveries", measured)
	rep.add("deliveries_per_sec", round3(float64(measured)/f.duration.Seconds()))
	rep.add("sent_msgs_per_sec", round3(float64(measured)/float64(M-1)/f.duration.Seconds()))
	if f.rate > 0 {
		rep.add("target_sent_msgs_per_sec", round3(f.rate*float64(R*S)))
	}
	rep.add("latency_us", latencySummary(hist))
	cpu.add(rep, lr.received, "delivery")
	ok := drained && lr.lost == 0 && orderErrs == 0 && routeErrs == 0 && disconnects.Load() == 0 && writeErrs == 0
	rep.add("ok", ok)
	if !ok {
		msg := firstErr
		if firstWriteErr != nil {
			msg = strings.TrimSpace(msg + " write: " + firstWriteErr.Error())
		}
		if !drained {
			msg = strings.TrimSpace(msg + fmt.Sprintf(" not drained after %v: %d of %d deliveries", c.timeout, lr.received, expected))
		}
		if msg != "" {
			rep.add("problem", msg)
		}
	}
	return nil
}

const sendFlushBytes = 32 << 10

func (s *fanSender) flush(buf []byte, pending int64) ([]byte, bool) {
	if len(buf) == 0 {
		return buf, true
	}
	if err := s.conn.write(buf); err != nil {
		if s.err == nil {
			s.err = err
		}
		return buf[:0], false
	}
	s.sent.Add(pending)
	return buf[:0], true
}

// runWindow sends flat out keeping at most w messages in flight (written but
// not yet acknowledged by the receivers, see received/completed).
func (s *fanSender) runWindow(w, sendEnd, maxMsgs int64, stop <-chan struct{}) {
	buf := make([]byte, 0, sendFlushBytes+1024)
	var seq, pending int64
	ok := true
	defer func() {
		if ok {
			s.flush(buf, pending)
		}
	}()
	for seq < maxMsgs {
		for seq-s.completed(seq) >= w {
			if buf, ok = s.flush(buf, pending); !ok {
				return
			}
			pending = 0
			select {
			case <-s.ack:
			case <-stop:
				return
			}
		}
		now := time.Now().UnixNano()
		if now >= sendEnd {
			return
		}
		seq++
		pending++
		buf = s.appendMsg(buf, seq, now)
		if len(buf) >= sendFlushBytes {
			if buf, ok = s.flush(buf, pending); !ok {
				return
			}
			pending = 0
		}
	}
}

// runRate sends message i (from 0) at start + i*iv nanoseconds, stamped with
// that intended time; late messages are sent immediately (batched) with
// their original intended timestamps.
func (s *fanSender) runRate(iv float64, start, sendEnd, maxMsgs int64, stop <-chan struct{}) {
	buf := make([]byte, 0, sendFlushBytes+1024)
	var pending int64
	ok := true
	defer func() {
		if ok {
			s.flush(buf, pending)
		}
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for i := int64(0); i < maxMsgs; i++ {
		due := start + int64(float64(i)*iv)
		if due >= sendEnd {
			return
		}
		if wait := due - time.Now().UnixNano(); wait > 0 {
			if buf, ok = s.flush(buf, pending); !ok {
				return
			}
			pending = 0
			timer.Reset(time.Duration(wait))
			select {
			case <-timer.C:
			case <-stop:
				return
			}
		}
		pending++
		buf = s.appendMsg(buf, i+1, due)
		if len(buf) >= sendFlushBytes {
			if buf, ok = s.flush(buf, pending); !ok {
				return
			}
			pending = 0
		}
	}
}
