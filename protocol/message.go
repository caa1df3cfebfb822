package protocol

import (
	"errors"
	"strings"
)

// Wire limits. Lengths are in bytes, as IRC has always counted them.
const (
	// MaxBodyLen is the longest message body, excluding the line terminator:
	// RFC 1459's 512 bytes include the CRLF.
	MaxBodyLen = 510

	// MaxTagsLen is the longest tag section, including its leading '@' but
	// not the space that separates it from the body (IRCv3 message-tags).
	MaxTagsLen = 8191

	// MaxParams is the most parameters a message can carry (RFC 2812). Parse
	// folds everything after the 14th parameter into the 15th, the way the
	// RFC grammar does, so a hostile line cannot make it allocate more.
	MaxParams = 15
)

// Parse errors. They are sentinels so callers can pick a reply with
// errors.Is (or ==) without matching on text.
var (
	// ErrEmptyLine reports a line with nothing but spaces. Clients send these
	// (some as keep-alives); callers are expected to ignore them silently.
	ErrEmptyLine = errors.New("protocol: empty line")

	// ErrNoCommand reports a line that has tags or a source but no command.
	ErrNoCommand = errors.New("protocol: no command")

	// ErrInvalidTags reports a malformed tag section: nothing after the '@',
	// or a tag with an empty key.
	ErrInvalidTags = errors.New("protocol: invalid message tags")

	// ErrInvalidSource reports a ':' prefix with no source after it, which
	// could not be re-encoded (an empty Source means "no source").
	ErrInvalidSource = errors.New("protocol: invalid source")

	// ErrInvalidCommand reports a command that is neither a word (a letter
	// then letters, digits, '_' or '-') nor a three-digit numeric.
	ErrInvalidCommand = errors.New("protocol: invalid command")

	// ErrInvalidByte reports NUL, CR or LF inside a line. They are refused
	// rather than passed on because a CR or LF relayed to other clients
	// would let the sender inject lines of its own.
	ErrInvalidByte = errors.New("protocol: line contains NUL, CR or LF")
)

// Tag is one IRCv3 message tag.
type Tag struct {
	Key string
	// Value is unescaped; "" for a tag without a value (the spec makes
	// "key" and "key=" equivalent).
	Value string
}

// Message is one parsed IRC line.
type Message struct {
	// Tags are in wire order; nil when the line had none. Duplicated keys are
	// kept, and Tag reports the last one, as IRCv3 asks.
	Tags []Tag
	// Source is the prefix without its ':'; "" when there is none.
	Source string
	// Command is upper-cased by Parse, so handlers can switch on it.
	Command string
	// Params holds the parameters; the trailing parameter is simply the last
	// element, its ':' removed.
	Params []string
}

// Parse parses one line. A trailing "\r\n" or "\n" (or a lone "\r" left by a
// reader that split on "\n") is tolerated and stripped. The line is converted
// to a string once and every field is a slice of it, so the caller may reuse
// line as soon as Parse returns.
//
// Spaces are forgiven where real clients put them: before the line, and any
// number between tags, source, command and parameters. A parameter list
// without a ':' trailing stops at the last non-space byte.
func Parse(line []byte) (Message, error) {
	line = trimTerminatorBytes(line)
	// Blank lines are common and need no allocation to reject.
	if isBlank(line) {
		return Message{}, ErrEmptyLine
	}
	return parse(string(line))
}

// ParseString is Parse for a line that is already a string; it does not copy.
func ParseString(line string) (Message, error) {
	return parse(trimTerminator(line))
}

