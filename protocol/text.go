package protocol

import (
	"errors"
	"unicode/utf8"
)

// TopicLen is the longest room topic in bytes, advertised as TOPICLEN.
const TopicLen = 390

// Text errors. They are distinct so the daemon can tell the user which rule
// the text broke.
var (
	// ErrInvalidUTF8 reports text that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("protocol: text is not valid UTF-8")
	// ErrControlChar reports text containing a control character other than
	// the IRC formatting codes.
	ErrControlChar = errors.New("protocol: text contains a control character")
)

// formattingCodes has bit c set for each C0 control c that real clients use
// in message text: 0x01 CTCP/ACTION delimiter, 0x02 bold, 0x03 colour,
// 0x04 hex colour, 0x0F reset, 0x11 monospace, 0x16 reverse, 0x1D italics,
// 0x1E strikethrough, 0x1F underline.
const formattingCodes uint32 = 1<<0x01 | 1<<0x02 | 1<<0x03 | 1<<0x04 | 1<<0x0F |
	1<<0x11 | 1<<0x16 | 1<<0x1D | 1<<0x1E | 1<<0x1F

// CheckText validates free text: messages, topics, away messages, real
// names. It must be valid UTF-8 (ErrInvalidUTF8) and free of NUL, CR, LF,
// DEL and the C0 controls that are not formatting codes (ErrControlChar).
// Formatting codes are allowed because refusing them would break colours,
// bold and /me. Whichever problem comes first in s is reported. The empty
// string is valid: whether text is required is the command's business
// (ERR_NOTEXTTOSEND).
func CheckText(s string) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && formattingCodes&(1<<c) == 0 || c == 0x7F {
				return ErrControlChar
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return ErrInvalidUTF8
		}
		i += size
	}
	return nil
}

// TruncateText shortens s to at most n bytes without splitting a UTF-8
// sequence, for fitting text into TopicLen or into what is left of a 512-byte
// line after the source and target. Text that is not valid UTF-8 is still cut
// at or near n rather than emptied.
func TruncateText(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	cut := n
	// Back off over at most UTFMax-1 continuation bytes to the start of the
	// rune that straddles the cut.
	for back := 0; back < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); back++ {
		cut--
	}
	if !utf8.RuneStart(s[cut]) {
		// Not UTF-8 here anyway; a plain byte cut is the best we can do.
		cut = n
	}
	return s[:cut]
}

// FitText shortens text, as TruncateText does, so that the line
// ":<source> <command> <middle>... :<text>" fits in MaxBodyLen bytes, for
// a source of sourceLen bytes (the length is all it needs, so a caller
// need not build the source to find that a short text fits). A
// client's line was within the limit without a source; relayed with the
// sender's nick!user@host in front it may not be, and a strict reader drops
// an overlong line whole, so the text is cut before anyone gets it. Tags do
// not count: they have their own limit. A cut CTCP message (an ACTION)
// keeps its closing \x01, so clients still show it as an action.
func FitText(text string, sourceLen int, command string, middle ...string) string {
	head := 1 + sourceLen + 1 + len(command) + len(" :")
	for _, p := range middle {
		head += 1 + len(p)
	}
	cut := TruncateText(text, MaxBodyLen-head)
	if len(cut) < len(text) && len(cut) > 1 && cut[0] == '\x01' && text[len(text)-1] == '\x01' {
		cut = TruncateText(text, MaxBodyLen-head-1) + "\x01"
	}
	return cut
}
