package daemon

import (
	"bytes"
	"strings"
	"testing"

	"github.com/livechat/livechat/protocol"
)

// A welcome line from the template is the line the numeric would have
// been, for any nick, including lines the nick takes past the length
// limit (cut as any reply is).
func TestNumericLinesEncode(t *testing.T) {
	var l numericLines
	msgs := []protocol.Message{
		{Source: "irc.example", Command: protocol.RPL_YOURHOST, Params: []string{"*", "Your host is irc.example"}},
		{Source: "irc.example", Command: protocol.RPL_MYINFO, Params: []string{"*", "irc.example", "v1", "Bio", "CMR"}},
		{Source: "irc.example", Command: protocol.RPL_ISUPPORT, Params: []string{"*", "A=1", "B", "are supported by this server"}},
		{Source: "irc.example", Command: protocol.RPL_MOTD, Params: []string{"*", "- " + strings.Repeat("é", 240)}},
		{Source: "irc.example", Command: protocol.RPL_MOTD, Params: []string{"*", "- " + strings.Repeat("x", 600)}},
		{Source: "irc.example", Command: protocol.ERR_NOMOTD, Params: []string{"*", ":starts with a colon"}},
	}
	for _, m := range msgs {
		l.add(m)
	}
	for _, nick := range []string{"a", "alice", strings.Repeat("n", 30), strings.Repeat("n", 200)} {
		got := l.encode(nick)
		for i, m := range msgs {
			m.Params = append([]string{nick}, m.Params[1:]...)
			if want := m.AppendTo(nil); !bytes.Equal(got[i], want) {
				t.Errorf("nick %q line %d:\n got %q\nwant %q", nick, i, got[i], want)
			}
		}
	}
}
