package rooms

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/protocol"
)

// Features are what a client negotiated that changes the bytes it must
// receive. The daemon maps IRCv3 capabilities onto them; rooms render each
// event once per distinct combination present among the recipients.
type Features uint16

const (
	FeatTime            Features = 1 << iota // server-time: a time tag on every event
	FeatTags                                 // message-tags: msgid and client-only tags, TAGMSG
	FeatAccountTag                           // account-tag: the sender's account
	FeatExtendedJoin                         // extended-join: JOIN carries account and realname
	FeatBatch                                // batch: history replay inside a chathistory batch
	FeatEcho                                 // echo-message: senders get their own messages
	FeatMultiPrefix                          // multi-prefix: every role prefix in NAMES and WHO
	FeatUserhostInNames                      // userhost-in-names: nick!user@host in NAMES
	FeatInviteNotify                         // invite-notify: see invitations to rooms one is in
	FeatChathistory                          // draft/chathistory: fetches history itself, so a join replays none
	FeatNoImplicitNames                      // draft/no-implicit-names: no NAMES after its own JOIN
	FeatMultiline                            // draft/multiline (with batch): a multiline message as one batch
)

// renderBits are the features that change an event's bytes; fan-out keeps
// one encoding per combination of them (at most 16 per event).
const renderBits = FeatTime | FeatTags | FeatAccountTag | FeatExtendedJoin

// TimeFormat is the server-time tag format (IRCv3: ISO 8601, UTC, ms).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Now returns the current time as events carry it: at the millisecond
// precision of the server-time tag, so that a client's timestamp
// reference matches the event it names.
func Now() time.Time { return time.Now().Truncate(time.Millisecond) }

// Event is one thing a room (or a private conversation) relays: a message,
// a join, a topic change. It is immutable once built and may be shared.
type Event struct {
	At      time.Time
	ID      string // msgid; "" for events without one
	Source  string // nick!user@host
	Account string // the source's account, for account-tag; "" if anonymous
	// Origin is who sent it, as private history names people: "a:" and
	// the folded account, or "c:" and a connection id unique across
	// restarts. Never sent to clients; it decides who may redact.
	Origin    string
	Command   string
	Params    []string
	ExtParams []string       // the extended-join form, when it differs
	Tags      []protocol.Tag // client-only tags (+...), relayed to message-tags clients
	// Lines is set on a draft/multiline message: its lines as sent, each
	// a substring of Params[1], which then holds the whole text (the
	// lines joined by "\n", a Concat line joined to the one before by
	// nothing) for whatever reads the text as one. One event, one msgid,
	// one history entry; Render sends it as a batch or as plain lines.
	Lines []Line `json:",omitempty"`
}

// Line is one line of a multiline message.
type Line struct {
	Text string
	// Concat: the line continues the one before it (a long line the
	// client split), draft/multiline-concat.
	Concat bool `json:",omitempty"`
}

// Multiline tag and batch names (IRCv3 draft/multiline).
const (
	MultilineBatch  = "draft/multiline"
	MultilineConcat = "draft/multiline-concat"
)

// JoinLines returns the text of a multiline message made of lines: each
// line on its own, a Concat line run on from the one before. The lines it
// returns are substrings of the text, so an event keeps one copy.
func JoinLines(lines []Line) (string, []Line) {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 && !l.Concat {
			b.WriteByte('\n')
		}
		b.WriteString(l.Text)
	}
	text := b.String()
	out := make([]Line, len(lines))
	off := 0
	for i, l := range lines {
		if i > 0 && !l.Concat {
			off++
		}
		out[i] = Line{Text: text[off : off+len(l.Text)], Concat: l.Concat}
		off += len(l.Text)
	}
	return text, out
}

