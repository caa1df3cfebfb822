package daemon

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// IRCv3 draft/multiline, client to server: a client that negotiated it
// sends a paste as
//
//	BATCH +ref draft/multiline <target>
//	@batch=ref PRIVMSG <target> :line
//	@batch=ref;draft/multiline-concat PRIVMSG <target> :continued
//	BATCH -ref
//
// and the server relays it as one message (one msgid, one history entry,
// see rooms.Event.Lines): as the same batch to clients that negotiated
// draft/multiline, as plain lines to the others. The lines between the
// BATCH lines are collected here, on the reader side, and cost no flood
// tokens (the limits below bound them); the batch as a whole is delivered
// at BATCH -, with the label the BATCH + line carried.

func init() {
	register(&command{name: "BATCH", run: handleBATCH, minParams: 1})
}

// multilineBatch is a batch the client is sending. Only the goroutine
// handling the session's lines touches it.
type multilineBatch struct {
	ref, target string
	command     string // PRIVMSG or NOTICE, from the first line
	label       string // from BATCH +, for the delivery at BATCH -
	tags        []protocol.Tag
	lines       []rooms.Line
	bytes       int
	failed      bool // refused: its remaining lines are dropped up to BATCH -
}

func handleBATCH(s *Session, m *protocol.Message, _ []byte) error {
	ref := m.Params[0]
	switch {
	case strings.HasPrefix(ref, "+") && len(ref) > 1:
		if len(m.Params) < 3 || m.Params[1] != rooms.MultilineBatch || !s.hasCap(capMultiline) {
			return failErr("BATCH", "MULTILINE_INVALID", "The only batch a client may send is draft/multiline, after CAP REQ draft/multiline")
		}
		if s.openBatch() != nil {
			s.rare.ml = nil
			return failErr("BATCH", "MULTILINE_INVALID", "A multiline batch is already open; both were dropped")
		}
		target := m.Params[2]
		if strings.Contains(target, ",") {
			return failErr("BATCH", "MULTILINE_INVALID", "A multiline message goes to one target")
		}
		b := &multilineBatch{ref: ref[1:], target: target, tags: clientTags(m)}
		if label, ok := m.Tag("label"); ok && s.hasCap(capLabeledResponse) && validLabel(label) {
			b.label = label
		}
		s.more().ml = b
		return nil
	case strings.HasPrefix(ref, "-") && len(ref) > 1:
		b := s.openBatch()
		if b == nil || b.ref != ref[1:] {
			return failErr("BATCH", "MULTILINE_INVALID", "No open batch "+ref[1:])
		}
		s.rare.ml = nil
		if b.failed {
			return nil
		}
		return s.sendMultiline(b)
	}
	return failErr("BATCH", "MULTILINE_INVALID", "BATCH +<ref> draft/multiline <target> opens a batch, BATCH -<ref> ends it")
}

// batchOwns reports, before the line is parsed, whether it carries the
// open batch's reference in its tags (batch=<ref>): what the flood
// control lets through free.
func (s *Session) batchOwns(line []byte) bool {
	b := s.openBatch()
	if b == nil || b.failed || len(line) == 0 || line[0] != '@' {
		return false
	}
	tags, _, _ := bytes.Cut(line[1:], []byte(" "))
	for tag := range bytes.SplitSeq(tags, []byte(";")) {
		if v, ok := bytes.CutPrefix(tag, []byte("batch=")); ok {
			return string(v) == b.ref
		}
	}
	return false
}

// batchLine takes a line tagged with a batch reference, or any line while
// a multiline batch is open, and reports whether it took it (false: the
// line runs as usual). Lines for another batch than the open one refuse
// the batch, as a client that mixes them up cannot be trusted with it.
func (s *Session) batchLine(m *protocol.Message) bool {
	ref, tagged := m.Tag("batch")
	b := s.openBatch()
	if !tagged {
		return false // PING and the like run as usual inside a batch
	}
	if b == nil || ref != b.ref {
		if b != nil && !b.failed {
			b.failed = true
		}
		s.sendError(failErr("BATCH", "MULTILINE_INVALID", "No open multiline batch "+ref+"; the line was dropped"))
		return true
	}
	if b.failed {
		return true
	}
	if err := s.addBatchLine(b, m); err != nil {
		b.failed = true
		s.sendError(err)
	}
	return true
}

func (s *Session) addBatchLine(b *multilineBatch, m *protocol.Message) error {
	if m.Command != "PRIVMSG" && m.Command != "NOTICE" || b.command != "" && m.Command != b.command {
		return failErr("BATCH", "MULTILINE_INVALID", "A multiline batch holds PRIVMSGs or NOTICEs, all the same")
	}
	if len(m.Params) < 2 || !strings.EqualFold(m.Params[0], b.target) {
		return failErr("BATCH", "MULTILINE_INVALID", "Every line of a multiline batch goes to the batch's target, "+b.target)
	}
	b.command = m.Command
	text := m.Params[1]
	_, concat := m.Tag(rooms.MultilineConcat)
	if concat && text == "" {
		return failErr("BATCH", "MULTILINE_INVALID", "A blank line cannot continue the one before ("+rooms.MultilineConcat+")")
	}
	if err := textError(m.Command, b.target, text); err != nil {
		return err
	}
	lim := s.srv.Config().Limits
	if len(b.lines) >= lim.MultilineMaxLines {
		return failErr("BATCH", "MULTILINE_MAX_LINES", strconv.Itoa(lim.MultilineMaxLines), "A multiline message may have at most "+strconv.Itoa(lim.MultilineMaxLines)+" lines; it was dropped")
	}
	if b.bytes+len(text) > lim.MultilineMaxBytes {
		return failErr("BATCH", "MULTILINE_MAX_BYTES", strconv.Itoa(lim.MultilineMaxBytes), "A multiline message may have at most "+strconv.Itoa(lim.MultilineMaxBytes)+" bytes of text; it was dropped")
	}
	b.bytes += len(text)
	b.lines = append(b.lines, rooms.Line{Text: text, Concat: concat})
	return nil
}

// sendMultiline delivers a finished batch as one message, its replies
// (the echo, an error) tied to the label of its BATCH + line.
func (s *Session) sendMultiline(b *multilineBatch) error {
	blank := true
	for _, l := range b.lines {
		blank = blank && l.Text == ""
	}
	if blank {
		return failErr("BATCH", "MULTILINE_INVALID", "The multiline message has no text")
	}
	if b.label != "" {
		s.beginLabel(b.label)
		defer s.endLabel()
	}
	sp := rooms.Speech{Command: b.command, Tags: b.tags, Lines: b.lines}
	if err := s.deliver(b.target, sp); err != nil {
		if b.command == "NOTICE" {
			return nil
		}
		// Inside the label, so the client knows which message failed.
		s.sendError(err)
	}
	return nil
}

// speechText returns the text of sp fitted to the line (see fit) for a
// message to middle, and for a multiline message its lines, each fitted
// to a line of its own.
func (s *Session) speechText(sp rooms.Speech, middle string) (string, []rooms.Line) {
	if sp.Lines == nil {
		return s.fit(sp.Text, sp.Command, middle), nil
	}
	lines := make([]rooms.Line, len(sp.Lines))
	for i, l := range sp.Lines {
		lines[i] = rooms.Line{Text: s.fit(l.Text, sp.Command, middle), Concat: l.Concat}
	}
	return rooms.JoinLines(lines)
}
