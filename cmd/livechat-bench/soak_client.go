package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
)

// soakClient is one soak connection. One goroutine runs it: it acts,
// waits for what the action caused with a PING barrier, and reads (and
// checks) everything the server sends in between.
type soakClient struct {
	sc                 *soakScenario
	st                 *soakStats
	rng                *rand.Rand
	id                 uint32 // unique per connection; nicks carry it
	renames            int
	nick, prefix       string
	roomPrefix         string
	cn                 *ircConn
	stepTimeout        time.Duration
	hard               time.Time
	gone               bool
	barrier            int
	rooms              map[string]*soakRoom // by folded name, from our JOIN to our PART/KICK/QUIT
	seq                map[string]uint32    // last of our messages each room accepted
	parts, kickReasons map[string]int
	histBatch          map[string]bool
}

type soakRoom struct {
	name      string
	op        bool
	namesDone bool
	members   map[uint32]*soakMember // the others
}

// soakMember is what a client knows of a co-member: as a sender, our
// sequence number when the two of us came together (k0); as a receiver,
// the run of its sequence numbers we got since.
type soakMember struct {
	nick        string
	k0          uint32
	first, last uint32
	seen        bool
}

// soakNick names connection id after its n-th rename: the id stays
// readable from any nick the connection ever has.
func soakNick(prefix string, id uint32, n int) string {
	return prefix + strconv.FormatUint(uint64(id), 36) + "-" + strconv.FormatInt(int64(n), 36)
}

func (cl *soakClient) idOf(nick string) (uint32, bool) {
	rest, ok := strings.CutPrefix(protocol.FoldNick(nick), protocol.FoldNick(cl.prefix))
	if !ok {
		return 0, false
	}
	idPart, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(idPart, 36, 32)
	return uint32(id), err == nil
}

func sourceNick(source string) string {
	nick, _, _ := strings.Cut(source, "!")
	return nick
}

// connect dials, negotiates echo-message (the sender's proof that a
// message was accepted) and draft/chathistory (no history replayed on
// JOIN to be mistaken for live messages), registers, and maybe creates
// an account named after the nick.
func (cl *soakClient) connect(ctx context.Context, c *common, deadline time.Time) error {
	nc, err := c.dialer.dial(ctx, deadline)
	if err != nil {
		return &stepError{"dial", err}
	}
	cl.cn = newIRCConn(nc, 4096)
	cl.stepTimeout = c.timeout
	cl.nick = soakNick(cl.prefix, cl.id, 0)
	nc.SetDeadline(deadline)
	err = cl.cn.write([]byte("CAP LS 302\r\nCAP REQ :echo-message batch draft/chathistory\r\nNICK " + cl.nick +
		"\r\nUSER " + cl.nick + " 0 * :soak\r\nCAP END\r\n"))
	for i := 0; err == nil && i < maxSetupLines; i++ {
		m, line, rerr := cl.cn.nextSetupMessage("register")
		switch {
		case rerr != nil:
			err = rerr
		case m.Command == "CAP" && m.Param(1) == "NAK":
			err = fmt.Errorf("server refused caps: %s", lineText(line))
		case m.Command == protocol.RPL_WELCOME:
			nc.SetDeadline(time.Time{})
			if cl.rng.Float64() < cl.sc.registerFrac {
				cl.roundTrip("REGISTER " + cl.nick + " soak-password-" + cl.nick)
			}
			return nil
		case m.Command == "ERROR" || len(m.Command) == 3 && m.Command[0] >= '4' && m.Command[0] <= '5':
			err = fmt.Errorf("registration refused: %s", lineText(line))
		}
	}
	if err == nil {
		err = errors.New("too many lines before 001")
	}
	cl.cn.close()
	return &stepError{"register", err}
}