func trimTerminatorBytes(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func trimTerminator(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}

// parse does the work for a line already stripped of its terminator. It scans
// left to right once; on error it returns the zero Message so no caller can
// act on half a parse.
func parse(s string) (Message, error) {
	if hasForbiddenByte(s) {
		return Message{}, ErrInvalidByte
	}
	var m Message
	i := skipSpaces(s, 0)
	if i == len(s) {
		return Message{}, ErrEmptyLine
	}

	if s[i] == '@' {
		end := indexByteFrom(s, i, ' ')
		tags, err := parseTags(s[i+1 : end])
		if err != nil {
			return Message{}, err
		}
		m.Tags = tags
		i = skipSpaces(s, end)
	}

	if i < len(s) && s[i] == ':' {
		end := indexByteFrom(s, i, ' ')
		if end == i+1 {
			return Message{}, ErrInvalidSource
		}
		m.Source = s[i+1 : end]
		i = skipSpaces(s, end)
	}

	if i == len(s) {
		return Message{}, ErrNoCommand
	}
	end := indexByteFrom(s, i, ' ')
	cmd, ok := normalizeCommand(s[i:end])
	if !ok {
		return Message{}, ErrInvalidCommand
	}
	m.Command = cmd
	i = end

	// Collect into a stack array and copy out once, so the Params slice is a
	// single allocation of exactly the right size.
	var params [MaxParams]string
	n := 0
	for {
		i = skipSpaces(s, i)
		if i == len(s) {
			break
		}
		if n == MaxParams-1 {
			// RFC 2812: after 14 middle parameters the rest of the line is the
			// trailing parameter, with or without its ':'.
			if s[i] == ':' {
				i++
			}
			params[n] = s[i:]
			n++
			break
		}
		if s[i] == ':' {
			params[n] = s[i+1:]
			n++
			break
		}
		end := indexByteFrom(s, i, ' ')
		params[n] = s[i:end]
		n++
		i = end
	}
	if n > 0 {
		m.Params = make([]string, n)
		copy(m.Params, params[:n])
	}
	return m, nil
}

func hasForbiddenByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= '\r' && (c == 0 || c == '\r' || c == '\n') {
			return true
		}
	}
	return false
}

func skipSpaces(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// indexByteFrom returns the index of the first c in s at or after from, or
// len(s) when there is none, which is what every caller wants as an end.
func indexByteFrom(s string, from int, c byte) int {
	if j := strings.IndexByte(s[from:], c); j >= 0 {
		return from + j
	}
	return len(s)
}

// parseTags parses the tag section without its '@'. Key names are not
// validated beyond being non-empty: IRCv3 requires treating them as opaque so
// that new key syntaxes keep working. Empty entries (a stray ';') are skipped
// because some clients emit a trailing one, but a section with no tag at all
// is rejected.
func parseTags(raw string) ([]Tag, error) {
	if raw == "" {
		return nil, ErrInvalidTags
	}
	tags := make([]Tag, 0, strings.Count(raw, ";")+1)
	for raw != "" {
		var entry string
		entry, raw, _ = strings.Cut(raw, ";")
		if entry == "" {
			continue
		}
		key, value, _ := strings.Cut(entry, "=")
		if key == "" {
			return nil, ErrInvalidTags
		}
		tags = append(tags, Tag{Key: key, Value: unescapeTagValue(value)})
	}
	if len(tags) == 0 {
		return nil, ErrInvalidTags
	}
	return tags, nil
}

// ValidTagKey reports whether key is a tag key as IRCv3 message-tags
// defines it: an optional '+' (client-only), an optional vendor (a host
// name) and '/', then a name of ASCII letters, digits and '-'. Parse keeps
// keys it cannot vouch for, as the specification asks of parsers; a server
// drops them before relaying anything.
func ValidTagKey(key string) bool {
	key = strings.TrimPrefix(key, "+")
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		vendor := key[:i]
		if vendor == "" || !tagKeyChars(vendor, true) {
			return false
		}
		key = key[i+1:]
	}
	return key != "" && tagKeyChars(key, false)
}

// tagKeyChars reports whether s holds only letters, digits and '-', and
// dots if dots.
func tagKeyChars(s string, dots bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !isDigit(c) && c != '-' && (!dots || c != '.') {
			return false
		}
	}
	return true
}

