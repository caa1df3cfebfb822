package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	many := make([]string, 0, 20)
	for i := range 20 {
		many = append(many, string(rune('a'+i)))
	}

	tests := []struct {
		name    string
		line    string
		want    Message
		wantErr error
	}{
		{
			name: "command only",
			line: "PING",
			want: Message{Command: "PING"},
		},
		{
			name: "privmsg with trailing",
			line: "PRIVMSG #room :hello there everyone",
			want: Message{Command: "PRIVMSG", Params: []string{"#room", "hello there everyone"}},
		},
		{
			name: "crlf stripped",
			line: "NICK bob\r\n",
			want: Message{Command: "NICK", Params: []string{"bob"}},
		},
		{
			name: "lf stripped",
			line: "NICK bob\n",
			want: Message{Command: "NICK", Params: []string{"bob"}},
		},
		{
			name: "lone cr stripped",
			line: "NICK bob\r",
			want: Message{Command: "NICK", Params: []string{"bob"}},
		},
		{
			name: "source",
			line: ":nick!user@host PRIVMSG #room :hi",
			want: Message{Source: "nick!user@host", Command: "PRIVMSG", Params: []string{"#room", "hi"}},
		},
		{
			name: "server source",
			line: ":irc.example.net 001 bob :Welcome to the Example Network, bob",
			want: Message{Source: "irc.example.net", Command: "001", Params: []string{"bob", "Welcome to the Example Network, bob"}},
		},
		{
			name: "lowercase command",
			line: "privmsg #room :hi",
			want: Message{Command: "PRIVMSG", Params: []string{"#room", "hi"}},
		},
		{
			name: "mixed case unknown command",
			line: "fooBar x",
			want: Message{Command: "FOOBAR", Params: []string{"x"}},
		},
		{
			name: "long lowercase command",
			line: "averyveryverylongcommandname",
			want: Message{Command: "AVERYVERYVERYLONGCOMMANDNAME"},
		},
		{
			name: "multiple spaces between params",
			line: "USER  bob   0  *   :Bob  Smith",
			want: Message{Command: "USER", Params: []string{"bob", "0", "*", "Bob  Smith"}},
		},
		{
			name: "leading and trailing spaces",
			line: "   JOIN #a   ",
			want: Message{Command: "JOIN", Params: []string{"#a"}},
		},
		{
			name: "spaces between tags source and command",
			line: "@a=b   :src   CMD   x",
			want: Message{Tags: []Tag{{"a", "b"}}, Source: "src", Command: "CMD", Params: []string{"x"}},
		},
		{
			name: "trailing with spaces and colons",
			line: "PRIVMSG #a :: hello : world :",
			want: Message{Command: "PRIVMSG", Params: []string{"#a", ": hello : world :"}},
		},
		{
			name: "colon inside middle param",
			line: "MODE #a +k a:b",
			want: Message{Command: "MODE", Params: []string{"#a", "+k", "a:b"}},
		},
		{
			name: "empty trailing",
			line: "TOPIC #a :",
			want: Message{Command: "TOPIC", Params: []string{"#a", ""}},
		},
		{
			name: "only trailing",
			line: "QUIT :bye now",
			want: Message{Command: "QUIT", Params: []string{"bye now"}},
		},
		{
			name: "trailing keeps trailing spaces",
			line: "AWAY :gone  ",
			want: Message{Command: "AWAY", Params: []string{"gone  "}},
		},
		{
			name: "numeric",
			line: ":srv 433 * bob :Nickname is already in use",
			want: Message{Source: "srv", Command: "433", Params: []string{"*", "bob", "Nickname is already in use"}},
		},
		{
			name: "tags with escapes",
			line: `@a=x\:y\sz\\w\rq\nr;b=\q;c=end\ :src CMD`,
			want: Message{
				Tags:    []Tag{{"a", "x;y z\\w\rq\nr"}, {"b", "q"}, {"c", "end"}},
				Source:  "src",
				Command: "CMD",
			},
		},
		{
			name: "valueless and empty-valued tags",
			line: "@draft/bot;+typing=;msgid=abc CMD",
			want: Message{Tags: []Tag{{"draft/bot", ""}, {"+typing", ""}, {"msgid", "abc"}}, Command: "CMD"},
		},
		{
			name: "tag value with equals",
			line: "@k=a=b CMD",
			want: Message{Tags: []Tag{{"k", "a=b"}}, Command: "CMD"},
		},
		{
			name: "stray semicolons skipped",
			line: "@a=1;;b=2; CMD",
			want: Message{Tags: []Tag{{"a", "1"}, {"b", "2"}}, Command: "CMD"},
		},
		{
			name: "duplicate tag keys kept",
			line: "@k=1;k=2 CMD",
			want: Message{Tags: []Tag{{"k", "1"}, {"k", "2"}}, Command: "CMD"},
		},
		{
			name: "typical tagged line",
			line: "@time=2026-11-29T10:00:00.000Z;msgid=abc123 :nick!user@host PRIVMSG #room :hello",
			want: Message{
				Tags:    []Tag{{"time", "2026-11-29T10:00:00.000Z"}, {"msgid", "abc123"}},
				Source:  "nick!user@host",
				Command: "PRIVMSG",
				Params:  []string{"#room", "hello"},
			},
		},
		{
			name: "exactly 15 params",
			line: "CMD a b c d e f g h i j k l m n o",
			want: Message{Command: "CMD", Params: many[:15]},
		},
		{
			name: "more than 15 params fold into the 15th",
			line: "CMD " + strings.Join(many, " "),
			want: Message{Command: "CMD", Params: append(append([]string{}, many[:14]...), "o p q r s t")},
		},
		{
			name: "15th param with colon",
			line: "CMD a b c d e f g h i j k l m n :o p",
			want: Message{Command: "CMD", Params: append(append([]string{}, many[:14]...), "o p")},
		},
		{
			name: "15th param keeps a second colon",
			line: "CMD a b c d e f g h i j k l m n ::o",
			want: Message{Command: "CMD", Params: append(append([]string{}, many[:14]...), ":o")},
		},
		{
			name: "utf-8 trailing",
			line: "PRIVMSG #a :héllo wörld ☃",
			want: Message{Command: "PRIVMSG", Params: []string{"#a", "héllo wörld ☃"}},
		},
		{
			name: "formatting codes pass through",
			line: "PRIVMSG #a :\x01ACTION waves\x01",
			want: Message{Command: "PRIVMSG", Params: []string{"#a", "\x01ACTION waves\x01"}},
		},

		{name: "empty", line: "", wantErr: ErrEmptyLine},
		{name: "bare lf", line: "\n", wantErr: ErrEmptyLine},
		{name: "bare crlf", line: "\r\n", wantErr: ErrEmptyLine},
		{name: "only spaces", line: "    \r\n", wantErr: ErrEmptyLine},
		{name: "only tags", line: "@a=b", wantErr: ErrNoCommand},
		{name: "only tags and space", line: "@a=b ", wantErr: ErrNoCommand},
		{name: "only source", line: ":nick!user@host", wantErr: ErrNoCommand},
		{name: "only tags and source", line: "@a=b :src  ", wantErr: ErrNoCommand},
		{name: "empty tag section", line: "@ CMD", wantErr: ErrInvalidTags},
		{name: "bare at", line: "@", wantErr: ErrInvalidTags},
		{name: "empty tag key", line: "@=x CMD", wantErr: ErrInvalidTags},
		{name: "empty key after valid tag", line: "@a;=x CMD", wantErr: ErrInvalidTags},
		{name: "only semicolons", line: "@;; CMD", wantErr: ErrInvalidTags},
		{name: "empty source", line: ": CMD", wantErr: ErrInvalidSource},
		{name: "bare colon", line: ":", wantErr: ErrInvalidSource},
		{name: "command with digit and underscore", line: "pr1v_msg x", want: Message{Command: "PR1V_MSG", Params: []string{"x"}}},
		{name: "four-digit numeric", line: "0001 x", wantErr: ErrInvalidCommand},
		{name: "two-digit numeric", line: "01 x", wantErr: ErrInvalidCommand},
		{name: "command with punctuation", line: "PRIV.MSG x", wantErr: ErrInvalidCommand},
		{name: "command starting with a digit", line: "9LIVES x", wantErr: ErrInvalidCommand},
		{name: "non-ascii command", line: "PRÏVMSG x", wantErr: ErrInvalidCommand},
		{name: "nul in line", line: "PRIVMSG #a :a\x00b", wantErr: ErrInvalidByte},
		{name: "cr in line", line: "PRIVMSG #a :a\rb", wantErr: ErrInvalidByte},
		{name: "lf in line", line: "PRIVMSG #a :a\nb\n", wantErr: ErrInvalidByte},
		{name: "two crs", line: "PING\r\r\n", wantErr: ErrInvalidByte},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, variant := range []struct {
				name  string
				parse func(string) (Message, error)
			}{
				{"Parse", func(s string) (Message, error) { return Parse([]byte(s)) }},
				{"ParseString", ParseString},
			} {
				got, err := variant.parse(tt.line)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s(%q) error = %v, want %v", variant.name, tt.line, err, tt.wantErr)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s(%q) =\n  %#v\nwant\n  %#v", variant.name, tt.line, got, tt.want)
				}
			}
		})
	}
}

