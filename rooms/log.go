package rooms

import (
	"errors"
	"time"
)

// Log is where history lasts beyond a room's memory: the seam between
// rooms and a store (an embedded file, memory, a JetStream stream).
//
// A target names one sequence of events: a room's folded name ("#lobby"),
// or a private conversation (see ConversationTarget). Within a target the
// log keeps events in the order they were appended, which is the order
// every member saw; a store with per-subject sequence numbers keeps that
// order by itself.
//
// Implementations must be safe for concurrent use. Append must never wait
// on disk or network: rooms call it from their actor while delivering.
// Query must see every event appended before it was called (a store that
// commits in groups waits for, or reads, its pending group).
type Log interface {
	// Append records e as the newest event of target. e is immutable and
	// may be kept as is.
	Append(target string, e *Event)
	// Sync returns once every event appended before the call is durable
	// (history.sync: always, and shutdown).
	Sync() error
	// Query answers a CHATHISTORY selector over target's events, oldest
	// first. An unknown msgid selects nothing. ErrHistoryUnavailable
	// means the store cannot answer now.
	Query(target string, q Query) ([]*Event, error)
	// Redact removes the event with msgid id from target, everywhere it is
	// kept, and returns it; nil when target has no such event.
	Redact(target, id string) (*Event, error)
	// Delete forgets every event of target.
	Delete(target string) error
	// Targets lists the targets whose name starts with prefix, with the
	// time of their newest event.
	Targets(prefix string) ([]TargetInfo, error)
}

// TargetInfo is a target that has events, for Log.Targets.
type TargetInfo struct {
	Name string
	Last time.Time
}

// ErrHistoryUnavailable reports a store that cannot answer (a failed disk,
// a corrupt file): the server goes on from memory, and history beyond it
// fails instead of looking empty.
var ErrHistoryUnavailable = errors.New("rooms: history is unavailable")

// Selector is a CHATHISTORY subcommand.
type Selector uint8

const (
	SelLatest  Selector = iota // the newest events, after A unless A is unbounded
	SelBefore                  // just before A
	SelAfter                   // just after A
	SelAround                  // centred on A
	SelBetween                 // strictly between A and B
)

// Query is one CHATHISTORY request over a target.
type Query struct {
	Sel   Selector
	A, B  Bound
	Limit int
	// Events includes joins, parts, quits, nick, topic and mode changes
	// and stored TAGMSGs (IRCv3 draft/event-playback); without it only
	// PRIVMSG and NOTICE count and are returned.
	Events bool
}

// Bound is one end of a history query: a message id, a time, or neither
// ("*", meaning unbounded).
type Bound struct {
	ID string
	At time.Time
}

// Unbounded reports whether b is "*".
func (b Bound) Unbounded() bool { return b.ID == "" && b.At.IsZero() }

// IsMessage reports whether e is a PRIVMSG or a NOTICE: what every client
// gets in history, with or without event playback.
func (e *Event) IsMessage() bool { return e.Command == "PRIVMSG" || e.Command == "NOTICE" }

// Matches reports whether q selects events like e.
func (q Query) Matches(e *Event) bool { return q.Events || e.IsMessage() }

// ConversationTarget names the private conversation between two people
// by their identities (an account or a connection, never a nick), the
// same whichever of them asks.
func ConversationTarget(x, y string) string {
	if x > y {
		x, y = y, x
	}
	return ConversationPrefix + x + " " + y
}

// ConversationPrefix starts every private conversation's target.
const ConversationPrefix = "~"

// storedTagmsgTags are the client tags that make a TAGMSG worth keeping in
// history: reactions, and a client's explicit +draft/persist (as Ergo
// does); typing notifications and the like are not.
var storedTagmsgTags = map[string]bool{"+draft/react": true, "+react": true, "+draft/persist": true}

// KeepsTagmsg reports whether a TAGMSG with these tags belongs in history.
func (e *Event) KeepsTagmsg() bool {
	for _, t := range e.Tags {
		if storedTagmsgTags[t.Key] {
			return true
		}
	}
	return false
}
