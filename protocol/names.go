package protocol

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name limits, advertised in RPL_ISUPPORT as NICKLEN and CHANNELLEN.
const (
	// NickLen is the longest nickname, in bytes.
	NickLen = 30
	// RoomLen is the longest room name in bytes, including the leading '#'.
	RoomLen = 64
)

// Name errors.
var (
	// ErrInvalidNick reports a nickname that breaks the rules of CheckNick;
	// the daemon answers ERR_ERRONEUSNICKNAME.
	ErrInvalidNick = errors.New("protocol: invalid nickname")
	// ErrInvalidRoom reports a room name that breaks the rules of RoomName;
	// the daemon answers ERR_NOSUCHCHANNEL.
	ErrInvalidRoom = errors.New("protocol: invalid room name")
)

// CheckNick reports whether nick is acceptable: 1 to NickLen bytes, starting
// with an ASCII letter or one of [\]^_`{|}, and continuing with letters,
// digits, those specials or '-'. The set is RFC 2812's; being ASCII-only it
// keeps nicknames typeable by everyone and free of look-alike characters, and
// it can never contain the bytes that give a nick!user@host source or a
// parameter list their structure.
func CheckNick(nick string) error {
	if len(nick) == 0 || len(nick) > NickLen {
		return ErrInvalidNick
	}
	if c := nick[0]; !isLetter(c) && !isNickSpecial(c) {
		return ErrInvalidNick
	}
	for i := 1; i < len(nick); i++ {
		c := nick[i]
		if !isLetter(c) && !isDigit(c) && !isNickSpecial(c) && c != '-' {
			return ErrInvalidNick
		}
	}
	return nil
}

// IsServiceName reports whether nick is one that IRC clients and users
// expect to be a network service (NickServ, ChanServ, ...), compared
// casefolded. livechat has no services, so nobody may hold such a name:
// clients that auto-identify send PRIVMSG NickServ :IDENTIFY <password>,
// and whoever held "NickServ" would collect passwords. The rule is the
// names in serviceNames plus anything ending in "serv", which also covers
// the services of other packages (SaslServ, StatServ, ...) and spellings
// nobody listed.
func IsServiceName(nick string) bool {
	f := FoldNick(nick)
	return strings.HasSuffix(f, "serv") || serviceNames[f]
}

// serviceNames are the reserved names that do not end in "serv".
var serviceNames = map[string]bool{"global": true, "services": true, "server": true}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isNickSpecial reports the RFC 2812 "special" characters [\]^_`{|}.
func isNickSpecial(c byte) bool { return '[' <= c && c <= '`' || '{' <= c && c <= '}' }

// FoldNick returns the case-folded form of nick, the key under which
// nicknames are compared and stored. The daemon advertises CASEMAPPING=ascii,
// so only A-Z fold: folding []\~ as well (the rfc1459 mapping) surprises
// users, and Unicode folding would not be stable across Go versions. A nick
// that is already folded is returned without allocating.
func FoldNick(nick string) string { return foldASCII(nick) }

// FoldRoom returns the case-folded form of a room name, with the same rules as
// FoldNick: "#Lobby" becomes "#lobby".
func FoldRoom(name string) string { return foldASCII(name) }

func foldASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// IsRoomName reports whether s names a room, that is, starts with '#', the
// only channel type livechat has (CHANTYPES=#). Use it to tell a room target
// from a nickname target.
func IsRoomName(s string) bool { return len(s) > 0 && s[0] == '#' }

// RoomName normalises a room name as a user typed it: "lobby", "Lobby" and
// "#LOBBY" all name the same room. It adds the '#' when missing and returns
// the display name (case preserved, with '#'), or ErrInvalidRoom.
//
// A valid name is valid UTF-8 of 2 to RoomLen bytes, '#' included, and
// contains none of:
//   - space, ',' and BEL, which the IRC grammar and clients reserve
//     (',' separates names in JOIN lists);
//   - ':', which RFC 2812 also excludes because it introduces channel masks,
//     and which would let a name be mistaken for a trailing parameter;
//   - NUL, CR, LF, other C0 controls, DEL and C1 controls;
//   - other Unicode spaces and invisible format characters (such as zero-width
//     spaces and bidirectional overrides), so that a name cannot hide
//     characters that make it pass for another room, or reorder the text
//     around it. Emoji sequences joined with a zero-width joiner are the
//     casualty.
//
// Only the '#' is added; RoomName never trims, since silently changing what
// the user typed would make two different inputs reach the same room.
func RoomName(typed string) (string, error) {
	body := typed
	if IsRoomName(typed) {
		body = typed[1:]
	}
	if len(body) < 1 || len(body)+1 > RoomLen {
		return "", ErrInvalidRoom
	}
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7F || c == ',' || c == ':' {
				return "", ErrInvalidRoom
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(body[i:])
		if r == utf8.RuneError && size == 1 {
			return "", ErrInvalidRoom
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return "", ErrInvalidRoom
		}
		i += size
	}
	if IsRoomName(typed) {
		return typed, nil
	}
	return "#" + typed, nil
}