// TestParseDoesNotAliasInput checks that Parse copies the line, because the
// Reader hands out a buffer it overwrites on the next read.
func TestParseDoesNotAliasInput(t *testing.T) {
	line := []byte("@k=v :src PRIVMSG #a :hello")
	m, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	for i := range line {
		line[i] = 'X'
	}
	want := Message{Tags: []Tag{{"k", "v"}}, Source: "src", Command: "PRIVMSG", Params: []string{"#a", "hello"}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("message changed with its input: %#v", m)
	}
}

func TestParseAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	tests := []struct {
		line string
		max  float64
	}{
		{"PRIVMSG #room :hello there everyone", 2},
		{"privmsg #room :hello there everyone", 2}, // known command: no extra allocation to upper-case
		{"PING", 1},
		{"\r\n", 0},
		{"@time=2026-11-29T10:00:00.000Z;msgid=abc123 :nick!user@host PRIVMSG #room :hello", 3},
	}
	for _, tt := range tests {
		line := []byte(tt.line)
		got := testing.AllocsPerRun(100, func() { _, _ = Parse(line) })
		if got > tt.max {
			t.Errorf("Parse(%q): %v allocs, want <= %v", tt.line, got, tt.max)
		}
	}
}

func TestMessageAccessors(t *testing.T) {
	m := Message{
		Tags:    []Tag{{"a", "1"}, {"flag", ""}, {"a", "2"}},
		Command: "PRIVMSG",
		Params:  []string{"#a", "hi"},
	}
	for i, want := range []string{"#a", "hi", "", ""} {
		if got := m.Param(i); got != want {
			t.Errorf("Param(%d) = %q, want %q", i, got, want)
		}
	}
	if got := m.Param(-1); got != "" {
		t.Errorf("Param(-1) = %q, want empty", got)
	}
	tagTests := []struct {
		key       string
		wantValue string
		wantOK    bool
	}{
		{"a", "2", true}, // last occurrence wins
		{"flag", "", true},
		{"missing", "", false},
		{"A", "", false}, // keys are case-sensitive
	}
	for _, tt := range tagTests {
		v, ok := m.Tag(tt.key)
		if v != tt.wantValue || ok != tt.wantOK {
			t.Errorf("Tag(%q) = %q, %v; want %q, %v", tt.key, v, ok, tt.wantValue, tt.wantOK)
		}
	}
	var empty Message
	if _, ok := empty.Tag("a"); ok {
		t.Error("Tag on a message without tags reported a tag")
	}
}