// act runs one random action and reports false when the client should
// quit.
func (cl *soakClient) act() bool {
	var joined []*soakRoom
	for _, r := range cl.rooms {
		joined = append(joined, r)
	}
	p := cl.rng.IntN(100)
	switch {
	case len(joined) == 0 || len(joined) < cl.sc.maxJoined && p < 15:
		return cl.roundTrip("JOIN " + roomName(cl.roomPrefix, cl.rng.IntN(cl.sc.rooms)))
	case p < 80:
		r := joined[cl.rng.IntN(len(joined))]
		seq := cl.seq[protocol.FoldRoom(r.name)] + 1
		return cl.roundTrip(fmt.Sprintf("PRIVMSG %s :soak %d %d", r.name, cl.id, seq))
	case p < 88:
		r := joined[cl.rng.IntN(len(joined))]
		folded := protocol.FoldRoom(r.name)
		cl.parts[folded]++
		return cl.roundTrip(fmt.Sprintf("PART %s :p%d", r.name, cl.parts[folded]))
	case p < 93:
		cl.renames++
		return cl.roundTrip("NICK " + soakNick(cl.prefix, cl.id, cl.renames))
	case p < 97:
		for _, r := range joined {
			if !r.op {
				continue
			}
			for _, m := range r.members {
				cl.kickReasons[r.name]++
				return cl.roundTrip(fmt.Sprintf("KICK %s %s :k%d.%d", r.name, m.nick, cl.id, cl.kickReasons[r.name]))
			}
		}
		return true
	default:
		return false
	}
}

// roundTrip sends a line and reads until the PONG of a PING sent after
// it: the server has then handled it, and what it caused for us is in.
func (cl *soakClient) roundTrip(line string) bool {
	cl.barrier++
	token := "b" + strconv.Itoa(cl.barrier)
	if err := cl.cn.write([]byte(line + "\r\nPING :" + token + "\r\n")); err != nil {
		cl.lost()
		return false
	}
	deadline := time.Now().Add(cl.stepTimeout)
	cl.cn.nc.SetReadDeadline(deadline)
	for !cl.gone {
		m, err := cl.next()
		if err != nil {
			cl.st.stuck.Add(1)
			return false
		}
		if m != nil && m.Command == "PONG" && m.Param(len(m.Params)-1) == token {
			return true
		}
	}
	return false
}

// readFor reads and handles lines for d.
func (cl *soakClient) readFor(d time.Duration) {
	cl.cn.nc.SetReadDeadline(time.Now().Add(d))
	for !cl.gone {
		if _, err := cl.next(); err != nil {
			return
		}
	}
}

// quit leaves and waits for the server to close the connection.
func (cl *soakClient) quit() {
	cl.st.quits.Add(1)
	if cl.gone || cl.cn.write([]byte("QUIT :bye\r\n")) != nil {
		cl.lost()
		return
	}
	cl.cn.nc.SetReadDeadline(time.Now().Add(cl.stepTimeout))
	for !cl.gone {
		if _, err := cl.next(); err != nil {
			cl.lost()
		}
	}
}

// next reads and handles one line. It returns an error only for a read
// deadline; a closed connection sets gone.
func (cl *soakClient) next() (*protocol.Message, error) {
	line, err := cl.cn.r.ReadLine()
	switch {
	case errors.Is(err, protocol.ErrLineTooLong):
		return nil, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, err
	case err != nil:
		cl.lost()
		return nil, nil
	}
	m, err := protocol.Parse(line)
	if err != nil {
		cl.st.violation("%s: unparsable line %q", cl.nick, lineText(line))
		return nil, nil
	}
	cl.handle(&m)
	return &m, nil
}

// lost ends the connection's memberships: to the others it quit.
func (cl *soakClient) lost() {
	if cl.gone {
		return
	}
	cl.gone = true
	for room := range cl.rooms {
		cl.leave(cl.id, room, "quit")
	}
}