// Render encodes e as a client with features f must receive it. extra tags
// (a label, a batch reference) come first.
func (e *Event) Render(f Features, extra ...protocol.Tag) []byte {
	var tagBuf [12]protocol.Tag
	tags := append(tagBuf[:0], extra...)
	if f&FeatTime != 0 {
		tags = append(tags, protocol.Tag{Key: "time", Value: e.At.UTC().Format(TimeFormat)})
	}
	if f&FeatTags != 0 && e.ID != "" {
		tags = append(tags, protocol.Tag{Key: "msgid", Value: e.ID})
	}
	if f&FeatAccountTag != 0 && e.Account != "" {
		tags = append(tags, protocol.Tag{Key: "account", Value: e.Account})
	}
	if f&FeatTags != 0 {
		tags = append(tags, e.Tags...)
	}
	if e.Lines != nil && len(e.Params) == 2 {
		return e.renderLines(f, tags, len(extra))
	}
	params := e.Params
	if f&FeatExtendedJoin != 0 && e.ExtParams != nil {
		params = e.ExtParams
	}
	m := protocol.Message{Tags: tags, Source: e.Source, Command: e.Command, Params: params}
	if len(tags) == 0 {
		m.Tags = nil
	}
	return m.AppendTo(nil)
}

// renderLines encodes a multiline message: one draft/multiline batch for
// a client that takes it, the batch start carrying tags (the first nextra
// of them the caller's: a label, an enclosing batch); for any other, one
// line per line of text, blank ones left out, every line with the time
// and the caller's and client tags and only the first with the msgid, as
// the spec has it. The lines are returned as one slice: the writer sends
// them together, and a labeled reply puts its label on the first.
func (e *Event) renderLines(f Features, tags []protocol.Tag, nextra int) []byte {
	target := e.Params[0]
	var out []byte
	if f&FeatMultiline != 0 {
		ref := e.ID
		start := protocol.Message{Tags: tags, Source: e.Source, Command: "BATCH", Params: []string{"+" + ref, MultilineBatch, target}}
		out = start.AppendTo(nil)
		batch := protocol.Tag{Key: "batch", Value: ref}
		for _, l := range e.Lines {
			lt := []protocol.Tag{batch}
			if l.Concat {
				lt = append(lt, protocol.Tag{Key: MultilineConcat})
			}
			out = (&protocol.Message{Tags: lt, Source: e.Source, Command: e.Command, Params: []string{target, l.Text}}).AppendTo(out)
		}
		return (&protocol.Message{Source: e.Source, Command: "BATCH", Params: []string{"-" + ref}}).AppendTo(out)
	}
	first := true
	for _, l := range e.Lines {
		if l.Text == "" {
			continue
		}
		lt := tags
		if !first {
			lt = make([]protocol.Tag, 0, len(tags))
			for i, t := range tags {
				if i < nextra || t.Key != "msgid" {
					lt = append(lt, t)
				}
			}
		}
		first = false
		m := protocol.Message{Tags: lt, Source: e.Source, Command: e.Command, Params: []string{target, l.Text}}
		if len(lt) == 0 {
			m.Tags = nil
		}
		out = m.AppendTo(out)
	}
	return out
}

// Renderings caches an event's encodings by feature combination, so a
// fan-out encodes each distinct rendering once and shares the bytes.
// The zero value is ready; not safe for concurrent use.
type Renderings struct {
	event *Event
	lines [renderBits + 1][]byte
	// multi holds a multiline message's batch renderings, made only for
	// such a message: it keeps every other fan-out's cache small.
	multi *[renderBits + 1][]byte
}

// NewRenderings starts a cache for e.
func NewRenderings(e *Event) Renderings { return Renderings{event: e} }

// For returns e's bytes for a client with features f.
func (r *Renderings) For(f Features) []byte {
	k := f & renderBits
	if f&FeatMultiline != 0 && r.event.Lines != nil {
		if r.multi == nil {
			r.multi = new([renderBits + 1][]byte)
		}
		if r.multi[k] == nil {
			r.multi[k] = r.event.Render(k | FeatMultiline)
		}
		return r.multi[k]
	}
	if r.lines[k] == nil {
		r.lines[k] = r.event.Render(k)
	}
	return r.lines[k]
}

// IDs makes message ids: a random prefix per process and a counter, so ids
// are unique across restarts without coordination. Safe for concurrent use.
type IDs struct {
	prefix string
	n      atomic.Uint64
}

// NewIDs returns a generator with a fresh random prefix.
func NewIDs() *IDs {
	var b [10]byte
	rand.Read(b[:])
	return &IDs{prefix: base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])}
}

// Next returns a new id.
func (g *IDs) Next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 36)
}

// Prefix returns the random part of every id this generator makes: it
// differs on every start, so it tells this process's connections from an
// earlier one's.
func (g *IDs) Prefix() string { return g.prefix }
