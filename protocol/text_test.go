package protocol

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckText(t *testing.T) {
	tests := []struct {
		name string
		text string
		want error
	}{
		{"empty", "", nil},
		{"plain", "hello there", nil},
		{"utf-8", "héllo wörld ☃ 👋", nil},
		{"action", "\x01ACTION waves\x01", nil},
		{"bold", "\x02bold\x02", nil},
		{"colour", "\x0304,12red on blue\x03", nil},
		{"hex colour", "\x04FF0000red", nil},
		{"reset", "a\x0Fb", nil},
		{"monospace", "\x11code\x11", nil},
		{"reverse", "\x16rev\x16", nil},
		{"italics", "\x1Dit\x1D", nil},
		{"strikethrough", "\x1Estrike\x1E", nil},
		{"underline", "\x1Funder\x1F", nil},
		{"replacement char is valid", "\uFFFD", nil},
		{"colons and hashes", ":#a :b", nil},

		{"nul", "a\x00b", ErrControlChar},
		{"cr", "a\rb", ErrControlChar},
		{"lf", "a\nb", ErrControlChar},
		{"bell", "ding\x07", ErrControlChar},
		{"tab", "a\tb", ErrControlChar},
		{"escape", "\x1b[31mred", ErrControlChar},
		{"del", "a\x7f", ErrControlChar},
		{"0x05", "\x05", ErrControlChar},
		{"0x10", "\x10", ErrControlChar},
		{"0x1C", "\x1C", ErrControlChar},

		{"latin-1", "caf\xe9", ErrInvalidUTF8},
		{"truncated sequence", "caf\xc3", ErrInvalidUTF8},
		{"lone continuation", "\x80abc", ErrInvalidUTF8},
		{"overlong encoding", "\xc0\xaf", ErrInvalidUTF8},
		{"surrogate", "\xed\xa0\x80", ErrInvalidUTF8},
		{"first problem wins: utf-8", "\xff\x00", ErrInvalidUTF8},
		{"first problem wins: control", "\x00\xff", ErrControlChar},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckText(tt.text); !errors.Is(got, tt.want) || (tt.want == nil && got != nil) {
				t.Errorf("CheckText(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

// TestCheckTextAllC0 pins the exact set of allowed control bytes.
func TestCheckTextAllC0(t *testing.T) {
	allowed := map[byte]bool{0x01: true, 0x02: true, 0x03: true, 0x04: true, 0x0F: true,
		0x11: true, 0x16: true, 0x1D: true, 0x1E: true, 0x1F: true}
	for c := byte(0); c < 0x20; c++ {
		err := CheckText("a" + string(c) + "b")
		if allowed[c] && err != nil {
			t.Errorf("byte %#02x rejected: %v", c, err)
		}
		if !allowed[c] && err != ErrControlChar {
			t.Errorf("byte %#02x: %v, want ErrControlChar", c, err)
		}
	}
}

func TestTruncateText(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abc", 3, "abc"},
		{"ascii cut", "abcdef", 3, "abc"},
		{"zero", "abc", 0, ""},
		{"negative", "abc", -1, ""},
		{"before two-byte rune", "aé", 2, "a"},
		{"after two-byte rune", "aéb", 3, "aé"},
		{"inside three-byte rune", "a☃", 3, "a"},
		{"inside four-byte rune", "a👋b", 4, "a"},
		{"after four-byte rune", "a👋b", 5, "a👋"},
		{"invalid utf-8 still cut", strings.Repeat("\x80", 10), 4, strings.Repeat("\x80", 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TruncateText(tt.s, tt.n)
			if got != tt.want {
				t.Errorf("TruncateText(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
			if len(got) > max(tt.n, 0) {
				t.Errorf("result %q longer than %d", got, tt.n)
			}
			if utf8.ValidString(tt.s) && !utf8.ValidString(got) {
				t.Errorf("result %q of valid input is not valid UTF-8", got)
			}
		})
	}
}

func TestFitText(t *testing.T) {
	const source = "nick!~user@host.example"
	snow := strings.Repeat("☃", MaxBodyLen) // three bytes a rune
	tests := []struct {
		name    string
		text    string
		command string
		middle  []string
	}{
		{"privmsg ascii", strings.Repeat("a", MaxBodyLen), "PRIVMSG", []string{"#room"}},
		{"privmsg runes", snow, "PRIVMSG", []string{"#room"}},
		{"kick runes", "x" + snow, "KICK", []string{"#room", "victim"}},
		{"no middle", "xy" + snow, "QUIT", nil},
		{"action", "\x01ACTION " + snow + "\x01", "PRIVMSG", []string{"#room"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FitText(tt.text, len(source), tt.command, tt.middle...)
			m := Message{Source: source, Command: tt.command, Params: append(append([]string{}, tt.middle...), got)}
			n := len(m.Bytes()) - 2
			if n > MaxBodyLen || n < MaxBodyLen-utf8.UTFMax+1 {
				t.Errorf("line body is %d bytes, want %d or up to 3 less", n, MaxBodyLen)
			}
			if strings.HasPrefix(tt.text, "\x01") {
				if !strings.HasSuffix(got, "\x01") {
					t.Errorf("a cut CTCP message lost its closing \\x01: ...%q", got[len(got)-8:])
				}
				got = strings.TrimSuffix(got, "\x01")
			}
			if !strings.HasPrefix(tt.text, got) || !utf8.ValidString(got) {
				t.Errorf("%q is not a valid prefix of the text", got)
			}
			if short := "hello"; FitText(short, len(source), tt.command, tt.middle...) != short {
				t.Errorf("short text changed")
			}
		})
	}
}