func (cl *soakClient) handle(m *protocol.Message) {
	for _, t := range m.Tags {
		if t.Key == "batch" && cl.histBatch[t.Value] {
			return // history, not live
		}
	}
	src, srcOK := cl.idOf(sourceNick(m.Source))
	switch m.Command {
	case "PING":
		cl.cn.pong(m)
	case "ERROR":
		cl.lost()
	case "BATCH":
		if ref, ok := strings.CutPrefix(m.Param(0), "+"); ok && m.Param(1) == "chathistory" {
			if cl.histBatch == nil {
				cl.histBatch = map[string]bool{}
			}
			cl.histBatch[ref] = true
		} else if ref, ok := strings.CutPrefix(m.Param(0), "-"); ok {
			delete(cl.histBatch, ref)
		}
	case "JOIN":
		room := protocol.FoldRoom(m.Param(0))
		switch {
		case srcOK && src == cl.id:
			cl.rooms[room] = &soakRoom{name: m.Param(0), members: map[uint32]*soakMember{}}
			cl.st.joins.Add(1)
		case srcOK && cl.rooms[room] != nil:
			cl.rooms[room].members[src] = &soakMember{nick: sourceNick(m.Source), k0: cl.seq[room]}
		}
	case protocol.RPL_NAMREPLY:
		r := cl.rooms[protocol.FoldRoom(m.Param(2))]
		if r == nil || r.namesDone {
			return
		}
		for _, n := range strings.Fields(m.Param(3)) {
			nick := strings.TrimLeft(n, "~&@%+")
			id, ok := cl.idOf(nick)
			switch {
			case !ok:
			case id == cl.id:
				r.op = strings.Contains(n[:len(n)-len(nick)], "@")
			default:
				r.members[id] = &soakMember{nick: nick, k0: cl.seq[protocol.FoldRoom(r.name)]}
			}
		}
	case protocol.RPL_ENDOFNAMES:
		if r := cl.rooms[protocol.FoldRoom(m.Param(1))]; r != nil {
			r.namesDone = true
		}
	case "MODE":
		if r := cl.rooms[protocol.FoldRoom(m.Param(0))]; r != nil && protocol.FoldNick(m.Param(2)) == protocol.FoldNick(cl.nick) {
			switch m.Param(1) {
			case "+o":
				r.op = true
			case "-o":
				r.op = false
			}
		}
	case "PART":
		if srcOK {
			if src == cl.id {
				cl.st.parts.Add(1)
			}
			cl.leave(src, protocol.FoldRoom(m.Param(0)), "p:"+m.Param(1))
		}
	case "KICK":
		if srcOK && src == cl.id {
			cl.st.kicks.Add(1)
		}
		if id, ok := cl.idOf(m.Param(1)); ok {
			cl.leave(id, protocol.FoldRoom(m.Param(0)), "k:"+m.Param(2))
		}
	case "QUIT":
		if srcOK {
			for room := range cl.rooms {
				cl.leave(src, room, "quit")
			}
		}
	case "NICK":
		switch {
		case !srcOK:
		case src == cl.id:
			cl.nick = m.Param(0)
			cl.st.nicks.Add(1)
		default:
			for _, r := range cl.rooms {
				if mem := r.members[src]; mem != nil {
					mem.nick = m.Param(0)
				}
			}
		}
	case "REGISTER":
		if m.Param(0) == "SUCCESS" {
			cl.st.registered.Add(1)
		}
	case "PRIVMSG":
		if srcOK {
			cl.message(src, m)
		}
	}
}

// message checks one room message against the sender's sequence.
func (cl *soakClient) message(src uint32, m *protocol.Message) {
	f := strings.Fields(m.Param(1))
	if len(f) != 3 || f[0] != "soak" {
		return
	}
	id, err1 := strconv.ParseUint(f[1], 10, 32)
	seq64, err2 := strconv.ParseUint(f[2], 10, 32)
	if err1 != nil || err2 != nil || uint32(id) != src {
		cl.st.violation("%s: message %q from %s: the sender id does not match", cl.nick, m.Param(1), m.Source)
		return
	}
	seq := uint32(seq64)
	room := protocol.FoldRoom(m.Param(0))
	if src == cl.id {
		if seq != cl.seq[room]+1 {
			cl.st.violation("%s: own message #%d in %s echoed after #%d", cl.nick, seq, room, cl.seq[room])
		}
		cl.seq[room] = seq
		cl.st.messages.Add(1)
		return
	}
	cl.st.deliveries.Add(1)
	r := cl.rooms[room]
	if r == nil {
		cl.st.violation("%s: got #%d from %d in %s, which it is not in", cl.nick, seq, src, room)
		return
	}
	mem := r.members[src]
	switch {
	case mem == nil:
		cl.st.violation("%s: got #%d from %d in %s, which it was not told is there", cl.nick, seq, src, room)
		return
	case mem.seen && seq != mem.last+1:
		cl.st.violation("%s: from %d in %s got #%d right after #%d", cl.nick, src, room, seq, mem.last)
	case !mem.seen:
		mem.first = seq
	}
	mem.seen, mem.last = true, seq
}

