package rooms

import "github.com/livechat/livechat/protocol"

// request is one typed message to a room's actor. run does the work; if it
// panics, fail answers the caller instead; finish always runs last.
type request interface {
	kind() string
	run(r *Room)
	fail(r *Room)
	finish(r *Room)
}

// MemberUpdate changes what a room knows about a member; nil fields stay.
type MemberUpdate struct {
	Nick     *string
	Event    *Event // the NICK event to keep in history with a new Nick
	Origin   string // the member's new identity for history, with Account
	Account  *string
	Realname *string
	Host     *string // the displayed host (CHGHOST); not kept in history
}

// Speech is what a member says: PRIVMSG, NOTICE or TAGMSG (no text).
type Speech struct {
	Command string
	Text    string
	Tags    []protocol.Tag // client-only tags to relay
	From    Member         // the speaker, for rooms that allow outside messages (-n)
	Lines   []Line         // a draft/multiline message's lines; Text is then their JoinLines
	// Status is '@' (operators) or '+' (voiced and operators) for a
	// STATUSMSG ("PRIVMSG @#room"): only members with that role get it,
	// and it stays out of history. 0 for everyone.
	Status byte
}

type (
	joinReq struct {
		m      Member
		key    string
		silent bool // a member coming back after its room's home moved: no checks, nobody told
		role   role // the role a silent joiner had
		done   chan error
	}
	partReq struct {
		c      Client
		reason string
		done   chan error
	}
	leaveReq struct {
		c    Client
		quit *Event
		done chan leaveAnswer
	}
	leaveAnswer struct {
		peers []Client
		muted bool
	}
	updateReq struct {
		c    Client
		u    MemberUpdate
		done chan []Client
	}
	sayReq struct {
		c    Client
		s    Speech
		done chan struct{} // nil: the caller does not wait
	}
	modeReq struct {
		query
		oper    bool // the requester is a server operator
		changes []ModeChange
	}
	kickReq struct {
		query
		target, reason string
	}
	inviteReq struct {
		query
		target     Client
		targetNick string
	}
	claimReq struct {
		query
		account string
		drop    bool
	}
	nickCheckReq struct {
		c    Client
		done chan bool
	}
	prefixReq struct {
		c    Client
		all  bool
		done chan string
	}
	// query is the part of every request answered with lines to c; done
	// is closed once they are queued, so c's later replies come after them.
	query struct {
		c    Client
		nick string
		done chan struct{}
	}
	topicReq struct {
		query
		text *string
	}
	namesReq struct{ query }
	whoReq   struct {
		c    Client
		done chan []WhoEntry
	}
	historyReq struct {
		c    Client
		q    Query
		done chan historyAnswer
	}
	historyAnswer struct {
		events  []*Event
		certain bool // the ring's answer is the whole answer
		err     error
	}
)

func (joinReq) kind() string      { return "JOIN" }
func (partReq) kind() string      { return "PART" }
func (leaveReq) kind() string     { return "QUIT" }
func (updateReq) kind() string    { return "UPDATE" }
func (sayReq) kind() string       { return "PRIVMSG" }
func (topicReq) kind() string     { return "TOPIC" }
func (namesReq) kind() string     { return "NAMES" }
func (whoReq) kind() string       { return "WHO" }
func (historyReq) kind() string   { return "CHATHISTORY" }
func (modeReq) kind() string      { return "MODE" }
func (kickReq) kind() string      { return "KICK" }
func (inviteReq) kind() string    { return "INVITE" }
func (claimReq) kind() string     { return "ROOM" }
func (nickCheckReq) kind() string { return "NICKCHECK" }
func (prefixReq) kind() string    { return "PREFIX" }
func (q prefixReq) run(r *Room) {
	prefix := ""
	if m := r.memberOf(q.c); m != nil {
		prefix = m.role.prefixes(q.all)
	}
	q.done <- prefix
}
func (q prefixReq) fail(*Room) { trySend(q.done, "") }
func (prefixReq) finish(*Room) {}

func (q modeReq) run(r *Room)   { r.doMode(q.c, q.nick, q.oper, q.changes) }
func (q kickReq) run(r *Room)   { r.doKick(q.c, q.nick, q.target, q.reason) }
func (q inviteReq) run(r *Room) { r.doInvite(q.c, q.nick, q.target, q.targetNick) }
func (q claimReq) run(r *Room) {
	if q.drop {
		r.doDrop(q.c, q.nick, q.account)
	} else {
		r.doClaim(q.c, q.nick, q.account)
	}
}
func (q nickCheckReq) run(r *Room) { q.done <- r.blocksNickChange(q.c) }
func (q nickCheckReq) fail(*Room)  { trySend(q.done, false) }
func (nickCheckReq) finish(*Room)  {}