func TestAppendTo(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"command only", Message{Command: "PING"}, "PING"},
		{"single plain param", Message{Command: "NICK", Params: []string{"bob"}}, "NICK bob"},
		{"single room param", Message{Command: "JOIN", Params: []string{"#room"}}, "JOIN #room"},
		{"single param with space", Message{Command: "QUIT", Params: []string{"bye now"}}, "QUIT :bye now"},
		{"single empty param", Message{Command: "AWAY", Params: []string{""}}, "AWAY :"},
		{"single param starting with colon", Message{Command: "PONG", Params: []string{":x"}}, "PONG ::x"},
		{"two params always colon", Message{Command: "PRIVMSG", Params: []string{"#a", "hi"}}, "PRIVMSG #a :hi"},
		{
			"numeric",
			Message{Source: "srv", Command: RPL_WELCOME, Params: []string{"nick", "Welcome"}},
			":srv 001 nick :Welcome",
		},
		{
			"three params",
			Message{Command: "MODE", Params: []string{"#a", "+k", "key"}},
			"MODE #a +k :key",
		},
		{
			"tags escaped",
			Message{Tags: []Tag{{"a", "x;y z\\w\rq\n"}, {"flag", ""}, {"b", "plain"}}, Command: "TAGMSG", Params: []string{"#a"}},
			`@a=x\:y\sz\\w\rq\n;flag;b=plain TAGMSG #a`,
		},
		{
			"nul dropped from tag value",
			Message{Tags: []Tag{{"a", "x\x00y"}}, Command: "CMD"},
			"@a=xy CMD",
		},
		{
			"line breaks neutralised",
			Message{Source: "a\rb", Command: "PRIVMSG", Params: []string{"#a", "hi\r\nQUIT :x\x00"}},
			":a b PRIVMSG #a :hi  QUIT :x ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix|")
			got := tt.msg.AppendTo(prefix)
			if string(got) != "prefix|"+tt.want+"\r\n" {
				t.Errorf("AppendTo = %q, want %q", got, "prefix|"+tt.want+"\r\n")
			}
			b := tt.msg.Bytes()
			if string(b) != tt.want+"\r\n" {
				t.Errorf("Bytes = %q, want %q", b, tt.want+"\r\n")
			}
			if len(b) != cap(b) {
				t.Errorf("Bytes: len %d != cap %d, size computed wrongly", len(b), cap(b))
			}
			if s := tt.msg.String(); s != tt.want {
				t.Errorf("String = %q, want %q", s, tt.want)
			}
		})
	}
}

func TestAppendToAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	m := Message{
		Tags:    []Tag{{"time", "2026-11-29T10:00:00.000Z"}, {"x", "a b;c"}},
		Source:  "nick!user@host",
		Command: "PRIVMSG",
		Params:  []string{"#room", "hello there"},
	}
	buf := make([]byte, 0, 512)
	if got := testing.AllocsPerRun(100, func() { buf = m.AppendTo(buf[:0]) }); got != 0 {
		t.Errorf("AppendTo into a buffer with room: %v allocs, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { _ = m.String() }); got > 1 {
		t.Errorf("String: %v allocs, want <= 1", got)
	}
	if got := testing.AllocsPerRun(100, func() { _ = m.Bytes() }); got > 1 {
		t.Errorf("Bytes: %v allocs, want <= 1", got)
	}
}

func TestRoundTrip(t *testing.T) {
	lines := []string{
		"PING",
		"PING :",
		"NICK bob",
		"JOIN #room",
		"PRIVMSG #room :hello there everyone",
		"PRIVMSG #room :hi",
		"QUIT :bye now",
		"PONG ::weird",
		":srv 001 bob :Welcome to the network, bob",
		":srv 005 bob CHANTYPES=# NICKLEN=30 :are supported by this server",
		`@a=x\:y\sz\\w\rq\n;flag;b=plain :n!u@h TAGMSG #a`,
		"@time=2026-11-29T10:00:00.000Z;msgid=abc123 :nick!user@host PRIVMSG #room :hello",
		"CMD a b c d e f g h i j k l m n :o p q",
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			m, err := ParseString(line)
			if err != nil {
				t.Fatal(err)
			}
			enc := m.Bytes()
			if string(enc) != line+"\r\n" {
				t.Errorf("encoded %q, want %q", enc, line+"\r\n")
			}
			m2, err := Parse(enc)
			if err != nil {
				t.Fatalf("re-parse of %q: %v", enc, err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Errorf("round trip changed the message:\n  %#v\n  %#v", m, m2)
			}
		})
	}
}

