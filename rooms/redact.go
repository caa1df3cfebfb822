package rooms

import (
	"errors"
	"fmt"
)

// Errors Room.Redact answers with, besides ErrNotMember and ErrNoSuchRoom.
var (
	// ErrUnknownMessage: the room's history has no message with that id
	// (never had, or it is gone).
	ErrUnknownMessage = errors.New("rooms: no such message in the room's history")
	// ErrRedactForbidden: the message is someone else's and the member is
	// not a room operator, or the id names an event that is not a message.
	ErrRedactForbidden = errors.New("rooms: not allowed to redact that message")
)

// FeatRedaction says the client takes REDACT lines (IRCv3
// draft/message-redaction); without it a redaction reaches it not at all.
// It changes no rendering, so it lies outside renderBits, and high enough
// that new rendering features can still take the bits after FeatChathistory.
const FeatRedaction Features = 1 << 15

// Redactable reports whether e is the kind of event REDACT may remove:
// the spec allows PRIVMSG, NOTICE and TAGMSG (a reaction), not a join or
// a topic change, which are the room's record rather than anyone's words.
func (e *Event) Redactable() bool {
	return e.IsMessage() || e.Command == "TAGMSG"
}

type (
	// redactFindReq asks the actor whether c is a member, whether it is an
	// operator, and for the event id if the ring still has it.
	redactFindReq struct {
		c    Client
		id   string
		done chan redactFound
	}
	redactFound struct {
		event   *Event
		op      bool
		source  string // c's nick!user@host and account, for the REDACT line
		account string
		err     error
	}
	// redactDropReq removes id from the ring and tells the members who
	// negotiated redaction. It checks nothing: the decision was made on
	// what redactFindReq saw, and the log has already forgotten the event,
	// so the ring must too even if c has left since.
	redactDropReq struct {
		c       Client
		id      string
		source  string
		account string
		reason  string
		done    chan struct{}
	}
)

// aroundID selects the event id itself, whatever its kind.
func aroundID(id string) Query {
	return Query{Sel: SelAround, A: Bound{ID: id}, Limit: 1, Events: true}
}

func (redactFindReq) kind() string { return "REDACT" }
func (redactDropReq) kind() string { return "REDACT" }

func (q redactFindReq) run(r *Room) {
	m := r.memberOf(q.c)
	if m == nil {
		q.done <- redactFound{err: ErrNotMember}
		return
	}
	a := redactFound{op: m.role&roleOp != 0, source: m.prefix, account: m.Account}
	events, _ := r.history.Query(aroundID(q.id))
	for _, e := range events {
		if e.ID == q.id {
			a.event = e
		}
	}
	q.done <- a
}

func (q redactDropReq) run(r *Room) {
	r.history.Redact(q.id)
	params := []string{r.name, q.id}
	if q.reason != "" {
		params = append(params, q.reason)
	}
	e := &Event{At: r.opts.now(), ID: r.opts.IDs.Next(), Source: q.source, Account: q.account, Command: "REDACT", Params: params}
	rs := NewRenderings(e)
	for _, o := range r.members {
		for i := range 1 + len(o.devices) {
			c := o.device(i)
			f := c.Features()
			switch {
			case f&FeatRedaction == 0:
			case c == q.c:
				c.Reply(rs.For(f))
			default:
				c.Queue(rs.For(f))
				r.dirty = true
			}
		}
	}
}

func (q redactFindReq) fail(*Room)   { trySend(q.done, redactFound{err: ErrInternal}) }
func (redactDropReq) fail(*Room)     {}
func (redactFindReq) finish(*Room)   {}
func (q redactDropReq) finish(*Room) { close(q.done) }

// Redact removes the message id from the room's history, in memory and in
// the log, and relays `REDACT <room> <id> [:reason]` from c to the members
// who negotiated redaction (c included). c must be a member; it may redact
// a message that owns reports as its own, and an operator any message.
// It returns the removed event.
//
// The actor never waits on the disk: it looks in the ring, and only on a
// miss does this goroutine look in the log; then the log forgets the
// event before the ring does and anyone is told, so that a failing store
// leaves everything as it was and the caller can say so.
func (r *Room) Redact(c Client, id, reason string, owns func(*Event) bool) (*Event, error) {
	found := make(chan redactFound, 1)
	if !r.send(redactFindReq{c: c, id: id, done: found}) {
		return nil, ErrNoSuchRoom
	}
	a := await(r, found, redactFound{err: ErrNoSuchRoom})
	if a.err != nil {
		return nil, a.err
	}
	e := a.event
	log := r.opts.Log
	if e == nil && log != nil {
		events, err := log.Query(r.folded, aroundID(id))
		if err != nil {
			return nil, fmt.Errorf("rooms: redact in %s: %w", r.name, err)
		}
		for _, x := range events {
			if x.ID == id {
				e = x
			}
		}
	}
	if e == nil {
		return nil, ErrUnknownMessage
	}
	mine := owns != nil && owns(e)
	if !e.Redactable() || !mine && !a.op {
		return nil, ErrRedactForbidden
	}
	if log != nil {
		if _, err := log.Redact(r.folded, id); err != nil {
			return nil, fmt.Errorf("rooms: redact in %s: %w", r.name, err)
		}
	}
	// Waiting for the actor orders c's later replies after its echo. A
	// room dropped meanwhile had no members left to tell, and took its
	// ring with it.
	dropped := make(chan struct{})
	if r.send(redactDropReq{c: c, id: id, source: a.source, account: a.account, reason: reason, done: dropped}) {
		select {
		case <-dropped:
		case <-r.done:
		}
	}
	return e, nil
}
