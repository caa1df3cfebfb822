package protocol

import (
	"strings"
	"unicode/utf8"
)

// AppendTo appends the wire form of m, including the final "\r\n", to dst and
// returns the extended slice. It does not allocate when dst has room, so a
// connection can encode into one reused buffer.
//
// The last parameter gets a ':' when it is empty, contains a space or starts
// with ':', and also whenever the message has two or more parameters: clients
// in the wild treat the ':' as "this is the text", so "PRIVMSG #a :hi" is
// safer than the equivalent "PRIVMSG #a hi". Tag values are escaped per IRCv3
// and a tag with an empty value is written as its bare key.
//
// AppendTo does not validate structure (a space inside a middle parameter is
// the caller's bug), but it guarantees one line: any NUL, CR or LF in a field
// is written as a space, so text that escaped validation can never inject a
// second line into another client's stream. A body (the line after the
// tags) over MaxBodyLen has its last parameter cut to fit (cutLastParam).
func (m *Message) AppendTo(dst []byte) []byte {
	if len(m.Tags) > 0 {
		dst = append(dst, '@')
		for i, t := range m.Tags {
			if i > 0 {
				dst = append(dst, ';')
			}
			dst = appendSafe(dst, t.Key)
			if t.Value != "" {
				dst = append(dst, '=')
				dst = appendTagValue(dst, t.Value)
			}
		}
		dst = append(dst, ' ')
	}
	bodyStart := len(dst)
	if m.Source != "" {
		dst = append(dst, ':')
		dst = appendSafe(dst, m.Source)
		dst = append(dst, ' ')
	}
	dst = appendSafe(dst, m.Command)
	last, lastStart, colon := len(m.Params)-1, 0, false
	for i, p := range m.Params {
		dst = append(dst, ' ')
		if i == last && (i > 0 || needsColon(p)) {
			dst = append(dst, ':')
			colon = true
		}
		lastStart = len(dst)
		dst = appendSafe(dst, p)
	}
	if last >= 0 && len(dst)-bodyStart > MaxBodyLen {
		dst = cutLastParam(dst, lastStart, bodyStart+MaxBodyLen, colon)
	}
	return append(dst, '\r', '\n')
}

// cutLastParam shortens a line whose body is over MaxBodyLen by cutting its
// last parameter at limit, on a UTF-8 boundary. Handlers fit relayed text
// before it reaches a room (FitText), so this is the safety net for a
// reply nobody budgeted (a long real name in WHO, say): a strict reader
// drops an overlong line whole, and a cut line is better than none. A line
// whose parameters before the last already pass the limit is left alone.
func cutLastParam(dst []byte, lastStart, limit int, colon bool) []byte {
	if lastStart >= limit {
		return dst
	}
	cut := limit
	for cut > lastStart && !utf8.RuneStart(dst[cut]) {
		cut--
	}
	if cut == lastStart && !colon {
		return dst // an empty middle parameter would change the message
	}
	return dst[:cut]
}

// Bytes returns the wire form of m, including the final "\r\n", in a newly
// allocated slice of exactly the right size.
func (m *Message) Bytes() []byte {
	return m.AppendTo(make([]byte, 0, m.wireLen()))
}

// String returns the wire form of m without the final "\r\n", for logs and
// tests.
func (m Message) String() string {
	// Encoding into a stack buffer leaves the string conversion as the only
	// allocation for ordinary lines.
	var buf [512]byte
	b := m.AppendTo(buf[:0])
	return string(b[:len(b)-2])
}

func needsColon(p string) bool {
	return p == "" || p[0] == ':' || strings.IndexByte(p, ' ') >= 0
}

// appendSafe appends s, replacing NUL, CR and LF with spaces.
func appendSafe(dst []byte, s string) []byte {
	start := len(dst)
	dst = append(dst, s...)
	for i := start; i < len(dst); i++ {
		if c := dst[i]; c <= '\r' && (c == 0 || c == '\r' || c == '\n') {
			dst[i] = ' '
		}
	}
	return dst
}

// tagEscape returns the escape letter for c in a tag value, 0 when c is
// written as is, or 0xFF when c is dropped. NUL cannot be escaped in IRCv3
// and is forbidden on the wire, so it is dropped.
func tagEscape(c byte) byte {
	switch c {
	case ';':
		return ':'
	case ' ':
		return 's'
	case '\\':
		return '\\'
	case '\r':
		return 'r'
	case '\n':
		return 'n'
	case 0:
		return 0xFF
	}
	return 0
}

// mayNeedTagEscape is a cheap superset test for tagEscape(c) != 0, letting
// the common value (a timestamp, an id) be copied in one append.
func mayNeedTagEscape(c byte) bool {
	return c <= ' ' || c == ';' || c == '\\'
}

func appendTagValue(dst []byte, v string) []byte {
	i := 0
	for i < len(v) && !mayNeedTagEscape(v[i]) {
		i++
	}
	if i == len(v) {
		return append(dst, v...)
	}
	start := 0
	for ; i < len(v); i++ {
		e := tagEscape(v[i])
		if e == 0 {
			continue
		}
		dst = append(dst, v[start:i]...)
		if e != 0xFF {
			dst = append(dst, '\\', e)
		}
		start = i + 1
	}
	return append(dst, v[start:]...)
}

// wireLen is the length AppendTo will append (exact unless the body is cut
// to MaxBodyLen), so Bytes allocates once.
func (m *Message) wireLen() int {
	n := 0
	if len(m.Tags) > 0 {
		n += 2 + len(m.Tags) - 1 // '@', ' ' and the ';' separators
		for _, t := range m.Tags {
			n += len(t.Key)
			if t.Value != "" {
				n++ // '='
				for i := 0; i < len(t.Value); i++ {
					switch tagEscape(t.Value[i]) {
					case 0:
						n++
					case 0xFF:
					default:
						n += 2
					}
				}
			}
		}
	}
	if m.Source != "" {
		n += len(m.Source) + 2
	}
	n += len(m.Command)
	last := len(m.Params) - 1
	for i, p := range m.Params {
		n += 1 + len(p)
		if i == last && (i > 0 || needsColon(p)) {
			n++
		}
	}
	return n + 2
}