// leave ends who's membership of room; token names the leave the same
// way on every observer's side.
func (cl *soakClient) leave(who uint32, room, token string) {
	r := cl.rooms[room]
	if r == nil {
		return
	}
	event := strconv.FormatUint(uint64(who), 10) + "/" + token
	if who == cl.id {
		for id, mem := range r.members {
			cl.halves(room, event, who, id, mem)
		}
		delete(cl.rooms, room)
		return
	}
	if mem := r.members[who]; mem != nil {
		cl.halves(room, event, who, who, mem)
		delete(r.members, who)
	}
}

// halves reports both halves of the pair (us, other) ending at event.
func (cl *soakClient) halves(room, event string, leaver, other uint32, mem *soakMember) {
	cl.st.senderHalf(pairKey{room, event, leaver, cl.id, other}, mem.k0, cl.seq[room])
	cl.st.receiverHalf(pairKey{room, event, leaver, other, cl.id}, mem.first, mem.last, mem.seen)
}

// pairKey names the end of the co-membership of sender s and receiver r
// in room: the event (leaver and PART/KICK reason, or quit).
type pairKey struct {
	room, event string
	leaver      uint32
	s, r        uint32
}

type pairHalves struct {
	haveS, haveR bool
	k0, k1       uint32 // from the sender: it sent (k0, k1] while r was there
	first, last  uint32 // from the receiver: the run of s's messages it got
	seen         bool
}

func (k pairKey) quit() bool { return strings.HasSuffix(k.event, "/quit") }

func (st *soakStats) senderHalf(k pairKey, k0, k1 uint32) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.half(k)
	p.haveS, p.k0, p.k1 = true, k0, k1
	st.match(k, p)
}

func (st *soakStats) receiverHalf(k pairKey, first, last uint32, seen bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.half(k)
	p.haveR, p.first, p.last, p.seen = true, first, last, seen
	st.match(k, p)
}

func (st *soakStats) half(k pairKey) *pairHalves {
	p := st.pending[k]
	if p == nil {
		p = &pairHalves{}
		st.pending[k] = p
	}
	return p
}

// match checks a pair once both halves are in. A receiver that quit may
// have missed the sender's last messages legitimately: the server tells
// the others about a QUIT after the rooms dropped the quitter, so the
// sender may see messages of its own before the QUIT that the quitter
// never could. Everything else is exact.
func (st *soakStats) match(k pairKey, p *pairHalves) {
	if !p.haveS || !p.haveR {
		return
	}
	delete(st.pending, k)
	st.checked.Add(1)
	sent := p.k1 > p.k0
	weak := k.quit() && k.leaver == k.r
	switch {
	case p.seen && p.last > p.k1:
		st.violationLocked("%s %s: %d got #%d from %d, which had sent up to #%d by then", k.room, k.event, k.r, p.last, k.s, p.k1)
	case weak:
	case sent && !p.seen:
		st.violationLocked("%s %s: %d got none of #%d-#%d from %d", k.room, k.event, k.r, p.k0+1, p.k1, k.s)
	case sent && (p.last != p.k1 || p.first > p.k0+1):
		st.violationLocked("%s %s: %d got #%d-#%d of #%d-#%d from %d", k.room, k.event, k.r, p.first, p.last, p.k0+1, p.k1, k.s)
	}
}

func (st *soakStats) violationLocked(format string, args ...any) {
	st.violations.Add(1)
	if len(st.samples) < 10 {
		st.samples = append(st.samples, fmt.Sprintf(format, args...))
	}
}

// unmatched settles the halves whose other half never came. The server
// announces a QUIT outside the rooms' order, so two members that left
// about together may each have seen its own leave first; a pair one of
// whose members quit is then unverifiable rather than wrong.
func (st *soakStats) unmatched() (unverified int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	type pair struct {
		room string
		a, b uint32
	}
	quitPairs := map[pair]bool{}
	for k := range st.pending {
		if k.quit() {
			quitPairs[pair{k.room, min(k.s, k.r), max(k.s, k.r)}] = true
		}
	}
	for k, p := range st.pending {
		if k.quit() || quitPairs[pair{k.room, min(k.s, k.r), max(k.s, k.r)}] || !(p.haveS && p.k1 > p.k0 || p.haveR && p.seen) {
			unverified++
			continue
		}
		st.violationLocked("%s %s: only the %s of the pair %d->%d reported", k.room, k.event, map[bool]string{true: "sender", false: "receiver"}[p.haveS], k.s, k.r)
	}
	return unverified
}