func (q joinReq) run(r *Room) {
	if q.silent {
		q.done <- r.doRejoin(q.m, q.role)
		return
	}
	q.done <- r.doJoin(q.m, q.key)
}
func (q partReq) run(r *Room)    { q.done <- r.doPart(q.c, q.reason) }
func (q leaveReq) run(r *Room)   { q.done <- r.doLeave(q.c, q.quit) }
func (q updateReq) run(r *Room)  { q.done <- r.doUpdate(q.c, q.u) }
func (q sayReq) run(r *Room)     { r.doSay(q.c, q.s) }
func (q topicReq) run(r *Room)   { r.doTopic(q.c, q.nick, q.text) }
func (q namesReq) run(r *Room)   { r.doNames(q.c, q.nick) }
func (q whoReq) run(r *Room)     { q.done <- r.doWho(q.c) }
func (q whoReq) fail(*Room)      { trySend(q.done, nil) }
func (whoReq) finish(*Room)      {}
func (q historyReq) run(r *Room) { q.done <- r.doHistory(q.c, q.q) }

// Answers after a panic; a channel that already holds the answer is left.
func (q joinReq) fail(*Room)    { trySend(q.done, ErrInternal) }
func (q partReq) fail(*Room)    { trySend(q.done, ErrInternal) }
func (q leaveReq) fail(*Room)   { trySend(q.done, leaveAnswer{}) }
func (q updateReq) fail(*Room)  { trySend(q.done, nil) }
func (q historyReq) fail(*Room) { trySend(q.done, historyAnswer{err: ErrInternal}) }
func (q sayReq) fail(r *Room) {
	r.numeric(q.c, r.nickOf(q.c), protocol.ERR_UNKNOWNERROR, q.s.Command, "Internal error; the message was not delivered")
}
func (q query) fail(r *Room) {
	r.numeric(q.c, q.nick, protocol.ERR_UNKNOWNERROR, "*", "Internal error")
}

func (joinReq) finish(r *Room) { r.pending.Add(-1) }
func (partReq) finish(*Room)   {}
func (leaveReq) finish(*Room)  {}
func (updateReq) finish(*Room) {}
func (q sayReq) finish(*Room) {
	if q.done != nil {
		close(q.done)
	}
}
func (q query) finish(*Room)    { close(q.done) }
func (historyReq) finish(*Room) {}

