package eventrec_test

import (
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/eventrec"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
	"github.com/livechat/livechat/rooms/logtest"
)

func TestCodec(t *testing.T) {
	events := []*rooms.Event{
		{At: time.UnixMilli(1_700_000_000_123), ID: "x", Source: "a!b@c", Account: "A", Origin: "a:a", Command: "PRIVMSG", Params: []string{"#r", "hi"}, Tags: []protocol.Tag{{Key: "+k", Value: "v"}}},
		{At: time.UnixMilli(-5), Command: "WEIRD", Params: []string{}, ExtParams: []string{}},
		{At: time.UnixMilli(0), Command: "JOIN", Params: []string{"#r"}, ExtParams: []string{"#r", "acc", "Real Name"}},
		{Command: "NOTICE", Params: []string{"#r", strings.Repeat("é", 1000)}},
		multiline([]rooms.Line{{Text: "a"}, {Text: ""}, {Text: "b c "}, {Text: "d", Concat: true}}),
	}
	for _, e := range events {
		rec := eventrec.Append(nil, e)
		got, err := eventrec.Decode(rec)
		if err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
		if !logtest.Equal(got, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
		if eventrec.IsMessage(rec) != e.IsMessage() {
			t.Errorf("%s: IsMessage = %v", e.Command, eventrec.IsMessage(rec))
		}
		id, acc, org, err := eventrec.Fields(rec)
		if err != nil || string(id) != e.ID || string(acc) != e.Account || string(org) != e.Origin {
			t.Errorf("Fields = %q %q %q %v", id, acc, org, err)
		}
		// Every truncation and every flipped byte is an error or an
		// event, never a panic.
		for n := range len(rec) {
			eventrec.Decode(rec[:n])
			eventrec.Fields(rec[:n])
			bad := append([]byte(nil), rec...)
			bad[n] ^= 0xff
			eventrec.Decode(bad)
			eventrec.Fields(bad)
		}
	}
	rec := eventrec.Append(nil, events[0])
	rec[0] = 9
	if _, err := eventrec.Decode(rec); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("a newer record format: %v", err)
	}
}

func multiline(lines []rooms.Line) *rooms.Event {
	text, lines := rooms.JoinLines(lines)
	return &rooms.Event{ID: "m", Command: "PRIVMSG", Params: []string{"#r", text}, Lines: lines}
}
