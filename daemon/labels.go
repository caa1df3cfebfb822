package daemon

import (
	"bytes"

	"github.com/livechat/livechat/protocol"
)

// maxLabel bounds a labeled-response label (the spec allows 64 bytes).
const maxLabel = 64

// Reply queues a line answering the session's own command. While a
// labeled command runs, replies are held back so that endLabel can tie
// them to the label (IRCv3 labeled-response). Safe from any goroutine.
func (s *Session) Reply(line []byte) bool {
	s.outMu.Lock()
	if s.labeling {
		r := s.rare
		r.captured = append(r.captured, line)
		r.capturedBytes += len(line)
		s.outMu.Unlock()
		return true
	}
	s.outMu.Unlock()
	return s.sendReply(line)
}

// validLabel accepts labels that need no tag escaping, so they can be
// spliced into encoded lines as they are.
func validLabel(label string) bool {
	if label == "" || len(label) > maxLabel {
		return false
	}
	for i := 0; i < len(label); i++ {
		if c := label[i]; c <= ' ' || c == ';' || c == '\\' || c == 0x7f {
			return false
		}
	}
	return true
}

// beginLabel starts collecting the replies to a labeled command.
func (s *Session) beginLabel(label string) {
	r := s.more()
	s.outMu.Lock()
	s.labeling, r.label, r.captured = true, label, r.captured[:0]
	s.outMu.Unlock()
}

// endLabel sends the collected replies tied to the label: an ACK for none,
// the label tag on a single line, or a labeled-response batch.
func (s *Session) endLabel() {
	r := s.rare // set by beginLabel
	s.outMu.Lock()
	lines, label, id := r.captured, r.label, r.labelBatch
	s.labeling, r.captured, r.capturedBytes, r.labelBatch = false, nil, 0, ""
	s.outMu.Unlock()

	switch {
	case id != "": // opened by spillLabel
	case len(lines) == 0:
		s.sendReply((&protocol.Message{Tags: []protocol.Tag{{Key: "label", Value: label}}, Source: s.srv.Config().ServerName, Command: "ACK"}).AppendTo(nil))
		return
	case len(lines) == 1:
		s.sendReply(withTag(lines[0], "label", label))
		return
	default:
		id = s.openLabelBatch(label)
	}
	s.sendInBatch(lines, id)
	s.sendReply((&protocol.Message{Source: s.srv.Config().ServerName, Command: "BATCH", Params: []string{"-" + id}}).AppendTo(nil))
}

// spillLabel sends a labeled command's replies so far, in its
// labeled-response batch (opened now if need be), once they pass limit
// bytes: a long reply streams (see pace) instead of piling up here.
func (s *Session) spillLabel(limit int) {
	s.outMu.Lock()
	r := s.rare
	if !s.labeling || r.capturedBytes <= limit {
		s.outMu.Unlock()
		return
	}
	lines, label, id := r.captured, r.label, r.labelBatch
	r.captured, r.capturedBytes = nil, 0
	s.outMu.Unlock()
	if id == "" {
		id = s.openLabelBatch(label)
		s.outMu.Lock()
		r.labelBatch = id
		s.outMu.Unlock()
	}
	s.sendInBatch(lines, id)
}

// openLabelBatch starts a labeled-response batch and returns its id.
func (s *Session) openLabelBatch(label string) string {
	id := s.srv.ids.Next()
	s.sendReply((&protocol.Message{Tags: []protocol.Tag{{Key: "label", Value: label}}, Source: s.srv.Config().ServerName, Command: "BATCH", Params: []string{"+" + id, "labeled-response"}}).AppendTo(nil))
	return id
}

func (s *Session) sendInBatch(lines [][]byte, id string) {
	for _, line := range lines {
		if !hasTag(line, "batch") { // lines of a nested batch keep their own
			line = withTag(line, "batch", id)
		}
		s.sendReply(line)
	}
}

// withTag returns a copy of an encoded line with key=value as its first
// tag. value must need no escaping.
func withTag(line []byte, key, value string) []byte {
	out := make([]byte, 0, len(line)+len(key)+len(value)+3)
	out = append(out, '@')
	out = append(out, key...)
	out = append(out, '=')
	out = append(out, value...)
	if len(line) > 0 && line[0] == '@' {
		out = append(out, ';')
		return append(out, line[1:]...)
	}
	out = append(out, ' ')
	return append(out, line...)
}

// hasTag reports whether an encoded line carries tag key.
func hasTag(line []byte, key string) bool {
	if len(line) == 0 || line[0] != '@' {
		return false
	}
	end := bytes.IndexByte(line, ' ')
	if end < 0 {
		return false
	}
	for _, t := range bytes.Split(line[1:end], []byte{';'}) {
		k, _, _ := bytes.Cut(t, []byte{'='})
		if string(k) == key {
			return true
		}
	}
	return false
}