func trySend[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// send delivers req to the actor, or reports that the room is gone.
func (r *Room) send(req request) bool {
	if r.remote != nil {
		return r.reg.forward(r, req)
	}
	if r.dormant() {
		return false
	}
	select {
	case r.mailbox <- req:
		return true
	case <-r.done:
		return false
	}
}

// await waits for the actor's answer. A room may leave the registry with a
// request still in its mailbox; then the answer is gone. The actor answers
// before it can be dropped, so an answer that exists is always seen.
func await[T any](r *Room, answer chan T, gone T) T {
	select {
	case v := <-answer:
		return v
	case <-r.done:
		select {
		case v := <-answer:
			return v
		default:
			return gone
		}
	}
}

func (r *Room) join(m Member, key string) error {
	done := make(chan error, 1)
	if !r.send(joinReq{m: m, key: key, done: done}) {
		return ErrNoSuchRoom
	}
	return await(r, done, ErrNoSuchRoom)
}

// Part removes c from the room; every member, c included, sees the PART,
// without the reason if c may not speak in the room.
func (r *Room) Part(c Client, reason string) error {
	done := make(chan error, 1)
	if !r.send(partReq{c: c, reason: reason, done: done}) {
		return ErrNoSuchRoom
	}
	return await(r, done, ErrNoSuchRoom)
}

// Leave removes c without telling anyone and returns the remaining members,
// so that the caller can send one QUIT to each peer across all its rooms,
// and keeps quit (if not nil) in the room's history,
// and whether c was muted here (see Part): then the QUIT should carry no
// words of c's own.
func (r *Room) Leave(c Client, quit *Event) (peers []Client, muted bool) {
	done := make(chan leaveAnswer, 1)
	if !r.send(leaveReq{c: c, quit: quit, done: done}) {
		return nil, false
	}
	a := await(r, done, leaveAnswer{})
	return a.peers, a.muted
}

// Update changes what the room knows about member c (nick, account) and
// returns the other members, so that the caller can tell each peer once
// across all its rooms. An empty update just lists the peers.
func (r *Room) Update(c Client, u MemberUpdate) []Client {
	done := make(chan []Client, 1)
	if !r.send(updateReq{c: c, u: u, done: done}) {
		return nil
	}
	return await(r, done, nil)
}

// Say relays what member c says to the other members (and back to c if it
// asked for echoes) and keeps messages in history. With wait it returns
// once everything is queued, so replies to c are in order; without, it
// returns at once. Errors (c is not a member) go to c as numerics.
func (r *Room) Say(c Client, s Speech, wait bool) error {
	req := sayReq{c: c, s: s}
	if wait {
		req.done = make(chan struct{})
	}
	if !r.send(req) {
		return ErrNoSuchRoom
	}
	if wait {
		select {
		case <-req.done:
		case <-r.done:
		}
	}
	return nil
}

// Topic sends c the topic (text == nil) or sets it (c must be a member);
// replies go to c, the change to every member. It returns once c's
// replies are queued.
func (r *Room) Topic(c Client, nick string, text *string) error {
	q := newQuery(c, nick)
	return r.ask(topicReq{query: q, text: text}, q)
}

// Names queues the member list (353/366) to c.
func (r *Room) Names(c Client, nick string) error {
	q := newQuery(c, nick)
	return r.ask(namesReq{q}, q)
}

// Who lists the members for WHO, as c should see their prefixes.
func (r *Room) Who(c Client) ([]WhoEntry, error) {
	done := make(chan []WhoEntry, 1)
	if !r.send(whoReq{c: c, done: done}) {
		return nil, ErrNoSuchRoom
	}
	return await(r, done, nil), nil
}

// History answers a CHATHISTORY query for member c (ErrNotMember if c is
// not in the room): from the ring when it holds the whole answer, from the
// log otherwise. The log is read on the caller's goroutine, never the
// room's, so a cold query does not delay delivery.
func (r *Room) History(c Client, q Query) ([]*Event, error) {
	done := make(chan historyAnswer, 1)
	if !r.send(historyReq{c: c, q: q, done: done}) {
		return nil, ErrNoSuchRoom
	}
	a := await(r, done, historyAnswer{err: ErrNoSuchRoom})
	if a.err != nil || a.certain || r.opts.Log == nil {
		return a.events, a.err
	}
	return r.opts.Log.Query(r.folded, q)
}

// Mode shows the room's modes (no changes) or applies changes an
// operator asked for; replies go to c, the applied changes to everyone.
// oper says c is a server operator: the bans and exceptions it sets match
// real addresses too (see ListEntry.ByOper).
func (r *Room) Mode(c Client, nick string, oper bool, changes []ModeChange) error {
	q := newQuery(c, nick)
	return r.ask(modeReq{query: q, oper: oper, changes: changes}, q)
}

// Kick removes the member called target, if c is an operator.
func (r *Room) Kick(c Client, nick, target, reason string) error {
	q := newQuery(c, nick)
	return r.ask(kickReq{query: q, target: target, reason: reason}, q)
}

// Invite lets target join (past +i), sending it the INVITE.
func (r *Room) Invite(c Client, nick string, target Client, targetNick string) error {
	q := newQuery(c, nick)
	return r.ask(inviteReq{query: q, target: target, targetNick: targetNick}, q)
}

// Claim makes account the room's owner (c must be an operator), so the
// room's topic, modes and bans persist and the owner is operator on join.
// With drop it releases the room instead (c must be logged in as owner).
func (r *Room) Claim(c Client, nick, account string, drop bool) error {
	q := newQuery(c, nick)
	return r.ask(claimReq{query: q, account: account, drop: drop}, q)
}

// BlocksNickChange reports whether c is banned in the room and so may not
// change nick (a rename would shed a nick ban).
func (r *Room) BlocksNickChange(c Client) bool {
	done := make(chan bool, 1)
	if !r.send(nickCheckReq{c: c, done: done}) {
		return false
	}
	return await(r, done, false)
}

// PrefixOf returns c's role prefix in the room ("@", "+", "@+" with all,
// or ""), for WHOIS.
func (r *Room) PrefixOf(c Client, all bool) string {
	done := make(chan string, 1)
	if !r.send(prefixReq{c: c, all: all, done: done}) {
		return ""
	}
	return await(r, done, "")
}

func newQuery(c Client, nick string) query {
	return query{c: c, nick: nick, done: make(chan struct{})}
}

// ask sends a query and waits until the room has queued its replies.
func (r *Room) ask(req request, q query) error {
	if !r.send(req) {
		return ErrNoSuchRoom
	}
	select {
	case <-q.done:
		return nil
	case <-r.done:
		select {
		case <-q.done:
			return nil
		default:
			return ErrNoSuchRoom
		}
	}
}
