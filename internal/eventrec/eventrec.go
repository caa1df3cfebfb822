// Package eventrec is the binary record of a history event (rooms.Event)
// that the history stores keep: the embedded file (daemon/historystore)
// and the JetStream stream (daemon/jshistory) write the same bytes, so an
// export or a move between them needs no second format.
package eventrec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// An event record starts with a fixed header, so that the hot paths (the
// time of an event for a binary search, whether it is a message for the
// Events filter, its msgid for the index) read it without decoding:
//
//	[0]     record format (Version)
//	[1:9]   At, Unix milliseconds, big-endian
//	[9]     command code (cmdCodes), 0 for a command spelled out below
//	then uvarint-prefixed strings: [command if code 0], ID, Source,
//	Account, Origin; uvarint count and the Params; uvarint count+1 and
//	the ExtParams (0 for nil: Render tells nil from empty); uvarint count
//	and each tag's key and value.
//
// A later format gets its own number and decoder: records of both kinds
// may then live side by side, so a format change needs no rewrite.
//
// Format 2 (VersionLines) is format 1 followed by a draft/multiline
// message's lines: a uvarint count, then per line uvarint(len<<1|concat),
// the text being in the message's text parameter. Only such messages are
// written in it, so everything else stays readable by an older livechatd.
const (
	Version      = 1
	VersionLines = 2
	HeaderSize   = 10
)

// cmdCodes are the commands history keeps, one byte each on disk. Append
// only: the numbers are in every file.
var cmdCodes = [...]string{1: "PRIVMSG", 2: "NOTICE", 3: "TAGMSG", 4: "JOIN", 5: "PART", 6: "QUIT", 7: "KICK", 8: "NICK", 9: "TOPIC", 10: "MODE"}

const codePrivmsg, codeNotice = 1, 2

var ErrCorrupt = errors.New("eventrec: corrupt event record")

func cmdCode(cmd string) byte {
	for i, c := range cmdCodes {
		if i > 0 && c == cmd {
			return byte(i)
		}
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Append appends e's record to b.
func Append(b []byte, e *rooms.Event) []byte {
	lines := e.Lines != nil && len(e.Params) == 2
	if lines {
		b = append(b, VersionLines)
	} else {
		b = append(b, Version)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixMilli()))
	code := cmdCode(e.Command)
	b = append(b, code)
	if code == 0 {
		b = appendString(b, e.Command)
	}
	b = appendString(b, e.ID)
	b = appendString(b, e.Source)
	b = appendString(b, e.Account)
	b = appendString(b, e.Origin)
	b = binary.AppendUvarint(b, uint64(len(e.Params)))
	for _, p := range e.Params {
		b = appendString(b, p)
	}
	if e.ExtParams == nil {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(e.ExtParams))+1)
		for _, p := range e.ExtParams {
			b = appendString(b, p)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		b = appendString(b, t.Key)
		b = appendString(b, t.Value)
	}
	if lines {
		b = binary.AppendUvarint(b, uint64(len(e.Lines)))
		for _, l := range e.Lines {
			n := uint64(len(l.Text)) << 1
			if l.Concat {
				n |= 1
			}
			b = binary.AppendUvarint(b, n)
		}
	}
	return b
}

// Valid reports whether v has a header this version reads.
func Valid(v []byte) bool {
	return len(v) >= HeaderSize && (v[0] == Version || v[0] == VersionLines)
}

// At returns a record's time in Unix milliseconds.
func At(v []byte) int64 { return int64(binary.BigEndian.Uint64(v[1:9])) }

// IsMessage reports whether a record is a PRIVMSG or a NOTICE.
func IsMessage(v []byte) bool { return v[9] == codePrivmsg || v[9] == codeNotice }

// reader walks a record's variable part; its first error sticks.
type recReader struct {
	b   []byte
	s   string // the same bytes as one string: fields are slices of it
	off int
	err error
}

func (r *recReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.off += k
	return n
}

// bytes returns the next string field without copying.
func (r *recReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)-r.off) {
		r.err = ErrCorrupt
		return nil
	}
	f := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return f
}

// str returns the next string field as a slice of r.s.
func (r *recReader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)-r.off) {
		r.err = ErrCorrupt
		return ""
	}
	f := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return f
}

// count reads a list length, refusing one the record cannot hold (each
// entry takes at least a byte), so a corrupt count cannot allocate much.
func (r *recReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.off) {
		r.err = ErrCorrupt
		return 0
	}
	return int(n)
}

// Decode decodes a record. Its strings share one allocation.
func Decode(v []byte) (*rooms.Event, error) {
	if !Valid(v) {
		if len(v) > 0 && v[0] > VersionLines {
			return nil, fmt.Errorf("eventrec: event record format %d is newer than this livechatd", v[0])
		}
		return nil, ErrCorrupt
	}
	body := v[HeaderSize:]
	r := recReader{b: body, s: string(body)}
	e := &rooms.Event{At: time.UnixMilli(At(v))}
	switch code := v[9]; {
	case code == 0:
		e.Command = r.str()
	case int(code) < len(cmdCodes):
		e.Command = cmdCodes[code]
	default:
		return nil, ErrCorrupt
	}
	e.ID, e.Source, e.Account, e.Origin = r.str(), r.str(), r.str(), r.str()
	if np := r.count(); np > 0 {
		e.Params = make([]string, np)
		for i := range e.Params {
			e.Params[i] = r.str()
		}
	}
	if ne := r.count(); ne > 0 {
		e.ExtParams = make([]string, ne-1)
		for i := range e.ExtParams {
			e.ExtParams[i] = r.str()
		}
	}
	if nt := r.count(); nt > 0 {
		e.Tags = make([]protocol.Tag, nt)
		for i := range e.Tags {
			e.Tags[i] = protocol.Tag{Key: r.str(), Value: r.str()}
		}
	}
	if v[0] == VersionLines {
		e.Lines = r.lines(e.Params)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(body) {
		return nil, ErrCorrupt
	}
	return e, nil
}

// lines reads a format 2 record's lines, slicing them out of the text
// parameter as JoinLines laid them out.
func (r *recReader) lines(params []string) []rooms.Line {
	n := r.count()
	if r.err != nil || len(params) != 2 || n == 0 {
		r.err = ErrCorrupt
		return nil
	}
	text, off := params[1], 0
	out := make([]rooms.Line, n)
	for i := range out {
		x := r.uvarint()
		size, concat := int(x>>1), x&1 == 1
		if i > 0 && !concat {
			if off >= len(text) || text[off] != '\n' {
				r.err = ErrCorrupt
				return nil
			}
			off++
		}
		if r.err != nil || x>>1 > uint64(len(text)-off) {
			r.err = ErrCorrupt
			return nil
		}
		out[i] = rooms.Line{Text: text[off : off+size], Concat: concat}
		off += size
	}
	if off != len(text) {
		r.err = ErrCorrupt
		return nil
	}
	return out
}

// Fields returns a record's msgid, account and origin without copying.
func Fields(v []byte) (id, account, origin []byte, err error) {
	if !Valid(v) {
		return nil, nil, nil, ErrCorrupt
	}
	r := recReader{b: v[HeaderSize:]}
	if v[9] == 0 {
		r.bytes()
	}
	id = r.bytes()
	r.bytes() // source
	account, origin = r.bytes(), r.bytes()
	return id, account, origin, r.err
}
