package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNick(t *testing.T) {
	tests := []struct {
		name string
		nick string
		ok   bool
	}{
		{"letters", "bob", true},
		{"single letter", "b", true},
		{"mixed case", "BoB", true},
		{"digits after first", "bob42", true},
		{"hyphen after first", "bob-smith", true},
		{"all specials", "[\\]^_`{|}", true},
		{"special first", "_bob", true},
		{"brace first", "{bob}", true},
		{"at max length", strings.Repeat("a", NickLen), true},

		{"empty", "", false},
		{"over max length", strings.Repeat("a", NickLen+1), false},
		{"digit first", "1bob", false},
		{"hyphen first", "-bob", false},
		{"space", "bob smith", false},
		{"comma", "bob,alice", false},
		{"colon first", ":bob", false},
		{"hash first", "#bob", false},
		{"at sign", "bob@host", false},
		{"bang", "bob!x", false},
		{"star", "bob*", false},
		{"dot", "bob.smith", false},
		{"non-ascii", "böb", false},
		{"control", "bob\x02", false},
		{"nul", "bob\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNick(tt.nick)
			if tt.ok && err != nil {
				t.Errorf("CheckNick(%q) = %v, want nil", tt.nick, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidNick) {
				t.Errorf("CheckNick(%q) = %v, want ErrInvalidNick", tt.nick, err)
			}
		})
	}
}

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"bob", "bob"},
		{"Bob", "bob"},
		{"BOB", "bob"},
		{"bOb[]\\~", "bob[]\\~"}, // ascii casemapping: []\~ do not fold
		{"#Lobby", "#lobby"},
		{"#ÉCOLE", "#École"}, // only A-Z fold
		{"A{|}^", "a{|}^"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := FoldNick(tt.in); got != tt.want {
				t.Errorf("FoldNick(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := FoldRoom(tt.in); got != tt.want {
				t.Errorf("FoldRoom(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFoldAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	if got := testing.AllocsPerRun(100, func() { _ = FoldNick("already-folded") }); got != 0 {
		t.Errorf("FoldNick of a folded nick: %v allocs, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { _ = FoldNick("NotFolded") }); got > 1 {
		t.Errorf("FoldNick: %v allocs, want <= 1", got)
	}
}

func TestRoomName(t *testing.T) {
	tests := []struct {
		name  string
		typed string
		want  string // "" means ErrInvalidRoom
	}{
		{"bare", "lobby", "#lobby"},
		{"bare capitalised", "Lobby", "#Lobby"},
		{"with hash upper", "#LOBBY", "#LOBBY"},
		{"double hash", "##go", "##go"},
		{"single char", "a", "#a"},
		{"hash inside", "c#", "#c#"},
		{"utf-8", "café", "#café"},
		{"emoji", "☕", "#☕"},
		{"formatting-free punctuation", "go-nuts.2026!", "#go-nuts.2026!"},
		{"at max length", "#" + strings.Repeat("r", RoomLen-1), "#" + strings.Repeat("r", RoomLen-1)},
		{"bare at max length", strings.Repeat("r", RoomLen-1), "#" + strings.Repeat("r", RoomLen-1)},

		{"empty", "", ""},
		{"hash only", "#", ""},
		{"over max length", "#" + strings.Repeat("r", RoomLen), ""},
		{"bare over max length", strings.Repeat("r", RoomLen), ""},
		{"space", "my room", ""},
		{"leading space", " lobby", ""},
		{"comma", "a,b", ""},
		{"colon", "a:b", ""},
		{"bell", "a\x07b", ""},
		{"nul", "a\x00", ""},
		{"cr", "a\r", ""},
		{"lf", "a\nb", ""},
		{"tab", "a\tb", ""},
		{"colour code", "\x03" + "4red", ""},
		{"del", "a\x7f", ""},
		{"c1 control", "a\u0085b", ""},
		{"no-break space", "a\u00a0b", ""},
		{"ideographic space", "a\u3000b", ""},
		{"zero-width space", "lob\u200bby", ""},
		{"bidi override", "\u202eybbol", ""},
		{"byte order mark", "\ufefflobby", ""},
		{"invalid utf-8", "caf\xe9", ""},
		{"truncated utf-8", "caf\xc3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RoomName(tt.typed)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidRoom) || got != "" {
					t.Errorf("RoomName(%q) = %q, %v; want ErrInvalidRoom", tt.typed, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("RoomName(%q) = %q, %v; want %q", tt.typed, got, err, tt.want)
			}
			if !IsRoomName(got) {
				t.Errorf("IsRoomName(%q) = false for a RoomName result", got)
			}
		})
	}
}

func TestRoomNameSameRoom(t *testing.T) {
	var folded []string
	for _, typed := range []string{"lobby", "Lobby", "#LOBBY", "#lobby", "LoBbY"} {
		name, err := RoomName(typed)
		if err != nil {
			t.Fatalf("RoomName(%q): %v", typed, err)
		}
		folded = append(folded, FoldRoom(name))
	}
	for _, f := range folded {
		if f != "#lobby" {
			t.Errorf("folded names %q, want all #lobby", folded)
			break
		}
	}
}

func TestIsRoomName(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"#a", true},
		{"#", true},
		{"a", false},
		{"", false},
		{"&a", false},
		{"bob", false},
	}
	for _, tt := range tests {
		if got := IsRoomName(tt.s); got != tt.want {
			t.Errorf("IsRoomName(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestIsServiceName(t *testing.T) {
	for _, n := range []string{"NickServ", "nickserv", "CHANSERV", "HostServ", "MemoServ", "OperServ", "BotServ", "SaslServ", "StatServ", "HelpServ", "InfoServ", "Global", "Services", "Server", "FooServ"} {
		if !IsServiceName(n) {
			t.Errorf("IsServiceName(%q) = false, want true", n)
		}
	}
	for _, n := range []string{"nick", "NickServer", "servant", "Serv-1", "globals", "alice"} {
		if IsServiceName(n) {
			t.Errorf("IsServiceName(%q) = true, want false", n)
		}
	}
}