// unescapeTagValue undoes IRCv3 tag escaping. Per the spec, a backslash
// before any other character is dropped and a trailing lone backslash is
// removed. Values without a backslash are returned as is, without allocating.
func unescapeTagValue(v string) string {
	i := strings.IndexByte(v, '\\')
	if i < 0 {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i >= 0 {
		b.WriteString(v[:i])
		if i+1 == len(v) {
			return b.String()
		}
		switch c := v[i+1]; c {
		case ':':
			b.WriteByte(';')
		case 's':
			b.WriteByte(' ')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default: // includes '\\'
			b.WriteByte(c)
		}
		v = v[i+2:]
		i = strings.IndexByte(v, '\\')
	}
	b.WriteString(v)
	return b.String()
}

// normalizeCommand validates a command (letters, or exactly three digits) and
// upper-cases it. Commands that are already upper-case, which is nearly all of
// them, are returned without allocating.
func normalizeCommand(c string) (string, bool) {
	if len(c) == 3 && isDigit(c[0]) && isDigit(c[1]) && isDigit(c[2]) {
		return c, true
	}
	lower := false
	for i := 0; i < len(c); i++ {
		switch ch := c[i]; {
		case 'A' <= ch && ch <= 'Z':
		case 'a' <= ch && ch <= 'z':
			lower = true
		case i > 0 && (ch == '_' || ch == '-' || isDigit(ch)):
			// Not a standard command, but a well-formed word: the
			// server answers it with "unknown command", not a parse error.
		default:
			return "", false
		}
	}
	if !lower {
		return c, true
	}
	return upperCommand(c), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// upperCommand upper-cases a letters-only command. Known commands come back as
// constants so that clients sending lower case (several do) cost no
// allocation.
func upperCommand(c string) string {
	var buf [16]byte
	if len(c) > len(buf) {
		return strings.ToUpper(c)
	}
	b := buf[:len(c)]
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if 'a' <= ch && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		b[i] = ch
	}
	if k := knownCommand(b); k != "" {
		return k
	}
	return string(b)
}

// knownCommand returns the constant spelling of an upper-cased client
// command, or "". The switch on string(b) does not allocate.
func knownCommand(b []byte) string {
	switch string(b) {
	case "PRIVMSG":
		return "PRIVMSG"
	case "NOTICE":
		return "NOTICE"
	case "TAGMSG":
		return "TAGMSG"
	case "PING":
		return "PING"
	case "PONG":
		return "PONG"
	case "JOIN":
		return "JOIN"
	case "PART":
		return "PART"
	case "NICK":
		return "NICK"
	case "USER":
		return "USER"
	case "PASS":
		return "PASS"
	case "CAP":
		return "CAP"
	case "AUTHENTICATE":
		return "AUTHENTICATE"
	case "QUIT":
		return "QUIT"
	case "TOPIC":
		return "TOPIC"
	case "NAMES":
		return "NAMES"
	case "LIST":
		return "LIST"
	case "MODE":
		return "MODE"
	case "KICK":
		return "KICK"
	case "INVITE":
		return "INVITE"
	case "WHO":
		return "WHO"
	case "WHOIS":
		return "WHOIS"
	case "WHOWAS":
		return "WHOWAS"
	case "AWAY":
		return "AWAY"
	case "USERHOST":
		return "USERHOST"
	case "ISON":
		return "ISON"
	case "MOTD":
		return "MOTD"
	case "HELP":
		return "HELP"
	case "VERSION":
		return "VERSION"
	case "LUSERS":
		return "LUSERS"
	case "OPER":
		return "OPER"
	}
	return ""
}

// Param returns the i-th parameter, or "" when there is none, which spares
// handlers a length check before reading optional parameters.
func (m *Message) Param(i int) string {
	if i < 0 || i >= len(m.Params) {
		return ""
	}
	return m.Params[i]
}

// Tag returns the value of the tag with the given key and whether it is
// present. When a key is repeated the last occurrence wins, as IRCv3 asks.
func (m *Message) Tag(key string) (string, bool) {
	for i := len(m.Tags) - 1; i >= 0; i-- {
		if m.Tags[i].Key == key {
			return m.Tags[i].Value, true
		}
	}
	return "", false
}