// TestRoundTripNormalises checks lines that are legal but not canonical: they
// re-encode to the canonical form, which then parses to the same message.
func TestRoundTripNormalises(t *testing.T) {
	tests := []struct{ in, want string }{
		{"privmsg #a hi", "PRIVMSG #a :hi"},
		{"  JOIN   #a  ", "JOIN #a"},
		{"NICK :bob", "NICK bob"},
		{`@a=\q;b=;c=d\ CMD`, "@a=q;b;c=d CMD"},
		{"@a;; CMD", "@a CMD"},
		{"CMD a b c d e f g h i j k l m n o p", "CMD a b c d e f g h i j k l m n :o p"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseString(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			m2, err := ParseString(m.String())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Errorf("re-parse differs:\n  %#v\n  %#v", m, m2)
			}
		})
	}
}

func TestValidTagKey(t *testing.T) {
	for key, want := range map[string]bool{
		"a": true, "+typing": true, "draft/reply": true, "+draft/react": true,
		"example.com/x-y": true, "+a-1": true, "msgid": true,
		"": false, "+": false, "a\x01b": false, "+é": false, "x/": false, "/y": false,
		"+a=b": false, "a b": false, "a_b": false, "ex ample/x": false, "++a": false,
	} {
		if got := ValidTagKey(key); got != want {
			t.Errorf("ValidTagKey(%q) = %v, want %v", key, got, want)
		}
	}
}

// A reply nobody budgeted (WHO with a long real name to a long nick) is
// cut to the body limit on a character boundary rather than sent overlong,
// which a strict reader would drop whole.
func TestAppendToCutsOverlongBody(t *testing.T) {
	realname := "0 " + strings.Repeat("é", 300)
	m := Message{
		Tags:    []Tag{{Key: "time", Value: "2026-12-06T10:00:00.000Z"}},
		Source:  "livechat.local",
		Command: RPL_WHOREPLY,
		Params:  []string{strings.Repeat("n", 30), "#" + strings.Repeat("r", 63), "~user", strings.Repeat("h", 63), "livechat.local", "nick", "H@", realname},
	}
	enc := m.Bytes()
	body := enc[bytes.IndexByte(enc, ' ')+1 : len(enc)-2]
	if len(body) > MaxBodyLen || len(body) < MaxBodyLen-1 {
		t.Fatalf("body is %d bytes, want %d or one less (a 2-byte character)", len(body), MaxBodyLen)
	}
	got, err := Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	last := got.Params[len(got.Params)-1]
	if !utf8.ValidString(last) || !strings.HasPrefix(realname, last) {
		t.Fatalf("cut real name %q is not a valid prefix", last)
	}
	short := Message{Command: "PRIVMSG", Params: []string{"#a", "hi"}}
	if got := string(short.Bytes()); got != "PRIVMSG #a :hi\r\n" {
		t.Fatalf("a short line changed: %q", got)
	}
}
